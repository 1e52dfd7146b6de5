# A CPU emulation of native/attention/flash_bwd_sm90.cuh's address and layout math, in numpy, no GPU:
# TMA tiles placed with the 128-byte swizzle, every wgmma operand read through its descriptor by the
# PTX canonical layouts (K-major / MN-major, LBO / SBO), accumulators and A fragments by their
# documented thread layouts, dS stores, dQ staging, the writer's store/add order under the semaphore
# targets (asserted in launch order), and the postprocess reorder; compared with a float64 backward.
# It checks index bugs, not hardware semantics (those are the lab's job on the GPU). Mirror any
# layout change of the kernel here first.   run: python3 dev/cuda/attention/bwd_sm90_emu.py
import numpy as np, sys, itertools

BN = 128
def swz(a): return a ^ (((a >> 7) & 7) << 4)

class Cfg:
    def __init__(s, D):
        s.D = D; s.BM = 64 if D == 128 else 128; s.P = D // 64
        s.KV = BN * D * 2; s.QB = s.BM * D * 2; s.DSB = BN * s.BM * 2; s.DQB = s.BM * D * 4
        s.K = 0; s.V = s.K + s.KV; s.Q = s.V + s.KV; s.DO = s.Q + 2 * s.QB; s.DS = s.DO + 2 * s.QB
        s.DQ = s.DS + 2 * s.DSB; s.Lse = s.DQ + s.DQB; s.Delta = s.Lse + 2 * s.BM * 4; s.Bar = s.Delta + 2 * s.BM * 4

