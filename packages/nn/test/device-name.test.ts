// Issue 20: the Generator checks its device with ir's checkDeviceName (core's parseDevice), not its
// own regex: 'cuda:01' or an index parseDevice refuses was taken as a device name (and then
// failed, on a machine without that GPU, as a missing GPU rather than a bad name).
import { capture, compile } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { GPT, Generator, type GPTConfig } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const cfg: GPTConfig = { vocabSize: rand(8, 16), blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
const exe = compile(capture(new GPT(cfg), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: rand(1, 1e6) });
const weights = new Map(exe.parameterNames().map((n) => [n, exe.get(n)] as const));
exe.dispose();

describe("the Generator's device, checked by parseDevice", () => {
  it("refuses 'cuda:01' and huge indexes as bad names (before: taken, then a missing GPU)", () => {
    for (const device of ['cuda:01', `cuda:${rand(10_000, 9e9)}`]) {
      const e = errorOf(() => new Generator(new GPT(cfg), weights, { device: device as never }).dispose());
      expect(e.code, device).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/'cpu' or 'cuda:N' for the generator's device/);
    }
    const g = new Generator(new GPT(cfg), weights, { device: 'cpu' });
    expect(g.generate([rand(0, cfg.vocabSize - 1)], { maxTokens: 2 }).length).toBe(2);
    g.dispose();
  });
});
