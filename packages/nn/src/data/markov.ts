/**
 * A synthetic corpus with a known entropy rate: a Markov source of order 1 or 2 over V symbols,
 * with random transition rows (softmax of Gaussian logits over a temperature, so some are peaked).
 * Its entropy rate H = Σ_s π(s) · H(P(·|s)) is computed exactly from the stationary distribution,
 * so a test can tell a model that learned the source (loss → H) from one that did not.
 */
import { DeepwellError, checkInteger } from '@deepwell/core';
import { rng } from '@deepwell/ir';

export interface MarkovOptions {
  vocab: number;
  order?: 1 | 2;
  seed?: number;
  /** Lower is more predictable (peaked rows); default 0.5. */
  temperature?: number;
}

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
    this.vocab = checkInteger(options.vocab, 'Markov vocab', 2, 4096);
    this.order = options.order ?? 1;
    if (this.order !== 1 && this.order !== 2) throw new DeepwellError('INVALID_ARGUMENT', `Expected 1 or 2 for Markov order but received ${String(options.order)}`);
    const t = options.temperature ?? 0.5;
    const r = rng((options.seed ?? 0) ^ 0x5eed);
    this.states = this.vocab ** this.order;
    this.transitions = new Float64Array(this.states * this.vocab);
    for (let s = 0; s < this.states; s++) {
      let z = 0;
      for (let j = 0; j < this.vocab; j++) {
        const g = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
        const w = Math.exp(g / t);
        this.transitions[s * this.vocab + j] = w;
        z += w;
      }
      for (let j = 0; j < this.vocab; j++) this.transitions[s * this.vocab + j]! /= z;
    }
    this.#next = rng((options.seed ?? 0) ^ 0xda7a);
    this.#a = Math.floor(this.#next() * this.vocab);
    this.#b = Math.floor(this.#next() * this.vocab);
    this.sample(1000); // burn in: from here on the chain is (very nearly) stationary
  }

  /** Stationary distribution over states, by power iteration. */
  stationary(): Float64Array {
    const V = this.vocab;
    let pi = new Float64Array(this.states).fill(1 / this.states);
    for (let it = 0; it < 2000; it++) {
      const nx = new Float64Array(this.states);
      for (let s = 0; s < this.states; s++) {
        for (let j = 0; j < V; j++) {
          const to = this.order === 1 ? j : (s % V) * V + j;
          nx[to]! += pi[s]! * this.transitions[s * V + j]!;
        }
      }
      let diff = 0;
      for (let s = 0; s < this.states; s++) diff += Math.abs(nx[s]! - pi[s]!);
      pi = nx;
      if (diff < 1e-13) break;
    }
    return pi;
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
    checkInteger(n, 'sample length', 1);
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
    checkInteger(B, 'batch size', 1);
    checkInteger(T, 'sequence length', 1);
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