def tma(sm, dst, X, row0, col0, rows):
    # X: [S, D] tensor; box (64 cols, rows), zero-fill past S; 128B swizzle by address.
    r = np.arange(rows)[:, None]; d = np.arange(64)[None, :]
    gr = row0 + r
    val = np.where(gr < X.shape[0], X[np.minimum(gr, X.shape[0] - 1), col0 + d], 0.0)
    addr = swz(dst + r * 128 + d * 2)
    sm[addr // 2] = val

def kmajor(sm, start, rows, sbo):   # -> [rows, 16]
    m = np.arange(rows)[:, None]; k = np.arange(16)[None, :]
    return sm[swz(start + (m % 8) * 128 + (m // 8) * sbo + k * 2) // 2]

def mnmajor(sm, start, mn, lbo, sbo):  # -> [16, mn]
    k = np.arange(16)[:, None]; x = np.arange(mn)[None, :]
    return sm[swz(start + (x % 64) * 2 + (x // 64) * lbo + (k % 8) * 128 + (k // 8) * sbo) // 2]

class Desc:
    def __init__(s, addr, lbo, sbo): s.addr, s.lbo, s.sbo = addr, lbo, sbo
    def __add__(s, off16): return Desc(s.addr + off16 * 16, s.lbo, s.sbo)

def wgmma_ss(sm, d, a, b, N, scaleD, tA=0, tB=0):
    A = mnmajor(sm, a.addr, 64, a.lbo, a.sbo).T if tA else kmajor(sm, a.addr, 64, a.sbo)
    B = mnmajor(sm, b.addr, N, b.lbo, b.sbo) if tB else kmajor(sm, b.addr, N, b.sbo).T
    return (d if scaleD else 0) + A @ B

# accumulator <-> per-thread registers (t in 0..127, j in 0..N/2-1)
def acc_index(N):
    t = np.arange(128)[:, None]; j = np.arange(N // 2)[None, :]
    w, lane = t // 32, t % 32; g, c = lane // 4, lane % 4
    i, r, e = j // 4, (j // 2) % 2, j % 2
    return 16 * w + g + 8 * r, 8 * i + 2 * c + e
def to_regs(M):
    R, Cc = acc_index(M.shape[1]); return M[R, Cc]
def from_regs(regs, N):
    M = np.zeros((64, N)); R, Cc = acc_index(N); M[R, Cc] = regs; return M

def afrag_matrix(pairs):  # pairs: [128, 4, 2] regs of one k16 step -> A [64, 16] (PTX A-fragment layout)
    A = np.zeros((64, 16))
    for t in range(128):
        w, lane = t // 32, t % 32; g, c = lane // 4, lane % 4
        base = 16 * w
        spots = [(base + g, 2 * c), (base + g + 8, 2 * c), (base + g, 2 * c + 8), (base + g + 8, 2 * c + 8)]
        for q, (row, col) in enumerate(spots):
            A[row, col] = pairs[t, q, 0]; A[row, col + 1] = pairs[t, q, 1]
    return A

def wgmma_rs(sm, d, pairs, b, N):
    return d + afrag_matrix(pairs) @ mnmajor(sm, b.addr, N, b.lbo, b.sbo)

def run(B, H, Hkv, Sq, Sk, D, causal, seed=0):
    rng = np.random.default_rng(seed)
    C = Cfg(D); BM = C.BM; scale = 1 / np.sqrt(D); sl2 = scale * np.log2(np.e)
    q = rng.uniform(-1, 1, (B, H, Sq, D)); k = rng.uniform(-1, 1, (B, Hkv, Sk, D))
    v = rng.uniform(-1, 1, (B, Hkv, Sk, D)); do = rng.uniform(-1, 1, (B, H, Sq, D))
    group = H // Hkv; shift = Sk - Sq
    # reference forward / backward
    ref_dq = np.zeros_like(q); ref_dk = np.zeros_like(k); ref_dv = np.zeros_like(v)
    lse = np.zeros((B, H, Sq)); out = np.zeros_like(q)
    for b_, h in itertools.product(range(B), range(H)):
        hk = h // group
        S = q[b_, h] @ k[b_, hk].T * scale
        vis = np.ones((Sq, Sk), bool)
        if causal: vis = np.arange(Sk)[None, :] <= np.arange(Sq)[:, None] + shift
        S = np.where(vis, S, -np.inf)
        m = S.max(1, keepdims=True); mm = np.where(np.isfinite(m), m, 0)
        P = np.exp(S - mm); l = P.sum(1, keepdims=True)
        P = np.where(l > 0, P / np.where(l > 0, l, 1), 0)
        out[b_, h] = P @ v[b_, hk]
        lse[b_, h] = np.where(l[:, 0] > 0, mm[:, 0] + np.log(np.where(l[:, 0] > 0, l[:, 0], 1)), -np.inf)
        dP = do[b_, h] @ v[b_, hk].T; delta = (do[b_, h] * out[b_, h]).sum(1)
        dS = P * (dP - delta[:, None])
        ref_dq[b_, h] = dS @ k[b_, hk] * scale; ref_dk[b_, hk] += dS.T @ q[b_, h] * scale; ref_dv[b_, hk] += P.T @ do[b_, h]
    # pre
    nQB = (Sq + BM - 1) // BM; SqPad = nQB * BM; nKB = (Sk + BN - 1) // BN
    delta = (do * out).sum(-1)
    lse2 = np.full((B, H, SqPad), np.inf); dpad = np.zeros((B, H, SqPad))
    lse2[:, :, :Sq] = np.where(np.isinf(lse), np.inf, lse * np.log2(np.e)); dpad[:, :, :Sq] = delta
    acc = np.full((B, H, nQB, BM * D), np.nan); sem = np.zeros((B, H, nQB), int)
    dk_out = np.full_like(k, np.nan); dv_out = np.full_like(v, np.nan)

    def firstQB(kb):
        if not causal: return 0
        f = kb * BN - shift; return min(nQB, f // BM if f > 0 else 0)
    def lastKB(qb):
        if not causal: return nKB - 1
        end = min((qb + 1) * BM, Sq) + shift
        if end <= 0: return -1
        nb = (end + BN - 1) // BN; return min(nb, nKB) - 1

    order = [(bx, hk, b_) for b_ in range(B) for hk in range(Hkv) for bx in range(nKB)]
    for bx, hk, b_ in order:
        kb = nKB - 1 - bx
        qbF = firstQB(kb); nIter = group * (nQB - qbF)
        sm = np.zeros(C.Bar // 2 + 64)
        for p in range(C.P):
            tma(sm, C.K + p * BN * 128, k[b_, hk], kb * BN, p * 64, BN)
            tma(sm, C.V + p * BN * 128, v[b_, hk], kb * BN, p * 64, BN)
        dkR = [np.zeros((128, D // 2)) for _ in range(2)]; dvR = [np.zeros((128, D // 2)) for _ in range(2)]
        g_, qb = 0, qbF
        widx, wqb = qbF, qbF
        for it in range(nIter):
            sg = it & 1; h = hk * group + g_; i0 = qb * BM
            # producer
            for p in range(C.P):
                tma(sm, C.Q + sg * C.QB + p * BM * 128, q[b_, h], i0, p * 64, BM)
                tma(sm, C.DO + sg * C.QB + p * BM * 128, do[b_, h], i0, p * 64, BM)
            lse2s = lse2[b_, h, i0:i0 + BM]; dls = dpad[b_, h, i0:i0 + BM]
            dsTile = C.DS + sg * C.DSB
            stag = [None, None]
            ds_stores = []
            pfs = []
            for wc in range(2):
                keyBase = kb * BN + 64 * wc
                dK = Desc(C.K + wc * 64 * 128, 16, 1024); dV = Desc(C.V + wc * 64 * 128, 16, 1024)
                dQ = Desc(C.Q, 16, 1024); dDO = Desc(C.DO, 16, 1024)
                qOff = sg * C.QB
                s = 0; dp = 0
                for kk in range(D // 16):
                    ka = (kk // 4) * BN * 128 + (kk % 4) * 32; kq = qOff + (kk // 4) * BM * 128 + (kk % 4) * 32
                    s = wgmma_ss(sm, s, dK + (ka >> 4), dQ + (kq >> 4), BM, kk > 0)
                    dp = wgmma_ss(sm, dp, dV + (ka >> 4), dDO + (kq >> 4), BM, kk > 0)
                sR = to_regs(s); dpR = to_regs(dp)  # [128, BM/2]
                t = np.arange(128); wq = t // 32; lane = t % 32; g8 = lane // 4; c = lane % 4
                key0 = keyBase + 16 * wq + g8
                needMask = keyBase + 64 > Sk or (causal and keyBase + 63 - shift > i0)
                lim = np.zeros((128, 2), int)
                for r in range(2):
                    key = key0 + 8 * r
                    l = np.where(key >= Sk, BM, (key - shift - i0) if causal else 0)
                    lim[:, r] = np.clip(l, 0, BM)
                P = np.zeros_like(sR)
                for i in range(BM // 8):
                    for r in range(2):
                        for e in range(2):
                            j = 4 * i + 2 * r + e; col = 8 * i + 2 * c + e
                            p_ = np.exp2(sR[:, j] * sl2 - lse2s[col])
                            if needMask: p_ = np.where(col < lim[:, r], 0, p_)
                            P[:, j] = p_
                dS = np.zeros_like(P)
                for i in range(BM // 8):
                    for r in range(2):
                        for e in range(2):
                            j = 4 * i + 2 * r + e; col = 8 * i + 2 * c + e
                            dS[:, j] = P[:, j] * (dpR[:, j] - dls[col])
                pf = P.reshape(128, BM // 4, 2); dsf = dS.reshape(128, BM // 4, 2)  # pf[q] = (s[2q], s[2q+1])
                for i in range(BM // 8):
                    for r in range(2):
                        row = 64 * wc + 16 * wq + g8 + 8 * r
                        addr = dsTile + (i // 8) * BN * 128 + row * 128 + (((i % 8) ^ g8) << 4) + 4 * c
                        ds_stores.append((addr, dsf[:, 2 * i + r, :]))
                dDOt = Desc(C.DO, BM * 128, 1024); dQt = Desc(C.Q, BM * 128, 1024)
                dvM = from_regs(dvR[wc], D); dkM = from_regs(dkR[wc], D)
                for kk in range(BM // 16):
                    dvM = wgmma_rs(sm, dvM, pf[:, 4 * kk:4 * kk + 4, :], dDOt + ((qOff + kk * 2048) >> 4), D)
                    dkM = wgmma_rs(sm, dkM, dsf[:, 4 * kk:4 * kk + 4, :], dQt + ((qOff + kk * 2048) >> 4), D)
                dvR[wc] = to_regs(dvM); dkR[wc] = to_regs(dkM)
            # dS stores (raw, unswizzled addresses: the kernel writes the swizzled position itself)
            for addr, val in ds_stores:
                sm[addr // 2] = val[:, 0]; sm[addr // 2 + 1] = val[:, 1]
            for wc in range(2):
                dDSt = Desc(C.DS + (wc * BN * 128 if BM == 128 else 0), BN * 128, 1024)
                dKt = Desc(C.K + (wc * BN * 128 if BM == 64 else 0), BN * 128, 1024)
                dq = 0
                for kk in range(BN // 16):
                    dq = wgmma_ss(sm, dq, dDSt + ((sg * C.DSB + kk * 2048) >> 4), dKt + ((kk * 2048) >> 4), 64, kk > 0, tA=1, tB=1)
                dqR = to_regs(dq)  # [128, 32]
                st = np.zeros(4096)
                for r4 in range(8):
                    for e in range(4):
                        st[(r4 * 128 + np.arange(128)) * 4 + e] = dqR[:, 4 * r4 + e]
                stag[wc] = st
            # writer
            target = lastKB(qb) - kb
            assert sem[b_, h, qb] == target, (kb, h, qb, sem[b_, h, qb], target)
            idx = g_ * nQB + qb; assert idx == widx, (idx, widx)
            flat = acc.reshape(B, H * nQB, BM * D)
            for w in range(2):
                sl = slice(w * (BM * D // 2), (w + 1) * (BM * D // 2))
                if target == 0: flat[b_, hk * group * nQB + idx, sl] = stag[w]
                else: flat[b_, hk * group * nQB + idx, sl] += stag[w]
            widx += 1; wqb += 1
            if wqb == nQB: wqb = qbF; widx += qbF
            sem[b_, h, qb] += 1
            g_, qb = (g_, qb + 1) if qb + 1 < nQB else (g_ + 1, qbF)
        for wc in range(2):
            t = np.arange(128); wq = t // 32; lane = t % 32; g8 = lane // 4; c = lane % 4
            key0 = kb * BN + 64 * wc + 16 * wq + g8
            for r in range(2):
                key = key0 + 8 * r
                for i in range(D // 8):
                    for e in range(2):
                        ok = key < Sk
                        dk_out[b_, hk, key[ok], 8 * i + 2 * c[ok] + e] = dkR[wc][ok, 4 * i + 2 * r + e] * scale
                        dv_out[b_, hk, key[ok], 8 * i + 2 * c[ok] + e] = dvR[wc][ok, 4 * i + 2 * r + e]
    # post
    dq_out = np.full_like(q, np.nan)
    for b_, h, qb in itertools.product(range(B), range(H), range(nQB)):
        tile = np.zeros((BM, D))
        src = acc[b_, h, qb].reshape(-1, 4) if lastKB(qb) >= 0 else np.zeros((BM * D // 4, 4))
        for thr in range(256):
            w, t = thr // 128, thr % 128
            row = 16 * (t // 32) + (t % 32) // 4; colIn = 2 * (t % 4)
            for r4 in range(8):
                v4 = src[w * (BM * D // 8) + r4 * 128 + t]
                R = row if BM == 64 else 64 * w + row
                Cc = (64 * w if BM == 64 else 0) + 8 * r4 + colIn
                tile[R, Cc:Cc + 2] = v4[:2]; tile[R + 8, Cc:Cc + 2] = v4[2:]
        for R in range(BM):
            i = qb * BM + R
            if i < Sq: dq_out[b_, h, i] = tile[R] * scale
    errs = [np.nanmax(np.abs(a - r)) / max(np.abs(r).max(), 1e-3) if not np.isnan(a).any() else np.inf
            for a, r in ((dq_out, ref_dq), (dk_out, ref_dk), (dv_out, ref_dv))]
    print(f"B={B} H={H} Hkv={Hkv} Sq={Sq} Sk={Sk} D={D} causal={causal} err dq,dk,dv = {errs[0]:.2e} {errs[1]:.2e} {errs[2]:.2e}",
          "OK" if max(errs) < 1e-9 else "BAD")
    return max(errs) < 1e-9

if __name__ == "__main__":
    cases = [(1, 1, 1, 1, 1, 64, False), (1, 1, 1, 1, 1, 128, True), (1, 2, 1, 77, 77, 64, True), (1, 2, 1, 77, 77, 128, True),
             (1, 4, 2, 300, 300, 128, True), (1, 2, 2, 200, 333, 64, True), (1, 2, 2, 333, 200, 128, True),
             (2, 2, 1, 130, 260, 64, False), (1, 2, 2, 333, 200, 64, True), (1, 1, 1, 260, 130, 128, False),
             (1, 3, 1, 400, 150, 64, True), (2, 4, 2, 190, 700, 128, True)]
    ok = all(run(*c) for c in cases)
    sys.exit(0 if ok else 1)
