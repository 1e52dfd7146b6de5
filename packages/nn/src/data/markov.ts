/**
 * A synthetic corpus with a known entropy rate: a Markov source of order 1 or 2 over V symbols,
 * with random transition rows (softmax of Gaussian logits over a temperature, so some are peaked).
 * Its entropy rate H = Σ_s π(s) · H(P(·|s)) is computed exactly from the stationary distribution,
 * so a test can tell a model that learned the source (loss → H) from one that did not.
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber } from '@deepwell/core';
import { rng } from '@deepwell/ir';

export interface MarkovOptions {
  /** Symbols, in [2, 4096]; with order 2, vocab³ (the transition table) at most 2^24, so vocab <= 256. */
  vocab: number;
  order?: 1 | 2;
  /** An integer in [0, 2^32) (default 0). */
  seed?: number;
  /** Lower is more predictable (peaked rows); a finite number > 0 (default 0.5; tiny values give one-hot rows). */
  temperature?: number;
}

/** Most entries of a transition table (states × vocab): 2^24 float64s, 128 MiB. */
const MAX_TABLE = 2 ** 24;
/** Most symbols one call of sample() (or batch()) makes: 2^26. */
export const MAX_SAMPLE = 2 ** 26;
const OPTION_KEYS = ['vocab', 'order', 'seed', 'temperature'];

export class MarkovCorpus {
  readonly vocab: number;
  readonly order: 1 | 2;
  /** Transition probabilities: row per state (a symbol, or a pair for order 2), V columns. */
  readonly transitions: Float64Array;
  readonly states: number;
  #next: () => number;
  #a = 0;
  #b = 0;

  constructor(options: MarkovOptions) {
    checkKeys(options, OPTION_KEYS, 'MarkovCorpus');
    const vocab = checkInteger(options.vocab, 'Markov vocab', 2, 4096);
    const order = options.order === undefined ? 1 : options.order;
    if (order !== 1 && order !== 2) throw new DeepwellError('INVALID_ARGUMENT', `Expected 1 or 2 for Markov order but received ${String(options.order)}`);
    if (vocab ** (order + 1) > MAX_TABLE) throw new DeepwellError('INVALID_ARGUMENT', `Expected at most ${MAX_TABLE} transition entries (vocab^${order + 1}) for a MarkovCorpus of order ${order} but received vocab ${vocab} (${vocab ** (order + 1)} entries)`);
    const t = options.temperature === undefined ? 0.5 : checkNumber(options.temperature, 'Markov temperature', { above: 0 });
    const seed = checkInteger(options.seed === undefined ? 0 : options.seed, 'Markov seed', 0, 2 ** 32 - 1);
    this.vocab = vocab;
    this.order = order;
    const r = rng(seed ^ 0x5eed);
    this.states = this.vocab ** this.order;
    this.transitions = new Float64Array(this.states * this.vocab);
    const g = new Float64Array(this.vocab);
    for (let s = 0; s < this.states; s++) {
      let z = 0;
      let top = -Infinity;
      for (let j = 0; j < this.vocab; j++) {
        g[j] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
        top = Math.max(top, g[j]!);
        const w = Math.exp(g[j]! / t);
        this.transitions[s * this.vocab + j] = w;
        z += w;
      }
      if (!(Number.isFinite(z) && z >= 1e-300)) {
        // A low temperature overflowed (or underflowed) exp: the same softmax from the row's largest logit (one-hot as t -> 0).
        z = 0;
        for (let j = 0; j < this.vocab; j++) z += this.transitions[s * this.vocab + j] = Math.exp((g[j]! - top) / t);
      }
      for (let j = 0; j < this.vocab; j++) this.transitions[s * this.vocab + j]! /= z;
    }
    this.#next = rng(seed ^ 0xda7a);
    this.#a = Math.floor(this.#next() * this.vocab);
    this.#b = Math.floor(this.#next() * this.vocab);
    this.sample(1000); // burn in: from here on the chain is (very nearly) stationary
  }

