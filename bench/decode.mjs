#!/usr/bin/env node
// GPT-2 124M on the GPU, the Deepwell half of issue 18's checks (bench/decode_torch.py is the PyTorch
// half, run after it on the same files):
//   1. weights: GPT-2 small (llm.c's shape, vocabulary padded to 50304) initialised from SEED, written
//      as a Hugging Face directory (exportHuggingFace: model.safetensors with transformer.h.N names,
//      Conv1D weights transposed, config.json; the 50257 real rows of the vocabulary);
//   2. logits: Deepwell's forward of one random sequence of 1024 tokens, bf16 (autocast, the GPU's
//      default) and f32, written as f32 [1024, 50257] for decode_torch.py to compare with its own
//      forward written from the Hugging Face names;
//   3. decode speed: Generator with the key/value cache (bf16, batch 1, one CUDA graph a step),
//      greedy, a prompt of PROMPT tokens and NEW new tokens; wall time of the whole generate() call
//      (the prompt goes in token by token; the logits row comes back and the argmax is taken on the
//      host every step), a warm-up call first (compile, capture), the median of REPS. Then the same
//      without the cache (a forward over the context per token) over fewer tokens, and greedy with
//      the cache against greedy without it at this size, token for token.
//
//   node bench/decode.mjs <dir>     writes <dir>/hf/, <dir>/tokens.bin (i32), <dir>/logits-{bf16,f32}.bin,
//                                   <dir>/decode.json (and prints it)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { autocast, capture, compile } from '@deepwell/ir';
import { GPT, GPT_PRESETS, Generator } from '@deepwell/nn';
import { exportHuggingFace } from '@deepwell/trainer';
import { median } from './bench-stats.mjs';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node bench/decode.mjs <dir>');
mkdirSync(dir, { recursive: true });
const SEED = Number(process.env.SEED ?? 1234);
const PROMPT = Number(process.env.PROMPT ?? 8);
const NEW = Number(process.env.NEW ?? 512);
const REPS = Number(process.env.REPS ?? 3);
const config = { ...GPT_PRESETS['gpt2-small'] };
const V = 50257;
const T = config.blockSize;
const log = (m) => console.log(`[decode.mjs ${(performance.now() / 1000).toFixed(1)}s] ${m}`);

// 1. Weights, and the Hugging Face directory.
const init = compile(capture(new GPT(config), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: SEED });
const weights = new Map(init.parameterNames().map((n) => [n, init.get(n)]));
init.dispose();
exportHuggingFace(join(dir, 'hf'), weights, config, { vocabSize: V });
log(`weights (seed ${SEED}) exported to ${join(dir, 'hf')}`);

// 2. Logits of one sequence, bf16 and f32.
let s = SEED;
const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const tokens = Int32Array.from({ length: T }, () => Math.floor(rand() * V));
writeFileSync(join(dir, 'tokens.bin'), tokens);
for (const precision of ['bf16', 'f32']) {
  const g = capture(new GPT(config), { tokens: { shape: [1, T], dtype: 'i32' } });
  const exe = compile(precision === 'bf16' ? autocast(g) : g, { device: 'cuda:0' });
  for (const [n, w] of weights) exe.set(n, w);
  const logits = exe.run({ tokens }).logits;
  exe.dispose();
  const out = new Float32Array(T * V);
  for (let t = 0; t < T; t++) out.set(logits.subarray(t * config.vocabSize, t * config.vocabSize + V), t * V);
  writeFileSync(join(dir, `logits-${precision}.bin`), out);
  log(`logits ${precision} written`);
}

// 3. Decode speed, bf16, batch 1.
const prompt = Array.from(tokens.subarray(0, PROMPT));
function timed(gen, n, reps) {
  // Warm-up at the timed length: without the cache the forward is compiled per sequence length.
  gen.generate(prompt, { maxTokens: n, temperature: 0, vocab: V });
  const runs = [];
  let out = null;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    out = gen.generate(prompt, { maxTokens: n, temperature: 0, vocab: V });
    runs.push(performance.now() - t0);
  }
  const ms = median(runs);
  return { tokens: out, ms, runs, tokensPerSecond: (n / ms) * 1000, msPerToken: ms / n };
}
const cached = new Generator(new GPT(config), weights, { device: 'cuda:0' });
const withCache = timed(cached, NEW, REPS);
log(`with the cache: ${withCache.tokensPerSecond.toFixed(0)} tokens/s (${withCache.msPerToken.toFixed(3)} ms a token, runs ${withCache.runs.map((r) => r.toFixed(0)).join(', ')} ms)`);
const NOCACHE = Number(process.env.NOCACHE_NEW ?? 64);
const plain = new Generator(new GPT(config), weights, { device: 'cuda:0', cache: false });
const without = timed(plain, NOCACHE, 1);
log(`without the cache (${NOCACHE} tokens): ${without.tokensPerSecond.toFixed(0)} tokens/s`);
const first = withCache.tokens.slice(0, NOCACHE);
const agree = first.findIndex((t, i) => t !== without.tokens[i]);
cached.dispose();
plain.dispose();

const result = {
  gpu: process.env.GPU_NAME ?? null,
  date: new Date().toISOString(),
  commit: process.env.DEEPWELL_COMMIT ?? null,
  model: 'gpt2-small (124M, vocab 50304 padded; 50257 sampled)',
  seed: SEED,
  precision: 'bf16',
  batch: 1,
  prompt: PROMPT,
  newTokens: NEW,
  method: `Generator.generate wall time (prompt token by token, greedy, logits row to the host each step), warm-up call first, median of ${REPS}`,
  cache: { tokensPerSecond: withCache.tokensPerSecond, msPerToken: withCache.msPerToken, runsMs: withCache.runs },
  noCache: { newTokens: NOCACHE, tokensPerSecond: without.tokensPerSecond, msPerToken: without.msPerToken },
  greedyCacheEqualsNoCache: { tokens: NOCACHE, firstDifference: agree },
  greedyTokens: withCache.tokens,
};
writeFileSync(join(dir, 'decode.json'), JSON.stringify(result, null, 1));
console.log(JSON.stringify({ ...result, greedyTokens: `${result.greedyTokens.length} tokens` }));
