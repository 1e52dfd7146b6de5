// What the GPT-2 examples need, checked before they start, each missing piece said with what to do:
// an NVIDIA GPU that CUDA can use (asked of Deepwell's addon, which knows why not), and, for the
// PyTorch comparison (bench_torch.py), python3 with torch built for CUDA, numpy and safetensors (and,
// when GPT_CONFIG is a mixture of experts, a torch with torch._grouped_mm: 2.8 or later).
// The scripts import requireGpu; run.sh runs this file first.
//   node preflight.mjs [--gpu] [--torch]    exit 0 when all is there, else 1 with every reason
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cudaStatus } from '@deepwell/kernels-native';
import { GPT_PRESETS } from '@deepwell/nn';

/** Whether GPT_CONFIG (as bench.mjs reads it) names a GPT with MoE blocks; false when it is not readable (bench.mjs says why). */
function moeConfig() {
  const spec = (process.env.GPT_CONFIG ?? 'gpt2-small').trim();
  try {
    const model = spec.startsWith('{') ? JSON.parse(spec) : Object.hasOwn(GPT_PRESETS, spec) ? GPT_PRESETS[spec] : null;
    return Boolean(model?.moe);
  } catch {
    return false;
  }
}

/** Why there is no GPU to run on, or null when there is one. */
export function gpuProblem() {
  const s = cudaStatus();
  return s.available ? null : `no NVIDIA GPU that CUDA can use here: ${s.reason ?? 'unknown'}`;
}

/** Stop the calling script, saying what it needs the GPU for, when there is none. */
export function requireGpu(script, what, hint = '') {
  const problem = gpuProblem();
  if (!problem) return;
  console.error(`${script} needs an NVIDIA GPU: ${what}. There is ${problem}.${hint ? ` ${hint}` : ''}`);
  process.exit(1);
}

/** Why python3 cannot run bench_torch.py, or null when it can. */
export function torchProblem() {
  const code = [
    'import importlib.util, json',
    'missing = [m for m in ("torch", "numpy", "safetensors") if importlib.util.find_spec(m) is None]',
    'if missing:',
    '    print(json.dumps({"missing": missing}))',
    'else:',
    '    import torch',
    '    print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(), "built": torch.version.cuda, "groupedMm": hasattr(torch, "_grouped_mm")}))',
  ].join('\n');
  const r = spawnSync('python3', ['-c', code], { encoding: 'utf8', timeout: 120_000 });
  const skip = 'or set TORCH_MODES=none to run Deepwell alone';
  if (r.error?.code === 'ENOENT') return `python3 is not installed: the PyTorch comparison runs bench_torch.py with it (install Python 3, then pip install torch numpy safetensors, ${skip})`;
  if (r.status !== 0) return `python3 failed to start: ${(r.stderr || String(r.error)).trim().split('\n').at(-1)} (${skip})`;
  const info = JSON.parse(r.stdout.trim().split('\n').at(-1));
  if (info.missing) return `python3 has no ${info.missing.join(', ')}: pip install torch numpy safetensors (a CUDA build of torch), ${skip}`;
  if (!info.cuda) return `PyTorch ${info.torch} sees no GPU (torch.cuda.is_available() is False${info.built ? '' : ': this torch is a CPU-only build'}), ${skip}`;
  if (moeConfig() && !info.groupedMm) return `PyTorch ${info.torch} has no torch._grouped_mm, which bench_torch.py runs GPT_CONFIG's experts on (PyTorch 2.8 or later; the published runs use 2.11), ${skip}`;
  return null;
}

if (process.argv[1] && basename(process.argv[1]) === basename(fileURLToPath(import.meta.url))) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--gpu' && a !== '--torch');
  if (unknown.length) {
    console.error(`preflight.mjs: unknown argument ${unknown.join(', ')}\nUsage: node preflight.mjs [--gpu] [--torch]`);
    process.exit(2);
  }
  const gpu = args.includes('--gpu') && gpuProblem();
  const problems = [gpu && `${gpu}. These runs train GPT-2 124M (or GPT_CONFIG's model) on a GPU (the published numbers are from one H200)`, args.includes('--torch') && torchProblem()].filter(Boolean);
  if (problems.length) {
    console.error(`examples/gpt2 cannot run here:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee examples/gpt2/README.md for what each script needs.`);
    process.exit(1);
  }
}
