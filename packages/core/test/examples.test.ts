// The GPT-2 example without a GPU (where CI runs): its scripts stop at once with a message that says
// they need an NVIDIA GPU, instead of dying on `nvidia-smi: command not found` or starting a
// 25-minute-a-step CPU run. Skipped where a GPU is present (there they train).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const gpt2 = join(repo, 'examples', 'gpt2');
const linked = existsSync(join(gpt2, 'node_modules', '@deepwell', 'kernels-native'));
const gpu = linked && spawnSync(process.execPath, ['-e', "import('@deepwell/kernels-native').then((k) => process.exit(k.cudaStatus().available ? 0 : 1))"], { cwd: gpt2 }).status === 0;

describe.skipIf(!linked || gpu)('examples/gpt2 without a GPU', () => {
  it.each(['bench.mjs', 'host.mjs', 'memory.mjs', 'ce-bench.mjs'])('%s stops with exit 1 and says it needs an NVIDIA GPU', (script) => {
    const r = spawnSync(process.execPath, [script], { cwd: gpt2, encoding: 'utf8', timeout: 60_000, env: { ...process.env, GPT2_STEPS: '10' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/needs an NVIDIA GPU/);
    expect(r.stderr).not.toMatch(/nvidia-smi: command not found/);
  });
});
