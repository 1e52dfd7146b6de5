/**
 * A CPU world: the collectives of W ranks that run in W worker threads of one process, over one
 * SharedArrayBuffer, so data-parallel steps (and their tests) run on the CPU without NCCL.
 *
 *   const world = createCpuWorld(W, { maxElements, timeoutMs });   // plain object: pass it as workerData
 *   // in the worker of rank r:
 *   const group = joinCpuWorld(world, r);                           // a CpuCollectives (cpu_group.ts)
 *   const { handle } = registerCpuCollectives(group);               // dataParallel(step, { worldSize: W, comm: handle })
 *
 * Why it is built this way: a collective is a blocking exchange, like NCCL's: each rank writes its
 * contribution into its own slot of the buffer, publishes a generation number in its `arrive` cell
 * and waits (Atomics.wait) until every rank's cell shows that generation; then each rank reads the
 * slots it needs and computes its result itself; a second barrier (the `depart` cells) keeps any rank
 * from overwriting its slot for the next exchange while another still reads it. Generations count
 * exchanges in every rank alike, so consecutive calls can never mix. A call larger than a slot
 * (maxElements float64 values) is cut into exchanges of a slot each.
 *
 * Every rank sums the slots in rank order (rank 0's value + rank 1's + ...) in float64, and 'avg'
 * divides that sum by W, so every rank gets the same bits, whatever the timing. Each exchange also
 * carries what was called (collective, op, lengths): ranks that disagree all get the same typed error
 * (SHAPE_MISMATCH for lengths) after the exchange, so none is left waiting.
 *
 * A rank that never arrives: each barrier waits at most timeoutMs in all, then throws TIMEOUT naming
 * the collective and the ranks missing, and marks the world failed (waking every waiter): a rank
 * still waiting then fails at once with TIMEOUT naming the ranks it still misses, and any later call
 * on the world throws PEER_FAILED. A world is never usable again after a failure.
 *
 * Tested in packages/ir/test/cpu_world.test.ts (worker fixture packages/ir/test/fixtures/cpu-rank.mjs).
 */
import { DeepwellError, checkInteger, checkKeys, invalid } from '@deepwell/core';
import type { CpuCollectives, CpuReduceOp } from './cpu_group.js';

/** What createCpuWorld returns: structured-cloneable (workerData, postMessage); the buffer is shared, not copied. */
export interface CpuWorld {
  readonly sab: SharedArrayBuffer;
  readonly worldSize: number;
  /** Float64 values one rank moves in one exchange (its slot); larger calls take several. */
  readonly maxElements: number;
  /** The longest one barrier waits for the other ranks, in milliseconds. */
  readonly timeoutMs: number;
}

export interface CpuWorldOptions {
  /** Default 2^18 (a 2 MiB slot a rank). */
  maxElements?: number;
  /** Default 60 000. */
  timeoutMs?: number;
}

/** The most ranks a CPU world holds (each is a thread of this process). */
export const MAX_CPU_WORLD_SIZE = 1024;
/** The most bytes of slots a CPU world allocates (worldSize · maxElements · 8). */
export const MAX_CPU_WORLD_BYTES = 2 ** 32;

// Layout: Int32 control [MAGIC, worldSize, maxElements, failed, joined[W], arrive[W], depart[W]],
// padded to 8 bytes; Float64 meta [W][META]; Float64 slots [W][maxElements].
const MAGIC = 0x44574331; // 'DWC1': bump with any change of layout
const HEAD = 4;
const FAILED = 3;
const META = 5; // kind, op, total length, lengths hash, chunk index
const KINDS = ['allReduce', 'reduceScatter', 'allGather'] as const;
type Kind = (typeof KINDS)[number];

function layout(worldSize: number, maxElements: number) {
  const ctrlInts = HEAD + 3 * worldSize;
  const metaAt = Math.ceil((ctrlInts * 4) / 8) * 8;
  const slotsAt = metaAt + worldSize * META * 8;
  return { ctrlInts, metaAt, slotsAt, bytes: slotsAt + worldSize * maxElements * 8 };
}

