// The CPU world (ops/collective/cpu_shared.ts): W ranks in W worker threads exchanging through one
// SharedArrayBuffer. The collectives across 2, 3 and 4 threads on fresh random data (rank-order
// float64 sums, the same bits on every rank, chunked calls, disagreeing ranks, a rank that never
// comes), then dataParallel on the CPU: W ranks each training on 1/W of a global batch agree with each
// other bit for bit and with the plain step on the whole batch. Workers run test/fixtures/cpu-rank.mjs,
// which imports the BUILT package: run `npx tsup` in packages/ir after editing src.
import { existsSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCpuWorld, joinCpuWorld, type CpuWorld } from '../src/index.js';
import { errorOf, randInt, randn } from './helpers.js';

const FIXTURE = new URL('./fixtures/cpu-rank.mjs', import.meta.url);
type Err = { code: string; message: string };
type CallResult = { value?: Float64Array | Float64Array[]; error?: Err; ms: number };
interface Reply {
  ok: boolean;
  rank: number;
  error?: Err & { stack?: string };
  results?: CallResult[];
  losses?: number[];
  outputs?: Record<string, number[][]>;
  params?: Record<string, Float32Array>;
}

const live = new Set<Worker>();
afterEach(async () => {
  // Every worker ends with its test, passed or failed (a blocked Atomics.wait included).
  await Promise.all([...live].map((w) => w.terminate()));
  live.clear();
});

function runRank(world: CpuWorld | undefined, rank: number, job: object): Promise<Reply> {
  const w = new Worker(FIXTURE, { workerData: { world, rank, job } });
  live.add(w);
  return new Promise<Reply>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`rank ${rank}'s worker exited (code ${code}) without replying`)));
  });
}

/** Every rank's reply, in rank order; a rank that failed outside its calls fails the test with its error. */
async function runWorld(world: CpuWorld | undefined, jobOf: (rank: number) => object): Promise<Reply[]> {
  const W = world?.worldSize ?? 1;
  const replies = await Promise.all(Array.from({ length: W }, (_, r) => runRank(world, r, jobOf(r))));
  for (const m of replies) if (!m.ok) throw new Error(`rank ${m.rank}: ${m.error!.code}: ${m.error!.stack ?? m.error!.message}`);
  return replies;
}

