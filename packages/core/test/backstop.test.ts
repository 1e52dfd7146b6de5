// The FinalizationRegistry backstop: a tensor dropped without dispose() is freed once collected,
// and counted as a leak. Needs --expose-gc (set in vitest.config.ts).
import { expect, it } from 'vitest';
import { Tensor, cpuBackend, leakStats } from '../src/index.js';

const gc = (globalThis as { gc?: () => void }).gc;

it.skipIf(!gc)('frees and counts a tensor that was never disposed', async () => {
  const before = cpuBackend.memoryStats().inUse;
  const leaksBefore = leakStats().collectedWithoutDispose;
  const bytes = 4 * (1000 + Math.floor(Math.random() * 1000));
  (() => {
    Tensor.empty([bytes / 4], 'f32'); // dropped on the floor
  })();
  expect(cpuBackend.memoryStats().inUse).toBe(before + bytes);
  for (let i = 0; i < 50 && leakStats().collectedWithoutDispose === leaksBefore; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(leakStats().collectedWithoutDispose).toBe(leaksBefore + 1);
  expect(cpuBackend.memoryStats().inUse).toBe(before);
});

it.skipIf(!gc)('does not free a disposed tensor twice', async () => {
  const leaksBefore = leakStats().collectedWithoutDispose;
  (() => {
    Tensor.empty([16], 'f32').dispose();
  })();
  for (let i = 0; i < 5; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(leakStats().collectedWithoutDispose).toBe(leaksBefore);
});
