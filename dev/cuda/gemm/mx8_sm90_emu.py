#!/usr/bin/env python3
# An emulation of native/gemm/gemm_mx8_sm90.cu's index mapping for one CTA, on integers, against the
# direct product: the XOR-swizzled shared-memory tiles, ldmatrix.x4 on FP8 bytes, the widening of
# each FP8 register into two f16x2 halves, the m16n8k16 f16 fragments (PTX ISA layouts) with k
# permuted alike for A and B, the 128 x 4 scale tiles read as 4-byte words and decoded into the
# permuted f32 layout, the last step's partial blocks, zero-filled rows past M and N, and the
# epilogue's (row, column) of each accumulator. No GPU is needed; it checks the indexing, not the
# hardware. Scales are powers of two (exponents 0..3) so integer arithmetic is exact.
#   python3 dev/cuda/gemm/mx8_sm90_emu.py [M N K]   (M, N <= 128: one CTA; K % 32 == 0)
import random
import sys

M, N, K = (int(x) for x in sys.argv[1:4]) if len(sys.argv) > 3 else (100, 77, 96 + 128)
assert M <= 128 and N <= 128 and K % 32 == 0
BK, nK = 128, K // 32
A = [[random.randint(-8, 8) for _ in range(K)] for _ in range(M)]
B = [[random.randint(-8, 8) for _ in range(K)] for _ in range(N)]
SA = [[random.randint(0, 3) for _ in range(nK)] for _ in range(M)]
SB = [[random.randint(0, 3) for _ in range(nK)] for _ in range(N)]


def tiled(r, c, cols):  # common/scale_tiles.h
    rr = r % 128
    return ((r // 128) * ((cols + 3) // 4) + c // 4) * 512 + (rr % 32) * 16 + (rr // 32) * 4 + (c % 4)


PAD = 99  # padding bytes of the scale tiles: must never be read
tileA = [PAD] * (((nK + 3) // 4) * 512)
tileB = [PAD] * len(tileA)
for r in range(M):
    for c in range(nK):
        tileA[tiled(r, c, nK)] = SA[r][c]
for r in range(N):
    for c in range(nK):
        tileB[tiled(r, c, nK)] = SB[r][c]


def stage(X, R, s):  # cp.async with zero fill: chunk ch of row r at r * 128 + ((ch ^ (r % 8)) * 16)
    sm = [None] * (128 * BK)
    for r in range(128):
        for ch in range(8):
            for b in range(16):
                k = s * BK + ch * 16 + b
                sm[r * BK + ((ch ^ (r & 7)) << 4) + b] = X[r][k] if r < R and k < K else 0
    return sm


def decode(tile, s):  # thread tid < 128: A's word tid; else B's word tid - 128
    decA, decB = [None] * 512, [None] * 512
    for tid in range(256):
        w = tid & 127
        rr = (w >> 2) + 32 * (w & 3)
        codes = [tile[tid >= 128][s * 512 + 4 * w + c] for c in range(4)]
        if tid < 128:
            pos = (rr & 64) + (rr & 7) * 8 + ((rr >> 4) & 3) * 2 + ((rr >> 3) & 1)
        else:
            pos = (rr & 96) + ((rr >> 1) & 3) * 8 + ((rr >> 3) & 3) * 2 + (rr & 1)
        for c in range(4):
            (decA if tid < 128 else decB)[c * 128 + pos] = None if codes[c] == PAD else 2 ** codes[c]
    return decA, decB


def ldmatrix_x4(sm, addr):  # lane l gives row l % 8 of matrix l / 8; lane gets 4 bytes per matrix
    return [[[sm[addr(q * 8 + (lane >> 2)) + 4 * (lane & 3) + i] for i in range(4)] for q in range(4)] for lane in range(32)]


D = [[None] * 128 for _ in range(128)]
acc = {}
for s in range((nK + 3) // 4):
    sA, sB = stage(A, M, s), stage(B, N, s)
    decA, decB = decode((tileA, tileB), s)
    for warp in range(8):
        wm, wn = warp >> 2, warp & 3
        for kb in range(min(4, nK - 4 * s)):
            af = [ldmatrix_x4(sA, lambda l, i=i: (lambda r, ch: r * BK + ((ch ^ (r & 7)) << 4))(wm * 64 + i * 16 + (l & 7) + ((l >> 3) & 1) * 8, 2 * kb + (l >> 4))) for i in range(4)]
            bf = [None] * 4
            for jj in range(2):
                q = ldmatrix_x4(sB, lambda l: (lambda r, ch: r * BK + ((ch ^ (r & 7)) << 4))(wn * 32 + jj * 16 + (l & 7) + (l >> 4) * 8, 2 * kb + ((l >> 3) & 1)))
                bf[2 * jj] = [[q[l][0], q[l][1]] for l in range(32)]
                bf[2 * jj + 1] = [[q[l][2], q[l][3]] for l in range(32)]
            for i in range(4):
                for j in range(4):
                    part = [[0] * 4 for _ in range(32)]
                    for h in range(2):  # two m16n8k16 MMAs: A[16][16], B[16][8] assembled from the lanes' registers
                        Am = [[None] * 16 for _ in range(16)]
                        Bm = [[None] * 8 for _ in range(16)]
                        for l in range(32):
                            g, t = l >> 2, l & 3
                            r0, r1 = af[i][l][2 * h], af[i][l][2 * h + 1]
                            regs = [r0[0:2], r1[0:2], r0[2:4], r1[2:4]]  # {lo(row g), lo(row g+8), hi(row g), hi(row g+8)}
                            for u in range(2):
                                Am[g][2 * t + u], Am[g + 8][2 * t + u] = regs[0][u], regs[1][u]
                                Am[g][2 * t + 8 + u], Am[g + 8][2 * t + 8 + u] = regs[2][u], regs[3][u]
                                Bm[2 * t + u][g], Bm[2 * t + 8 + u][g] = bf[j][l][h][u], bf[j][l][h][2 + u]
                        for l in range(32):
                            g, t = l >> 2, l & 3
                            for e in range(4):
                                part[l][e] += sum(Am[g + 8 * (e >> 1)][k] * Bm[k][2 * t + (e & 1)] for k in range(16))
                    for l in range(32):
                        g, t = l >> 2, l & 3
                        sa = decA[kb * 128 + wm * 64 + g * 8:][:8]
                        sb = decB[kb * 128 + wn * 32 + t * 8:][:8]
                        for e in range(4):
                            row, col = wm * 64 + i * 16 + (e >> 1) * 8 + g, wn * 32 + j * 8 + 2 * t + (e & 1)
                            if row < M and col < N:  # rows past M / N read padding scales; never stored
                                acc[row, col] = acc.get((row, col), 0) + part[l][e] * sa[i * 2 + (e >> 1)] * sb[j * 2 + (e & 1)]
ref = {(m, n): sum(A[m][k] * B[n][k] * 2 ** (SA[m][k // 32] + SB[n][k // 32]) for k in range(K)) for m in range(M) for n in range(N)}
bad = [mn for mn in ref if acc.get(mn) != ref[mn]]
print(f"{M}x{N}x{K}: {len(bad)} of {len(ref)} elements differ from the direct product")
sys.exit(1 if bad else 0)