export function createCpuWorld(worldSize: number, options: CpuWorldOptions = {}): CpuWorld {
  checkInteger(worldSize, 'worldSize of createCpuWorld', 1, MAX_CPU_WORLD_SIZE);
  if (typeof options !== 'object' || options === null) invalid('an options object ({ maxElements, timeoutMs })', 'createCpuWorld', options);
  checkKeys(options, ['maxElements', 'timeoutMs'], 'createCpuWorld');
  const maxElements = options.maxElements === undefined ? 2 ** 18 : checkInteger(options.maxElements, 'maxElements of createCpuWorld', 1, 2 ** 30);
  const timeoutMs = options.timeoutMs === undefined ? 60_000 : checkInteger(options.timeoutMs, 'timeoutMs of createCpuWorld', 1, 2 ** 31 - 1);
  if (worldSize * maxElements * 8 > MAX_CPU_WORLD_BYTES) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected worldSize · maxElements · 8 at most ${MAX_CPU_WORLD_BYTES} bytes for createCpuWorld but received ${worldSize} · ${maxElements} · 8`);
  }
  const sab = new SharedArrayBuffer(layout(worldSize, maxElements).bytes);
  const ctrl = new Int32Array(sab);
  ctrl[0] = MAGIC;
  ctrl[1] = worldSize;
  ctrl[2] = maxElements;
  return { sab, worldSize, maxElements, timeoutMs };
}

/** The collectives of rank `rank` of `world`; each rank joins once, in its own thread. */
export function joinCpuWorld(world: CpuWorld, rank: number): CpuCollectives {
  if (typeof world !== 'object' || world === null || !(world.sab instanceof SharedArrayBuffer)) invalid("a CPU world (createCpuWorld's object)", 'joinCpuWorld', world);
  const W = checkInteger(world.worldSize, 'worldSize of the CPU world', 1, MAX_CPU_WORLD_SIZE);
  const max = checkInteger(world.maxElements, 'maxElements of the CPU world', 1, 2 ** 30);
  checkInteger(world.timeoutMs, 'timeoutMs of the CPU world', 1, 2 ** 31 - 1);
  checkInteger(rank, `rank of joinCpuWorld (a world of ${W})`, 0, W - 1);
  const l = layout(W, max);
  const ctrl = new Int32Array(world.sab, 0, Math.min(l.ctrlInts, world.sab.byteLength >> 2));
  if (world.sab.byteLength !== l.bytes || ctrl[0] !== MAGIC || ctrl[1] !== W || ctrl[2] !== max) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a CPU world made by this build's createCpuWorld for joinCpuWorld but received a buffer of another layout (${world.sab.byteLength} bytes; rebuild every thread's copy of @deepwell/ir?)`);
  }
  if (Atomics.compareExchange(ctrl, HEAD + rank, 0, 1) !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected each rank of a CPU world joined once but rank ${rank} has already been joined`);
  return new SharedCollectives(world, rank);
}

/** Lengths folded into one exactly representable number (a rank's list of tensor lengths, compared across ranks). */
function lengthsHash(lengths: readonly number[]): number {
  let h = lengths.length;
  for (const n of lengths) h = (h * 1000003 + n + 1) % 2147483647;
  return h;
}

const f64 = (x: unknown, what: string): Float64Array => (x instanceof Float64Array ? x : invalid('a Float64Array', what, x));

class SharedCollectives implements CpuCollectives {
  readonly rank: number;
  readonly worldSize: number;
  readonly #max: number;
  readonly #timeoutMs: number;
  readonly #ctrl: Int32Array;
  readonly #meta: Float64Array;
  readonly #slots: Float64Array[];
  #gen = 0; // exchanges made, the same count on every rank

  constructor(world: CpuWorld, rank: number) {
    const { worldSize: W, maxElements: max } = world;
    const l = layout(W, max);
    this.rank = rank;
    this.worldSize = W;
    this.#max = max;
    this.#timeoutMs = world.timeoutMs;
    this.#ctrl = new Int32Array(world.sab, 0, l.ctrlInts);
    this.#meta = new Float64Array(world.sab, l.metaAt, W * META);
    this.#slots = Array.from({ length: W }, (_, q) => new Float64Array(world.sab, l.slotsAt + q * max * 8, max));
  }

  allReduce(xs: readonly Float64Array[], op: CpuReduceOp): Float64Array[] {
    if (!Array.isArray(xs)) invalid('an array of Float64Arrays', 'the inputs of allReduce', xs);
    xs.forEach((x, k) => f64(x, `allReduce's input ${k}`));
    checkOp(op, 'allReduce');
    const outs = xs.map((x) => new Float64Array(x.length));
    const total = xs.reduce((a, x) => a + x.length, 0);
    // Where [a, b) of the inputs' concatenation lies: (tensor, offset in it, offset in [a, b), length).
    const pieces = (a: number, b: number, f: (k: number, at: number, off: number, n: number) => void) => {
      let start = 0;
      xs.forEach((x, k) => {
        const lo = Math.max(a, start);
        const hi = Math.min(b, start + x.length);
        if (lo < hi) f(k, lo - start, lo - a, hi - lo);
        start += x.length;
      });
    };
    this.#chunked('allReduce', op, total, lengthsHash(xs.map((x) => x.length)), (a, b, mine) => pieces(a, b, (k, at, off, n) => mine.set(xs[k]!.subarray(at, at + n), off)), (a, b) => pieces(a, b, (k, at, off, n) => this.#reduce(outs[k]!.subarray(at, at + n), off, op)));
    return outs;
  }

  reduceScatter(x: Float64Array, op: CpuReduceOp): Float64Array {
    f64(x, "reduceScatter's input");
    checkOp(op, 'reduceScatter');
    const block = Math.floor(x.length / this.worldSize);
    const out = new Float64Array(block);
    const lo = this.rank * block;
    this.#chunked('reduceScatter', op, x.length, 0, (a, b, mine) => mine.set(x.subarray(a, b)), (a, b) => {
      // Only this rank's block of the sum: [lo, lo + block) ∩ [a, b).
      const s = Math.max(a, lo);
      const e = Math.min(b, lo + block);
      if (s < e) this.#reduce(out.subarray(s - lo, e - lo), s - a, op);
    });
    return out;
  }

  allGather(x: Float64Array): Float64Array {
    f64(x, "allGather's input");
    const m = x.length;
    const out = new Float64Array(m * this.worldSize);
    this.#chunked('allGather', 'sum', m, 0, (a, b, mine) => mine.set(x.subarray(a, b)), (a, b) => {
      for (let q = 0; q < this.worldSize; q++) out.set(this.#slots[q]!.subarray(0, b - a), q * m + a);
    });
    return out;
  }

  /** out[i] = Σ_q slot_q[off + i] in rank order (÷ W for 'avg'). */
  #reduce(out: Float64Array, off: number, op: CpuReduceOp): void {
    const n = out.length;
    out.set(this.#slots[0]!.subarray(off, off + n));
    for (let q = 1; q < this.worldSize; q++) {
      const s = this.#slots[q]!;
      for (let i = 0; i < n; i++) out[i] = out[i]! + s[off + i]!;
    }
    if (op === 'avg') for (let i = 0; i < n; i++) out[i] = out[i]! / this.worldSize;
  }

  /**
   * One collective of `total` elements in exchanges of at most a slot: `write(a, b, slot)` puts
   * elements [a, b) into this rank's slot; after every rank has, `read(a, b)` takes what this rank needs.
   */
  #chunked(kind: Kind, op: CpuReduceOp, total: number, hash: number, write: (a: number, b: number, mine: Float64Array) => void, read: (a: number, b: number) => void): void {
    const chunks = Math.max(1, Math.ceil(total / this.#max));
    for (let c = 0; c < chunks; c++) {
      const a = c * this.#max;
      const b = Math.min(total, a + this.#max);
      this.#checkLive(kind);
      this.#gen = (this.#gen + 1) | 0;
      const meta = this.#meta.subarray(this.rank * META, (this.rank + 1) * META);
      meta.set([KINDS.indexOf(kind), op === 'avg' ? 1 : 0, total, hash, c]);
      write(a, b, this.#slots[this.rank]!);
      this.#barrier(HEAD + this.worldSize, kind, c, chunks);
      const bad = this.#disagreement(kind);
      if (!bad) read(a, b);
      this.#barrier(HEAD + 2 * this.worldSize, kind, c, chunks);
      if (bad) throw bad; // every rank sees the same metas, so every rank throws it
    }
  }

  /** The same typed error on every rank when the ranks' calls disagree; null when they agree. */
  #disagreement(kind: Kind): DeepwellError | null {
    const m = this.#meta;
    const at = (q: number) => Array.from(m.subarray(q * META, (q + 1) * META));
    const r0 = at(0);
    for (let q = 1; q < this.worldSize; q++) {
      const r = at(q);
      if (r[0] !== r0[0] || r[4] !== r0[4]) return new DeepwellError('INVALID_ARGUMENT', `${kind}: Expected every rank of the CPU world to call the same collective but rank 0 called ${KINDS[r0[0]!]} (exchange ${r0[4]}) and rank ${q} ${KINDS[r[0]!]} (exchange ${r[4]})`);
      if (r[1] !== r0[1]) return new DeepwellError('INVALID_ARGUMENT', `${kind}: Expected the same reduction on every rank but rank 0 asked for '${r0[1] ? 'avg' : 'sum'}' and rank ${q} for '${r[1] ? 'avg' : 'sum'}'`);
      if (r[2] !== r0[2] || r[3] !== r0[3]) {
        const lengths = Array.from({ length: this.worldSize }, (_, p) => `${m[p * META + 2]} on rank ${p}`).join(', ');
        return new DeepwellError('SHAPE_MISMATCH', `${kind}: Expected the same ${kind === 'allReduce' ? 'tensor lengths' : 'length'} on every rank but received ${lengths}${kind === 'allReduce' && r[2] === r0[2] ? ' (equal totals, different tensors)' : ''}`, { details: { collective: kind } });
      }
    }
    if (kind === 'reduceScatter' && r0[2]! % this.worldSize !== 0) {
      return new DeepwellError('SHAPE_MISMATCH', `reduceScatter: Expected a length divisible by the world size ${this.worldSize} but received ${r0[2]}`, { details: { collective: kind } });
    }
    return null;
  }

  #checkLive(kind: Kind): void {
    const f = Atomics.load(this.#ctrl, FAILED);
    if (f !== 0) throw new DeepwellError('PEER_FAILED', `${kind}: the CPU world failed earlier (rank ${f - 1} gave up waiting for other ranks); it cannot be used again`, { details: { collective: kind, failedRank: f - 1 } });
  }

  /** Publish this exchange's generation in cells[rank], then wait until every rank's cell shows it. */
  #barrier(cells: number, kind: Kind, chunk: number, chunks: number): void {
    const { rank, worldSize: W } = this;
    const gen = this.#gen;
    const ctrl = this.#ctrl;
    Atomics.store(ctrl, cells + rank, gen);
    Atomics.notify(ctrl, cells + rank);
    const deadline = performance.now() + this.#timeoutMs;
    const reached = (q: number) => ((Atomics.load(ctrl, cells + q) - gen) | 0) >= 0; // a rank is at most one exchange ahead
    for (let q = 0; q < W; q++) {
      for (;;) {
        const v = Atomics.load(ctrl, cells + q);
        if (((v - gen) | 0) >= 0) break;
        const failed = Atomics.load(ctrl, FAILED) !== 0;
        const left = deadline - performance.now();
        if (failed || left <= 0) {
          const missing = Array.from({ length: W }, (_, p) => p).filter((p) => !reached(p));
          const first = Atomics.compareExchange(ctrl, FAILED, 0, rank + 1); // 0: this rank gives up first
          if (first === 0) for (let i = HEAD + W; i < HEAD + 3 * W; i++) Atomics.notify(ctrl, i); // wake every waiter
          const where = `${kind}${chunks > 1 ? ` (exchange ${chunk + 1} of ${chunks})` : ''}, ${cells === HEAD + W ? 'arrival' : 'departure'} barrier`;
          const who = first === 0 ? `rank ${rank} waited ${this.#timeoutMs} ms` : `rank ${first - 1} gave up first`;
          throw new DeepwellError('TIMEOUT', `${where}: rank(s) ${missing.join(', ')} of the CPU world of ${W} did not arrive (${who}); every rank must make the same collective calls in the same order`, { details: { collective: kind, missing, rank } });
        }
        Atomics.wait(ctrl, cells + q, v, left);
      }
    }
  }
}

function checkOp(op: unknown, kind: Kind): void {
  if (op !== 'sum' && op !== 'avg') invalid("'sum' or 'avg'", `the op of ${kind}`, op);
}
