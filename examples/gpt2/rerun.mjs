// Whether a training step repeats bit for bit: GPT_CONFIG's model (default moe-8x) compiled once per
// variant, then trained RERUN_RUNS times (default 4) for RERUN_STEPS steps (default 40) from the same
// initial weights, optimizer state and batches, in this one process; prints the first step at which
// each run's loss differs from the first run's. Two fp8-blockwise runs of the MoE GPT in separate
// processes diverged at random steps (3, 30, 54 in four 80-step runs on one H200, 2026-12-05), bf16
// runs did not; the variants tell which part of the FP8 step it is:
//   bf16         no precision policy (the control)
//   fp8          the fp8-blockwise policy as bench.mjs builds it (first and last block BF16)
//   fp8-nofuse   the same with fuseEpilogues false (GELU, its backward and quantize as their own nodes)
//   fp8-dense    fp8-blockwise for the attention's linear layers only (the experts BF16)
//   fp8-experts  fp8-blockwise for the experts only (the attention's linear layers BF16)
//   fp8-general  fp8 with DW_GROUPED_GENERAL=1 (every grouped GEMM on the general, non-TMA path)
// and, to split the experts' FP8 path (on an H100, 2026-12-05, fp8-experts' reruns diverged at
// steps 19 and 29 and fp8-dense's did not):
//   fp8-experts-nofuse   fp8-experts without the fused GELU / GELU-backward epilogues
//   fp8-experts-wgrad    fp8-experts with the weight gradient emulated (DEEPWELL_FP8_WGRAD=emulated:
//                        no grouped_scaled_matmul_wgrad, no quantize_kgrouped)
//   fp8-experts-general  fp8-experts with DW_GROUPED_GENERAL=1 (the FP8 grouped GEMMs and weight
//                        gradient on the general path, not the TMA / wgmma kernels)
// (H100, 2026-12-06: fp8-experts-general's and fp8-experts-wgrad's reruns repeated, fp8-experts' and
// fp8-experts-nofuse's did not: the Hopper FP8 weight-gradient kernel.) Every variant but
// fp8-experts-wgrad runs the native FP8 weight gradient (DEEPWELL_FP8_WGRAD=native, whatever the environment
// says). Session 26: with the kernel fixed (a proxy fence), fp8-experts and fp8 repeat.
//   node rerun.mjs [variants=bf16,fp8]   (RERUN_RUNS, RERUN_STEPS, RERUN_BATCH (16), GPT_CONFIG, RERUN_DEVICE)
// Needs an NVIDIA GPU. Writes nothing; one line per run on stdout.
import { registerCudaBackends } from '@deepwell/kernels-native';
import { autocast, capture, compile, trainingStep } from '@deepwell/ir';
import { GPT, GPT_PRESETS, MarkovCorpus } from '@deepwell/nn';
import { PrecisionPolicy } from '@deepwell/precision';
import { requireGpu } from './preflight.mjs';

