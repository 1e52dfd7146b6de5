// A Deepwell checkpoint loads in PyTorch with the `safetensors` package, and its tensors match.
// Runs where python3 has torch and safetensors (the GPU host); skipped elsewhere.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, markovShard, readSafetensors } from '../src/index.js';
import { CHECKSUM_KEY } from '../src/safetensors.js';

const python = process.env.DEEPWELL_PYTHON ?? 'python3';
const hasTorch = spawnSync(python, ['-c', 'import torch, safetensors'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasTorch)('checkpoints in PyTorch', () => {
  it('loads with safetensors.safe_open; every tensor and the metadata match', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-torch-'));
    const train = new TokenLoader({ shards: [markovShard(new MarkovCorpus({ vocab: 16, seed: 1 }), 5000)], batchSize: 2, seqLen: 16 });
    const r = new Trainer({ model: new GPT('tiny'), train, device: 'cpu', steps: 3, log: { progress: false }, checkpoint: { dir, every: 3 } }).fit();
    const p = spawnSync(python, [new URL('./fixtures/torch-load.py', import.meta.url).pathname, r.checkpoint!], { encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    const torch = JSON.parse(p.stdout) as { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; sum: number; first: number[] }> };
    const ours = readSafetensors(r.checkpoint!);
    // PyTorch sees our metadata and, beside it, the per-tensor checksums (CHECKSUM_KEY), which
    // readSafetensors verifies and leaves out of what it returns.
    const { [CHECKSUM_KEY]: sums, ...rest } = torch.metadata;
    expect(rest).toEqual(ours.metadata);
    expect(Object.keys(JSON.parse(sums!) as Record<string, string>).sort()).toEqual(['__metadata__', ...ours.tensors.keys()].sort());
    expect(Object.keys(torch.tensors).sort()).toEqual([...ours.tensors.keys()].sort());
    for (const [name, t] of ours.tensors) {
      // The weights and moments are F32; the loss history (#loss.step, #loss.value) F64.
      expect(['F32', 'F64'], name).toContain(t.dtype);
      const v: number[] = Array.from(t.dtype === 'F64' ? new Float64Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 8) : new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4));
      const th = torch.tensors[name]!;
      expect(th.dtype, name).toBe(t.dtype === 'F64' ? 'torch.float64' : 'torch.float32');
      expect(th.shape).toEqual(t.shape);
      expect(th.first).toEqual(v.slice(0, 4));
      const sum = v.reduce((a, b) => a + b, 0);
      expect(Math.abs(th.sum - sum)).toBeLessThanOrEqual(1e-9 * v.reduce((a, b) => a + Math.abs(b), 0) + 1e-30);
    }
  });
});
