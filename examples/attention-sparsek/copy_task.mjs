// The copy task of quality.mjs: a long-context task whose answer sits a fixed, known distance back,
// generated here from a seeded PRNG (every run and every model sees the same batches).
//
// One sample of length T (T even), h = T / 2, V content symbols 0 .. V-1 and a separator SEP = V:
//
//   s = x_0 x_1 … x_{h-1}  SEP  x_0 x_1 … x_{h-1}        (T + 1 symbols, each x_i uniform in [0, V))
//   tokens[p]  = s[p]                                       p = 0 .. T-1
//   targets[p] = -1 (ignored by cross_entropy)              p < h   (the random half: nothing to learn)
//   targets[p] = s[p + 1] = x_{p-h}                         p >= h  (the separator and the copy)
//
// So h of the T positions are scored, and the token to predict at p sits exactly h = T/2 positions
// back: query block i of the copy reads key block i - T/(2·blockSize), one whole block, when
// blockSize divides T/2 (the separator's target x_0 sits in block 0, which `first: true` keeps).
//
// Known levels (nats per scored token):
//   optimum 0: every target is a copy of a token in the context, so a model that finds it is exact;
//   chance log(V): the x_i are independent and uniform, so a model that cannot see the first half (or
//   does not look there) can do no better than uniform over the V symbols, whatever else it sees
//   (the copy so far tells nothing about the next x).
//
// Why independent uniform symbols and a vocabulary of a few times the block size (quality.mjs's GPU
// default: V = 1024 for blocks of n = 128, a contrast of 9) rather than a tiny alphabet or "segments": SparseK ranks key blocks by the
// dot product of the query block's mean query with each key block's mean key. A head that matches
// symbols (q·k high where they agree, as an induction head does) gives a block pair a score near the
// overlap of their symbol histograms, Σ_v c_v c'_v: about n + n²/V for the copy and its source, n²/V
// for any other block, a contrast of 1 + V/n. Over 20 samples at T = 4096 (every copy block against
// the 32 source blocks): V = 256, 78 against 16 ± 4 (5×); V = 64, 126 against 64 ± 8 (2×). An
// exact matcher finds the source either way; a learnt one, whose scores carry a common part and
// noise from the other features (and the other query heads of its GQA group, which share the
// selection), needs the contrast. Segments from per-segment sub-alphabets would give it too, but
// they make the copy locally predictable (a model that sees only the copy block learns its
// sub-alphabet), lowering the bar a model without long-range attention reaches below log(V); sparse
// histograms give the contrast and keep the chance level exact. A larger V also makes the copy
// easier to learn by content: two consecutive symbols recur elsewhere in the first half for only
// ~h/V² of the positions (3% at h = 2048, V = 256; 50% at V = 64).
import { rng } from '@deepwell/ir';

/** Check an integer option, "Expected X for Y but received Z". */
function int(v, what, min) {
  if (!Number.isInteger(v) || v < min) throw new Error(`Expected an integer >= ${min} for ${what} but received ${v}`);
  return v;
}

/** The PRNG seed of sample k of a run seeded `seed` (a 32-bit mix, so samples are independent). */
const sampleSeed = (seed, k) => (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0;

/** Sample k: tokens and targets (Int32Array of T each) written into `tokens` / `targets` at `at`. */
export function copySample({ T, vocab, seed }, k, tokens = new Int32Array(T), targets = new Int32Array(T), at = 0) {
  const h = T / 2;
  const next = rng(sampleSeed(seed, k));
  const x = Int32Array.from({ length: h }, () => Math.floor(next() * vocab));
  for (let p = 0; p < T; p++) {
    // s[p] for p < h: x_p; s[h]: SEP; s[p] for p > h: x_{p-h-1}.
    tokens[at + p] = p < h ? x[p] : p === h ? vocab : x[p - h - 1];
    targets[at + p] = p < h ? -1 : x[p - h];
  }
  return { tokens, targets };
}

/**
 * A batch source for the Trainer (the shape of a TokenLoader: batchSize, seqLen, next(), state,
 * restore): batch n holds samples n·B .. n·B + B - 1, so the data depend on the seed and the position
 * only. The position is a LoaderState ({ epoch: 0, shard: 0, sample }) as a checkpoint stores it.
 */
export class CopyTask {
  constructor({ T, batch, vocab, seed = 0 }) {
    int(T, 'T of the copy task', 4);
    if (T % 2 !== 0) throw new Error(`Expected an even T for the copy task (two halves) but received ${T}`);
    this.seqLen = T;
    this.batchSize = int(batch, 'batch of the copy task', 1);
    this.vocab = int(vocab, 'vocab of the copy task', 2);
    this.seed = int(seed, 'seed of the copy task', 0);
    this.sample = 0;
  }

  /** The vocabulary the model needs: V symbols and the separator. */
  get tokens() {
    return this.vocab + 1;
  }

  /** Loss levels in nats per scored token (see the header). */
  get levels() {
    return { optimum: 0, chance: Math.log(this.vocab) };
  }

  /** The next batch: tokens and targets, i32[batch · T] each (row-major [batch, T]). */
  next() {
    const { batchSize: B, seqLen: T } = this;
    const tokens = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) copySample({ T, vocab: this.vocab, seed: this.seed }, this.sample++, tokens, targets, b * T);
    return { tokens, targets };
  }

  get state() {
    return { epoch: 0, shard: 0, sample: this.sample };
  }

  restore(state) {
    this.sample = int(state?.sample, 'copy task state sample', 0);
  }
}