const fail = (message) => {
  console.error(`rerun.mjs: ${message}\nUsage: node rerun.mjs [variants=bf16,fp8] (of ${Object.keys(VARIANTS).join(', ')})`);
  process.exit(2);
};
const whole = (name, d) => {
  const v = process.env[name]?.trim() || String(d);
  return /^[1-9]\d*$/.test(v) ? Number(v) : fail(`${name}: expected a whole number above 0 but received '${v}'`);
};
const EXPERTS = /\.moe$/;
const VARIANTS = {
  bf16: () => undefined,
  fp8: () => new PrecisionPolicy({ recipe: 'fp8-blockwise' }),
  'fp8-nofuse': () => new PrecisionPolicy({ recipe: 'fp8-blockwise', fuseEpilogues: false }),
  'fp8-dense': () => new PrecisionPolicy({ recipe: 'fp8-blockwise', rules: [{ match: EXPERTS, recipe: 'bf16' }] }),
  'fp8-experts': () => new PrecisionPolicy({ recipe: 'bf16', rules: [{ match: EXPERTS, recipe: 'fp8-blockwise' }] }),
  'fp8-general': () => ((process.env.DW_GROUPED_GENERAL = '1'), new PrecisionPolicy({ recipe: 'fp8-blockwise' })),
  'fp8-experts-nofuse': () => new PrecisionPolicy({ recipe: 'bf16', fuseEpilogues: false, rules: [{ match: EXPERTS, recipe: 'fp8-blockwise' }] }),
  'fp8-experts-wgrad': () => ((process.env.DEEPWELL_FP8_WGRAD = 'emulated'), new PrecisionPolicy({ recipe: 'bf16', rules: [{ match: EXPERTS, recipe: 'fp8-blockwise' }] })),
  'fp8-experts-general': () => ((process.env.DW_GROUPED_GENERAL = '1'), new PrecisionPolicy({ recipe: 'bf16', rules: [{ match: EXPERTS, recipe: 'fp8-blockwise' }] })),
};
const variants = (process.argv[2] ?? 'bf16,fp8').split(',').map((v) => v.trim());
for (const v of variants) if (!Object.hasOwn(VARIANTS, v)) fail(`unknown variant '${v}'`);
const [runs, steps, B] = [whole('RERUN_RUNS', 4), whole('RERUN_STEPS', 40), whole('RERUN_BATCH', 16)];
const spec = (process.env.GPT_CONFIG ?? 'moe-8x').trim();
const config = spec.startsWith('{') ? JSON.parse(spec) : GPT_PRESETS[spec];
if (!config) fail(`GPT_CONFIG: expected a preset (${Object.keys(GPT_PRESETS).join(', ')}) or a GPTConfig as JSON but received '${spec}'`);
// RERUN_DEVICE=cpu tries the script on the CPU (GPT_CONFIG=tiny; the policy emulates FP8 there).
const device = process.env.RERUN_DEVICE?.trim() || 'cuda:0';
if (device !== 'cpu') requireGpu('rerun.mjs', 'it trains GPT_CONFIG on the GPU', 'RERUN_DEVICE=cpu GPT_CONFIG=tiny tries it on the CPU.');
if (device !== 'cpu') registerCudaBackends();

const T = config.blockSize;
const corpus = new MarkovCorpus({ vocab: Math.min(256, config.vocabSize), seed: 7 });
const batches = Array.from({ length: steps }, () => corpus.batch(B, T));
// bench.mjs's rate: a linear warm-up over the run to 6e-4.
const lr = (s) => (6e-4 * s) / steps;

for (const v of variants) {
  delete process.env.DW_GROUPED_GENERAL;
  process.env.DEEPWELL_FP8_WGRAD = 'native';
  const policy = VARIANTS[v]();
  const fwd = capture(new GPT(config), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  delete fwd.outputs.logits;
  const t0 = performance.now();
  const exe = compile(trainingStep(autocast(fwd), { optimizer: { beta1: 0.9, beta2: 0.95, weightDecay: 0.1 }, clipGradNorm: 1 }), { device, seed: 1, precision: policy });
  const names = [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)];
  const initial = new Map(names.map((n) => [n, exe.get(n)]));
  const fp8 = exe.kernelSummary().filter((k) => /scaled|quantize|fake_quant/.test(k.op)).map((k) => `${k.kernel} ×${k.nodes}`);
  console.log(`${v}: compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${names.length} values; ${fp8.length ? fp8.join(', ') : 'no FP8 kernels'}`);
  let first = null;
  for (let r = 1; r <= runs; r++) {
    for (const [n, x] of initial) exe.set(n, x);
    const losses = batches.map((b, s) => exe.run({ ...b, lr: Float32Array.of(lr(s + 1)), step: Float32Array.of(s + 1) }).loss[0]);
    first ??= losses;
    const at = losses.findIndex((l, s) => !Object.is(l, first[s]));
    console.log(`${v} run ${r}: ${at < 0 ? `the first run's ${steps} losses bit for bit` : `differs from the first run from step ${at + 1} (${first[at]} against ${losses[at]})`}; last loss ${losses.at(-1)}`);
  }
  exe.dispose();
}
