# A model of the barrier protocol of the pingpong grouped GEMM (native/gemm/grouped_gemm_sm90.cuh),
# run under random interleavings of the producer thread and the eight consumer warps: it fails on a
# deadlock, on a stage read before its load (a full-barrier wait that passed on an older phase), and
# on a stage reloaded while a wgmma still reads it. mbarrier semantics as PTX gives them:
# try_wait.parity(p) passes when the current phase's parity is not p. Warps of a warpgroup are not
# held together except by wgmma groups (a group completes once all four have issued it).
#   python3 dev/protocols/pingpong_barriers.py    # the turns as built (one arrival per warp), and the
#                                                 # one-arrival-per-warpgroup variant, which deadlocks
#                                                 # with one K block
import random
import sys

class Bar:
    def __init__(s, count): s.count, s.pending, s.phase = count, count, 0
    def arrive(s):
        s.pending -= 1
        if s.pending == 0: s.phase += 1; s.pending = s.count
    def done(s, parity): return (s.phase & 1) != parity  # try_wait.parity

def run(S, kBlocks, tiles, seed, fixed=True):
    rnd = random.Random(seed)
    full = [Bar(1) for _ in range(S)]; empty = [Bar(1) for _ in range(S)]
    turn = [Bar(4 if fixed else 1), Bar(4 if fixed else 1)]
    stage_pos = [None] * S        # which position the stage holds
    reading = [set() for _ in range(S)]  # positions being read (wgmma not complete)
    groups = {0: [], 1: []}       # per WG: list of (pos, set of warps issued)
    def producer():
        pos = 0
        for t in range(tiles):
            for kb in range(kBlocks):
                s, ph = pos % S, (pos // S) & 1
                while not empty[s].done(ph ^ 1): yield 'block'
                assert not reading[s], f'overwrite stage {s} at pos {pos} while read {reading[s]}'
                stage_pos[s] = None
                yield 'ok'  # load in flight
                stage_pos[s] = pos; full[s].arrive(); pos += 1
                yield 'ok'
    def group_done(c, g): return len(groups[c][g][1]) == 4
    def warp(c, w):
        pos = 0; j = 0; mine = 0; issued = 0
        for t in range(tiles):
            if (j & 1) != c:
                pos += kBlocks; j += 1; continue
            if c == 1:
                while not turn[1].done(mine & 1): yield 'block'
            elif mine > 0:
                while not turn[0].done((mine - 1) & 1): yield 'block'
            mine += 1
            prev = None
            for kb in range(kBlocks):
                s, ph = pos % S, (pos // S) & 1
                while not full[s].done(ph): yield 'block'
                assert stage_pos[s] == pos, f'WG{c} warp{w} stale read: stage {s} holds {stage_pos[s]} want {pos}'
                # issue the K block's wgmma: a group completes once all four warps have issued it
                while len(groups[c]) <= issued: groups[c].append((pos, set()))
                g = issued; groups[c][g][1].add(w); reading[s].add(pos); issued += 1
                yield 'ok'
                # wgmmaWait<1>: group g-1 done
                if g - 1 >= 0:
                    while not group_done(c, g - 1): yield 'block'
                    p0 = groups[c][g - 1][0]; reading[p0 % S].discard(p0)
                if prev is not None and w == 0: empty[prev].arrive()
                prev = s; pos += 1
                yield 'ok'
            if fixed:
                turn[c ^ 1].arrive()  # lane 0 of each warp
            elif w == 0:
                turn[c ^ 1].arrive()
            while not group_done(c, issued - 1): yield 'block'
            p0 = groups[c][issued - 1][0]; reading[p0 % S].discard(p0)
            if prev is not None and w == 0: empty[prev].arrive()
            for _ in range(rnd.randint(0, 6)): yield 'ok'  # the epilogue
            j += 1
    agents = [producer()] + [warp(c, w) for c in (0, 1) for w in range(4)]
    live = list(range(len(agents))); blocked_rounds = 0
    while live:
        i = rnd.choice(live)
        try:
            r = next(agents[i])
        except StopIteration:
            live.remove(i); blocked_rounds = 0; continue
        blocked_rounds = blocked_rounds + 1 if r == 'block' else 0
        if blocked_rounds > 5000: raise AssertionError('deadlock')
    return True

failures = {}
for fixed in (False, True):
    name = 'as built (a turn arrival per warp)' if fixed else 'a turn arrival per warpgroup'
    n = 0
    for S in (3, 5):
        for kBlocks in (1, 2, 3, 16):
            for tiles in (1, 2, 3, 5, 8):
                for seed in range(60):
                    try:
                        run(S, kBlocks, tiles, seed, fixed)
                    except AssertionError as e:
                        n += 1
                        if n <= 2: print(f'{name}: stages {S}, K blocks {kBlocks}, tiles {tiles}, seed {seed}: {e}')
    print(f'{name}: {n} failing interleavings of 2400')
    failures[fixed] = n
# The protocol as built must never fail; the model must still see the variant's deadlock.
sys.exit(0 if failures[True] == 0 and failures[False] > 0 else 1)
