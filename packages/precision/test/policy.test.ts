// The precision policy on the tiny GPT's training step (CPU reference backend): its per-layer
// decisions, the rewrite, and emulated MXFP8 / NVFP4 training that still learns the synthetic
// corpus; the fake_quant op against quantize / dequantize.
import { autocast, capture, compile, getOp, interpret, trainingStep, type Graph } from '@deepwell/ir';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { PrecisionPolicy, dequantize, quantize, support } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const [B, T] = [8, 16];
function step(): Graph {
  const fwd = capture(new GPT('tiny'), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  delete fwd.outputs.logits;
  return trainingStep(autocast(fwd), { optimizer: { weightDecay: 0 } });
}

function train(policy: PrecisionPolicy | undefined, steps: number): number {
  const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
  const exe = compile(step(), { seed: 1, precision: policy });
  expect(exe.graph.nodes.filter((n) => n.op === 'fake_quant').length).toBe(policy ? 2 * policy.lastPlan!.reduce((a, d) => a + d.rewritten, 0) : 0);
  if (policy) expect(policy.lastPlan!.some((d) => d.rewritten > 0)).toBe(true);
  const recent: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const lr = 3e-3 * Math.min(1, s / 20);
    recent.push(exe.run({ ...corpus.batch(B, T), lr: Float32Array.of(lr), step: Float32Array.of(s) }).loss![0]!);
  }
  exe.dispose();
  const last = recent.slice(-30);
  return last.reduce((a, b) => a + b) / last.length;
}

describe('PrecisionPolicy', () => {
  it('decides per layer: attention core, head and first/last block stay BF16 by default', () => {
    const plan = new PrecisionPolicy({ recipe: 'mxfp8', minWeightElements: 0 }).plan(step());
    const by = new Map(plan.map((d) => [d.layer, d]));
    expect(by.get('blocks.0.attn')).toMatchObject({ kind: 'attention', recipe: 'bf16' });
    expect(by.get('head')).toMatchObject({ kind: 'head', recipe: 'bf16' });
    expect(by.get('blocks.0.mlp.fc')).toMatchObject({ kind: 'linear', weight: [128, 32], recipe: 'bf16', reason: 'sensitive: first block' });
    expect(by.get('blocks.1.mlp.proj')!.reason).toBe('sensitive: last block');
    const open = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0, rules: [{ match: 'blocks.1.mlp', recipe: 'nvfp4' }] }).plan(step());
    const o = new Map(open.map((d) => [d.layer, d]));
    expect(o.get('blocks.0.mlp.fc')!.recipe).toBe('mxfp8');
    expect(o.get('blocks.1.mlp.fc')!.recipe).toBe('nvfp4');
    expect(o.get('blocks.1.attn.qkv')!.recipe).toBe('mxfp8');
    const small = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false }).plan(step());
    expect(small.find((d) => d.layer === 'blocks.0.attn.proj')!.reason).toMatch(/too small/);
    const table = PrecisionPolicy.table(open, '9.0');
    expect(table).toMatch(/blocks\.1\.mlp\.fc\s+linear\s+128×32\s+nvfp4\s+emulated/);
  });

  it('rewrites each chosen GEMM, forward and backward, to quantized operands along its reduction axis', () => {
    const policy = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0 });
    const g = policy.run(step()).verify();
    const fq = g.nodes.filter((n) => n.op === 'fake_quant');
    const fc = policy.lastPlan!.find((d) => d.layer === 'blocks.0.mlp.fc')!;
    expect(fc.gemms).toBe(3); // forward, data gradient, weight gradient
    // The weight gradient's reduction runs over B·T = 128 rows: also a multiple of 32.
    expect(fc.rewritten).toBe(3);
    expect(fq.length).toBe(2 * policy.lastPlan!.reduce((a, d) => a + d.rewritten, 0));
    // Every fake_quant sits right before the GEMM that reads it.
    for (const n of fq) {
      const at = g.nodes.indexOf(n);
      const reader = g.nodes.slice(at + 1).find((m) => m.inputs.includes(n.outputs[0]!))!;
      expect(['matmul', 'fake_quant']).toContain(reader.op);
    }
  });

  it('emulated MXFP8 and NVFP4 training still learns the synthetic corpus', () => {
    const entropy = new MarkovCorpus({ vocab: 16, seed: 1 }).entropyRate();
    const bf16 = train(undefined, 100);
    for (const recipe of ['mxfp8', 'nvfp4'] as const) {
      const low = train(new PrecisionPolicy({ recipe, keepFirstLast: false, minWeightElements: 0 }), 100);
      expect(low, recipe).toBeLessThan(entropy * 1.15);
      expect(Math.abs(low - bf16), recipe).toBeLessThan(0.1);
      expect(low, recipe).not.toBe(bf16); // the quantization did change the numbers
    }
  }, 120_000);

  it('knows where a recipe would run natively, and refuses unknown recipes', () => {
    expect(support('mxfp8', '9.0')).toBe('emulated');
    expect(support('mxfp8', '10.0')).toBe('native');
    expect(support('fp8-tensorwise', '9.0')).toBe('native');
    expect(support('nvfp4', null)).toBe('emulated');
    expect(errorOf(() => new PrecisionPolicy({ recipe: 'fp6' as never })).message).toMatch(/Expected a recipe/);
  });
});

describe('fake_quant', () => {
  it('is quantize → dequantize of each line along the axis, rowwise or columnwise', () => {
    const [R, C] = [3, 64];
    const x = Float32Array.from({ length: R * C }, () => Math.random() * 4 - 2);
    const run = (axis: number, shape: number[], data: Float32Array) => {
      const def = getOp('fake_quant');
      const b = { shape, dtype: 'f32' as const };
      void def;
      const g = capture({ forward: ({ x: s }) => ({ y: s!.builder.op1('fake_quant', [s!], { format: 'mxfp8-e4m3', axis }) }) }, { x: b });
      return interpret(g, { x: data })[g.outputs.y!]!;
    };
    const rows = run(-1, [R, C], x);
    for (let r = 0; r < R; r++) expect(Array.from(rows.subarray(r * C, r * C + C))).toEqual(Array.from(dequantize(quantize(x.subarray(r * C, r * C + C), { format: 'mxfp8-e4m3' }))));
    // Columnwise on the transpose equals rowwise on the original.
    const xt = new Float32Array(C * R);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) xt[c * R + r] = x[r * C + c]!;
    const cols = run(0, [C, R], xt);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) expect(cols[c * R + r]).toBe(rows[r * C + c]);
    expect(errorOf(() => run(-1, [2, 48], new Float32Array(96))).message).toMatch(/divisible by mxfp8-e4m3's block of 32/);
  });
});