  /**
   * Stationary distribution over states, by power iteration to an L1 change below 1e-13, within at
   * most 2000 steps and 2^32 multiply-adds (about 256 steps over the largest table): a chain that
   * mixes slowly (a low temperature over a large table) would otherwise take minutes. Past that
   * budget a change below 1e-8 is taken (the entropy rate then within 1e-8 · ln vocab); a larger one
   * is solved for directly (π = πP, Σπ = 1, by Gaussian elimination) when there are at most 1024
   * states, and a typed error rather than a wrong rate above that. Transitions below 1e-16 are skipped: a low temperature
   * leaves most of a row there, and a step then costs only the transitions that matter.
   */
  stationary(): Float64Array {
    const V = this.vocab;
    const T = this.transitions;
    let nnz = 0;
    for (let e = 0; e < T.length; e++) if (T[e]! >= 1e-16) nnz++;
    // Sparse (the transitions that matter) when most of the table is below 1e-16, else dense.
    let step: (pi: Float64Array, nx: Float64Array) => void;
    if (2 * nnz < T.length) {
      const from = new Int32Array(nnz);
      const to = new Int32Array(nnz);
      const p = new Float64Array(nnz);
      for (let s = 0, e = 0; s < this.states; s++) {
        for (let j = 0; j < V; j++) {
          const x = T[s * V + j]!;
          if (x < 1e-16) continue;
          [from[e], to[e], p[e++]] = [s, this.order === 1 ? j : (s % V) * V + j, x];
        }
      }
      step = (pi, nx) => {
        for (let e = 0; e < nnz; e++) nx[to[e]!]! += pi[from[e]!]! * p[e]!;
      };
    } else {
      step = (pi, nx) => {
        for (let s = 0; s < this.states; s++) {
          const [w, row, at] = [pi[s]!, s * V, this.order === 1 ? 0 : (s % V) * V];
          for (let j = 0; j < V; j++) nx[at + j]! += w * T[row + j]!;
        }
      };
    }
    const steps = Math.min(2000, Math.max(1, Math.floor(2 ** 32 / (2 * nnz < T.length ? nnz : T.length))));
    let pi = new Float64Array(this.states).fill(1 / this.states);
    let diff = Infinity;
    for (let it = 0; it < steps && diff >= 1e-13; it++) {
      const nx = new Float64Array(this.states);
      step(pi, nx);
      diff = 0;
      for (let s = 0; s < this.states; s++) diff += Math.abs(nx[s]! - pi[s]!);
      pi = nx;
    }
    if (!(diff < 1e-8) && this.states <= 1024) return this.#solveStationary();
    if (!(diff < 1e-8)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a Markov chain that reaches its stationary distribution within ${steps} power-iteration steps (the work limit for ${this.states} states × ${V} symbols) for MarkovCorpus.stationary but after them it still changes by ${diff.toExponential(1)}; a higher temperature or a smaller vocab mixes faster`);
    }
    return pi;
  }

  /**
   * π = πP with Σπ = 1 solved directly: (Pᵀ - I) π = 0 with its last row replaced by Σπ = 1, by
   * Gaussian elimination with partial pivoting (O(states³): for chains too slow or too periodic for
   * power iteration, small ones only). A chain with no unique stationary distribution (rows so
   * peaked that it splits into separate cycles) is a typed error.
   */
  #solveStationary(): Float64Array {
    const [n, V] = [this.states, this.vocab];
    const A = new Float64Array(n * n);
    for (let s = 0; s < n; s++) {
      for (let j = 0; j < V; j++) A[(this.order === 1 ? j : (s % V) * V + j) * n + s]! += this.transitions[s * V + j]!;
      A[s * n + s]! -= 1;
    }
    A.fill(1, (n - 1) * n, n * n);
    const x = new Float64Array(n);
    x[n - 1] = 1;
    for (let c = 0; c < n; c++) {
      let p = c;
      for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]!) > Math.abs(A[p * n + c]!)) p = r;
      if (!(Math.abs(A[p * n + c]!) > 1e-12)) {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected a Markov chain with one stationary distribution for MarkovCorpus.stationary but this one (vocab ${V}, order ${this.order}) has several: its rows are so peaked (a very low temperature) that it splits into separate cycles`);
      }
      if (p !== c) {
        for (let k = 0; k < n; k++) [A[c * n + k], A[p * n + k]] = [A[p * n + k]!, A[c * n + k]!];
        [x[c], x[p]] = [x[p]!, x[c]!];
      }
      for (let r = c + 1; r < n; r++) {
        const f = A[r * n + c]! / A[c * n + c]!;
        if (f === 0) continue;
        for (let k = c; k < n; k++) A[r * n + k]! -= f * A[c * n + k]!;
        x[r]! -= f * x[c]!;
      }
    }
    for (let c = n - 1; c >= 0; c--) {
      let v = x[c]!;
      for (let k = c + 1; k < n; k++) v -= A[c * n + k]! * x[k]!;
      x[c] = Math.max(0, v / A[c * n + c]!);
    }
    return x;
  }

  /** Entropy rate in nats per symbol: the lowest mean cross-entropy any model can reach. */
  entropyRate(): number {
    const pi = this.stationary();
    const V = this.vocab;
    let h = 0;
    for (let s = 0; s < this.states; s++) {
      for (let j = 0; j < V; j++) {
        const p = this.transitions[s * V + j]!;
        if (p > 0) h -= pi[s]! * p * Math.log(p);
      }
    }
    return h;
  }

  #sampleRow(state: number): number {
    const u = this.#next();
    let c = 0;
    const row = state * this.vocab;
    for (let j = 0; j < this.vocab; j++) {
      c += this.transitions[row + j]!;
      if (u < c) return j;
    }
    return this.vocab - 1;
  }

  /** The next `n` symbols of the stream (the chain continues across calls, as a corpus would). */
  sample(n: number): Int32Array {
    checkInteger(n, 'sample length', 1, MAX_SAMPLE);
    const out = new Int32Array(n);
    let a = this.#a;
    let b = this.#b;
    for (let i = 0; i < n; i++) {
      const state = this.order === 1 ? b : a * this.vocab + b;
      const x = this.#sampleRow(state);
      out[i] = x;
      a = b;
      b = x;
    }
    this.#a = a;
    this.#b = b;
    return out;
  }

  /**
   * A batch of B consecutive windows of the stream: tokens and next-token targets, each i32[B, T]
   * flattened. With order 2 the first target of a window depends on a symbol the window does not
   * show, so the best loss is slightly above the entropy rate (by at most 1/T of log V).
   */
  batch(B: number, T: number): { tokens: Int32Array; targets: Int32Array } {
    checkInteger(B, 'batch size', 1, MAX_SAMPLE);
    checkInteger(T, 'sequence length', 1, MAX_SAMPLE - 1);
    if (B * (T + 1) > MAX_SAMPLE) throw new DeepwellError('INVALID_ARGUMENT', `Expected at most ${MAX_SAMPLE} symbols (B · (T + 1)) for a Markov batch but received B ${B} and T ${T} (${B * (T + 1)})`);
    const tokens = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const s = this.sample(T + 1);
      tokens.set(s.subarray(0, T), b * T);
      targets.set(s.subarray(1), b * T);
    }
    return { tokens, targets };
  }
}
