// Out of memory at every allocation site of a compiled training step: the native allocator's fault
// injection (allocFault) fails the k-th device or pinned allocation, for every k the step makes.
// Each must surface as a typed OUT_OF_MEMORY, leave the allocator's bytes in use where they were
// once the partial executable (if any) is disposed, and leave the process able to build and run the
// same step again with the same loss. Skips cleanly without a GPU.
import { DeepwellError } from '@deepwell/core';
import { autocast, capture, compile, trainingStep, type Executable } from '@deepwell/ir';
import { cudaBackend, cudaStatus, loadNative } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { GPT, MarkovCorpus, type GPTConfig } from '../src/index.js';

const gpu = cudaStatus().available;
const CFG: GPTConfig = { vocabSize: 32, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
const [B, T] = [4, 16];
const spec = { tokens: { shape: [B, T], dtype: 'i32' as const }, targets: { shape: [B, T], dtype: 'i32' as const } };

describe.skipIf(!gpu)('out of memory at every allocation site of a compiled step', () => {
  it('is a typed OUT_OF_MEMORY each time, nothing stays allocated, and the step then runs as before', () => {
    const native = loadNative();
    const backend = cudaBackend(0);
    const corpus = new MarkovCorpus({ vocab: CFG.vocabSize, seed: 5 });
    const batches = [corpus.batch(B, T), corpus.batch(B, T)];
    // Capture, compile and run two steps (the second replays the captured CUDA graph).
    const attempt = (): { losses: number[]; error?: unknown } => {
      let exe: Executable | undefined;
      const losses: number[] = [];
      try {
        exe = compile(trainingStep(autocast(capture(new GPT(CFG), spec)), { optimizer: { weightDecay: 0 } }), { device: 'cuda:0', seed: 5 });
        for (const [i, b] of batches.entries()) losses.push(exe.run({ ...b, lr: Float32Array.of(1e-3), step: Float32Array.of(i + 1) }).loss![0]!);
        return { losses };
      } catch (error) {
        return { losses, error };
      } finally {
        exe?.dispose();
      }
    };
    native.allocFault(0);
    const base = backend.memoryStats().inUse;
    const ref = attempt();
    const sites = native.allocFault(0);
    expect(ref.error).toBeUndefined();
    expect(backend.memoryStats().inUse).toBe(base);
    expect(sites).toBeGreaterThan(10);
    const codes = new Map<string, number>();
    for (let k = 1; k <= sites; k++) {
      native.allocFault(k);
      const r = attempt();
      const seen = native.allocFault(0);
      // The fault fired (the k-th allocation happened) and was not swallowed.
      expect(seen, `site ${k}`).toBeGreaterThanOrEqual(k);
      expect(DeepwellError.is(r.error), `site ${k}: ${String(r.error)}`).toBe(true);
      const code = (r.error as DeepwellError).code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      expect(code, `site ${k}: ${(r.error as Error).message}`).toBe('OUT_OF_MEMORY');
      expect(backend.memoryStats().inUse, `bytes in use after the fault at site ${k}`).toBe(base);
    }
    const again = attempt();
    expect(again.error).toBeUndefined();
    expect(again.losses).toEqual(ref.losses);
    console.log(`allocation sites of a compiled bf16 GPT step (capture, compile, 2 steps): ${sites}; every fault typed: ${[...codes].map(([c, n]) => `${c} × ${n}`).join(', ')}`);
  }, 600_000);
});
