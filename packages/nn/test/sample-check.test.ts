// Issue 20: generate's options are checked by checkSampleOptions, the one check the Trainer's
// sample option uses too, keeping the stricter rule of the two: topK is an integer in
// [1, vocabSize] (before: generate took 2^40 or Infinity, which the Trainer refused).
import { capture, compile } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { GPT, Generator, checkPrompt, checkSampleOptions, sampleToken, type GPTConfig } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const cfg: GPTConfig = { vocabSize: int(8, 20), blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
function weightsOf(config: GPTConfig): Map<string, Float32Array> {
  const exe = compile(capture(new GPT(config), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: int(1, 1e6) });
  const w = new Map(exe.parameterNames().map((n) => [n, exe.get(n)] as const));
  exe.dispose();
  return w;
}

describe('generate and the Trainer share one sampling check', () => {
  it('generate refuses topK above the vocabulary or Infinity (before: accepted)', () => {
    const g = new Generator(new GPT(cfg), weightsOf(cfg));
    try {
      for (const topK of [cfg.vocabSize + int(1, 100), 2 ** 40, Infinity]) {
        const e = errorOf(() => g.generate([int(0, cfg.vocabSize - 1)], { maxTokens: 2, topK }));
        expect(e.code).toBe('INVALID_ARGUMENT');
        expect(e.message).toMatch(/positive integer for topK but received .* \(at most the model's vocabSize/);
      }
      const out = g.generate([int(0, cfg.vocabSize - 1)], { maxTokens: 3, topK: int(1, cfg.vocabSize), seed: int(0, 99) });
      expect(out.length).toBe(3);
      expect(out.every((t) => Number.isInteger(t) && t >= 0 && t < cfg.vocabSize)).toBe(true);
    } finally {
      g.dispose();
    }
  });

  it('names options with the caller\'s prefix; sampleToken keeps Infinity (its documented "all")', () => {
    const at = { vocabSize: cfg.vocabSize, blockSize: cfg.blockSize, prefix: 'sample.' };
    expect(errorOf(() => checkSampleOptions({ maxTokens: 1, topP: 0 }, at)).message).toMatch(/for sample\.topP but received 0/);
    expect(errorOf(() => checkPrompt([cfg.vocabSize], at)).message).toMatch(/for sample\.prompt\[0\]/);
    expect(checkSampleOptions({ maxTokens: 4 }, at)).toEqual({ maxTokens: 4, temperature: 1, topK: cfg.vocabSize, topP: 1, seed: 0, stop: null, vocab: cfg.vocabSize });
    const logits = Array.from({ length: cfg.vocabSize }, () => Math.random() * 4 - 2);
    const id = sampleToken(logits, { topK: Infinity }, Math.random());
    expect(id >= 0 && id < cfg.vocabSize).toBe(true);
  });
});