const hex = (a: Float64Array | Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
const scaled = (n: number) => randn(n).map((v) => v * 10 ** randInt(-3, 3)); // magnitudes that round when summed
/** The rank-order float64 sum (rank 0 + rank 1 + ...), divided by W for 'avg'. */
function reduce(xs: Float64Array[], op: 'sum' | 'avg'): Float64Array {
  const out = Float64Array.from(xs[0]!);
  for (const x of xs.slice(1)) for (let i = 0; i < out.length; i++) out[i] = out[i]! + x[i]!;
  if (op === 'avg') for (let i = 0; i < out.length; i++) out[i] = out[i]! / xs.length;
  return out;
}

beforeAll(() => {
  // Read, not imported: a second copy of the ops in this thread would register their kernels twice.
  const dist = new URL('../dist/index.js', import.meta.url);
  if (!existsSync(dist) || !readFileSync(dist, 'utf8').includes('function joinCpuWorld')) throw new Error('packages/ir/dist is stale (no joinCpuWorld): run `npx tsup` in packages/ir');
});

describe('CPU world collectives', () => {
  it.each([2, 3, 4])('W = %i: allReduce, reduceScatter, allGather are rank-order float64 results, bitwise the same on every rank, chunked past maxElements', async (W) => {
    const max = randInt(16, 64);
    const world = createCpuWorld(W, { maxElements: max, timeoutMs: 10_000 });
    const lens = [randInt(max + 1, 3 * max), ...Array.from({ length: randInt(0, 3) }, () => randInt(0, 2 * max))]; // the first spans several exchanges
    const ar = Array.from({ length: W }, () => lens.map(scaled));
    const n = W * randInt(1, max); // reduceScatter: W·n/W elements, often more than a slot
    const rs = Array.from({ length: W }, () => scaled(n));
    const m = randInt(1, 2 * max);
    const ag = Array.from({ length: W }, () => scaled(m));
    const replies = await runWorld(world, (r) => ({
      kind: 'calls',
      calls: [
        { fn: 'allReduce', args: [ar[r], 'sum'] },
        { fn: 'allReduce', args: [ar[r], 'avg'] },
        { fn: 'reduceScatter', args: [rs[r], 'sum'] },
        { fn: 'reduceScatter', args: [rs[r], 'avg'] },
        { fn: 'allGather', args: [ag[r]] },
      ],
    }));
    for (const { rank, results } of replies) {
      const got = results!.map((c) => {
        expect(c.error, JSON.stringify(c.error)).toBeUndefined();
        return c.value!;
      });
      for (const [c, op] of [[0, 'sum'], [1, 'avg']] as const) {
        expect((got[c] as Float64Array[]).map(hex)).toEqual(lens.map((_, k) => hex(reduce(ar.map((x) => x[k]!), op))));
      }
      const block = n / W;
      expect(hex(got[2] as Float64Array)).toEqual(hex(reduce(rs, 'sum').subarray(rank * block, (rank + 1) * block)));
      expect(hex(got[3] as Float64Array)).toEqual(hex(reduce(rs, 'avg').subarray(rank * block, (rank + 1) * block)));
      const gathered = new Float64Array(W * m);
      ag.forEach((x, q) => gathered.set(x, q * m));
      expect(hex(got[4] as Float64Array)).toEqual(hex(gathered));
    }
  });

  it('a rank that stops calling: the others get TIMEOUT naming it within the timeout, then PEER_FAILED; no thread hangs', async () => {
    const W = randInt(2, 4);
    const timeoutMs = 1000;
    const world = createCpuWorld(W, { timeoutMs });
    const x = randn(randInt(1, 50));
    // One call every rank makes (so all have started), then rank W - 1 makes no more.
    const calls = [{ fn: 'allReduce', args: [[x], 'sum'] }, { fn: 'allReduce', args: [[x], 'avg'] }, { fn: 'allGather', args: [x] }];
    const replies = await runWorld(world, (r) => ({ kind: 'calls', calls: r === W - 1 ? calls.slice(0, 1) : calls }));
    for (const { results } of replies) expect(results![0]!.error).toBeUndefined();
    expect(replies.filter((r) => /waited/.test(r.results![1]?.error?.message ?? '')).length).toBe(1);
    for (const { rank, results } of replies.slice(0, W - 1)) {
      const [, first, second] = results!;
      expect(first!.error?.code, `rank ${rank}`).toBe('TIMEOUT');
      expect(first!.error!.message).toMatch(new RegExp(`^allReduce.*rank\\(s\\) ${W - 1} of the CPU world of ${W} did not arrive`));
      // The first to give up waited the whole timeout and woke the others (who may have come later).
      if (first!.error!.message.includes(`(rank ${rank} waited ${timeoutMs} ms)`)) expect(first!.ms).toBeGreaterThanOrEqual(timeoutMs);
      else expect(first!.error!.message).toMatch(/\(rank \d gave up first\)/);
      expect(first!.ms).toBeLessThan(timeoutMs + 2000);
      expect(second!.error?.code).toBe('PEER_FAILED');
      expect(second!.error!.message).toMatch(/^allGather: the CPU world failed earlier/);
    }
  });

  it('ranks that disagree all get the same typed error, and the world stays usable', async () => {
    const W = randInt(2, 4);
    const world = createCpuWorld(W, { maxElements: 32, timeoutMs: 10_000 });
    const odd = randInt(1, W - 1);
    const m = randInt(1, 40);
    const x = randn(m);
    const replies = await runWorld(world, (r) => ({
      kind: 'calls',
      calls: [
        { fn: 'allGather', args: [randn(r === odd ? m + randInt(1, 5) : m)] }, // SHAPE_MISMATCH
        { fn: 'allReduce', args: [r === odd ? [randn(3), randn(4)] : [randn(4), randn(3)], 'sum'] }, // same total, other tensors
        { fn: 'reduceScatter', args: [randn(W * 3 + 1), 'sum'] }, // not divisible by W
        r === odd ? { fn: 'allGather', args: [x] } : { fn: 'allReduce', args: [[x], 'sum'] }, // different collectives
        { fn: 'allReduce', args: [[Float64Array.of(r + 1)], 'sum'] }, // still usable
      ],
    }));
    for (const { results } of replies) {
      const [gather, split, scatter, mixed, after] = results!;
      expect(gather!.error?.code).toBe('SHAPE_MISMATCH');
      expect(gather!.error!.message).toMatch(new RegExp(`^allGather: Expected the same length on every rank but received ${m} on rank 0.* on rank ${odd}`));
      expect(split!.error?.code).toBe('SHAPE_MISMATCH');
      expect(split!.error!.message).toMatch(/equal totals, different tensors/);
      expect(scatter!.error?.code).toBe('SHAPE_MISMATCH');
      expect(scatter!.error!.message).toMatch(new RegExp(`divisible by the world size ${W}`));
      expect(mixed!.error?.code).toBe('INVALID_ARGUMENT');
      expect(mixed!.error!.message).toMatch(/called allReduce .* allGather/);
      expect(Array.from((after!.value as Float64Array[])[0]!)).toEqual([(W * (W + 1)) / 2]);
    }
  });

  it('in one thread: a world of one, and typed errors for bad options, a second join and bad inputs', () => {
    const world = createCpuWorld(1, { maxElements: randInt(1, 8) });
    const g = joinCpuWorld(world, 0);
    const xs = [randn(randInt(0, 20)), randn(randInt(1, 20))];
    expect(g.allReduce(xs, 'avg').map(hex)).toEqual(xs.map(hex));
    expect(hex(g.reduceScatter(xs[1]!, 'sum'))).toBe(hex(xs[1]!));
    expect(hex(g.allGather(xs[1]!))).toBe(hex(xs[1]!));
    const cases: [() => unknown, string, RegExp][] = [
      [() => createCpuWorld(0), 'INVALID_ARGUMENT', /worldSize of createCpuWorld/],
      [() => createCpuWorld(2, { maxElements: 0 }), 'INVALID_ARGUMENT', /maxElements/],
      [() => createCpuWorld(2, { timeoutMs: -1 }), 'INVALID_ARGUMENT', /timeoutMs/],
      [() => createCpuWorld(2, { timeout: 5 } as never), 'INVALID_ARGUMENT', /timeout/],
      [() => createCpuWorld(1024, { maxElements: 2 ** 30 }), 'INVALID_ARGUMENT', /at most 4294967296 bytes/],
      [() => joinCpuWorld(world, 0), 'INVALID_ARGUMENT', /rank 0 has already been joined/],
      [() => joinCpuWorld(createCpuWorld(2), 2), 'INVALID_ARGUMENT', /rank of joinCpuWorld/],
      [() => joinCpuWorld({ ...createCpuWorld(2), maxElements: 7 }, 0), 'INVALID_ARGUMENT', /another layout/],
      [() => joinCpuWorld({} as never, 0), 'INVALID_ARGUMENT', /CPU world/],
      [() => g.allReduce([new Float32Array(2) as never], 'sum'), 'INVALID_ARGUMENT', /Float64Array/],
      [() => g.allReduce(xs, 'max' as never), 'INVALID_ARGUMENT', /'sum' or 'avg'/],
    ];
    for (const [f, code, msg] of cases) {
      const e = errorOf(f);
      expect(e.code, String(f)).toBe(code);
      expect(e.message).toMatch(msg);
    }
  });
});

// A small MLP (fixtures/cpu-rank.mjs): x f32[N, F] -> 2 × gelu(matmul) of width H -> head [C, H] -> cross-entropy.
const [F, H, C, N, STEPS] = [6, 12, 4, 8, 3];
function trainJob(extra: object) {
  const p = (n: number) => Float32Array.from(randn(n), (v) => v * 0.4);
  const steps = Array.from({ length: STEPS }, () => ({ x: Float32Array.from(randn(N * F)), y: Int32Array.from({ length: N }, () => randInt(0, C - 1)) }));
  return { kind: 'train', layers: 2, hidden: H, classes: C, features: F, batch: N, lr: 0.05, params: { w0: p(H * F), w1: p(H * H), head: p(C * H) }, steps, ...extra };
}

/*
 * The bound against the plain step: the ranks' gradients are means over N/W rows averaged over W
 * (in float64 across ranks, then rounded to f32) where the plain step takes one mean over N rows, so
 * they differ by a few f32 roundings (~1e-7 relative); three AdamW steps (lr 0.05, each moving a
 * weight by up to lr; the update divides by sqrt(v), so a relative error in a gradient stays
 * relative) carry that into the weights. Measured: at most 1.5e-7 of the array's largest magnitude
 * over 50 runs; the bound is 1e-5 of it (f32's epsilon is 1.2e-7).
 */
function expectNear(a: ArrayLike<number>, b: ArrayLike<number>, what: string) {
  expect(a.length, what).toBe(b.length);
  const tol = 1e-5 * Math.max(...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!), `${what}[${i}]: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol);
}

describe('dataParallel across CPU threads', () => {
  it.each([
    [2, { clipGradNorm: 0.5 }],
    [4, { dpOptions: { loss: false } }], // and a random bucketBytes: several buckets
  ])('W = %i %j: every rank ends bitwise the same and matches the plain step on the whole global batch', async (W, extra) => {
    const job = trainJob('dpOptions' in extra ? { dpOptions: { ...extra.dpOptions, bucketBytes: randInt(1, 2000) } } : extra);
    const [plain] = await runWorld(undefined, () => job);
    const ranks = await runWorld(createCpuWorld(W, { timeoutMs: 20_000 }), () => job);
    const r0 = ranks[0]!;
    for (const r of ranks.slice(1)) {
      for (const [name, v] of Object.entries(r0.params!)) expect(hex(r.params![name]!), `${name} on rank ${r.rank}`).toBe(hex(v));
      if (!('dpOptions' in extra)) expect(r.outputs).toEqual(r0.outputs); // the averaged loss (and grad_norm) too
    }
    for (const [name, v] of Object.entries(plain!.params!)) expectNear(r0.params![name]!, v, name);
    // The loss averaged across ranks is the global batch's: dataParallel's all_reduce, or (loss: false) by hand.
    const mean = plain!.losses!.map((_, s) => ranks.reduce((a, r) => a + r.losses![s]!, 0) / W);
    expectNear(mean, plain!.losses!, 'loss');
    if ('dpOptions' in extra) expect(new Set(ranks.map((r) => r.losses![0])).size).toBeGreaterThan(1); // local losses, not averaged
    else expectNear(r0.outputs!.grad_norm!.flat(), plain!.outputs!.grad_norm!.flat(), 'grad_norm');
  });
  it.each([2, 4])('ZeRO-1, W = %i: every rank ends bitwise the same; without clipping the all-reduce step\'s bits, with clipping near them and near the plain step', async (W) => {
    // The CPU group sums the ranks' gradients in rank order in float64 for a reduce-scatter as for an
    // all-reduce, and AdamW is elementwise: so without clipping ZeRO-1 gives the all-reduce step's
    // exact bits. With clipping its norm sums the shards' squares (another order): near.
    for (const clip of [undefined, 0.5]) {
      const base = trainJob(clip ? { clipGradNorm: clip } : {});
      const [plain] = await runWorld(undefined, () => base);
      const dp = await runWorld(createCpuWorld(W, { timeoutMs: 20_000 }), () => base);
      const align = randInt(1, 16); // the same on every rank: the layout must agree
      const zero = await runWorld(createCpuWorld(W, { timeoutMs: 20_000 }), () => ({ ...base, dpOptions: { zero: { align } } }));
      for (const r of zero) {
        for (const [name, v] of Object.entries(zero[0]!.params!)) expect(hex(r.params![name]!), `${name} on rank ${r.rank}`).toBe(hex(v));
        for (const [name, v] of Object.entries(dp[0]!.params!)) {
          if (clip) expectNear(r.params![name]!, v, `${name} (clip) against the all-reduce step`);
          else expect(hex(r.params![name]!), `${name} against the all-reduce step`).toBe(hex(v));
        }
      }
      for (const [name, v] of Object.entries(plain!.params!)) expectNear(zero[0]!.params![name]!, v, `${name} against the plain step`);
    }
  });
});
