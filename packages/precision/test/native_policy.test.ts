// The precision policy's native rewrite (quantize → scaled_matmul) on a GPT's training step, on the
// CPU: its structure (one quantize per tensor with both directions, weights from their bf16 copies,
// every GEMM of a chosen layer native), the reference interpreter running it against the emulated
// rewrite and against no quantization, the per-layer table, dryrun's accounting of the FP8 copies,
// the kernel registry probe the grouped rewrite asks on CUDA, and the quantize op's errors. (A MoE's
// native expert GEMMs, weight gradient included, are in policy.test.ts.) The compiled GPU step is in native_policy_gpu.test.ts.
import { autocast, capture, dryrun, getOp, initialValues, interpret, numel, runPasses, trainingStep, GraphBuilder, type Graph, type NodeDecl } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { PrecisionPolicy, RECIPES, quantizeOutputs } from '../src/index.js';
import { registryProbe } from '../src/native_grouped.js';
import { errorOf } from '../../../testing/errors.js';

const [B, T] = [4, 32]; // B·T = 128: the weight gradients' reduction is one block of 128
const wide = () => new GPT({ vocabSize: 64, blockSize: T, nLayer: 3, nHead: 2, nEmbd: 128 });

function step(): Graph {
  const fwd = capture(wide(), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  delete fwd.outputs.logits;
  return trainingStep(autocast(fwd), { optimizer: { weightDecay: 0 }, clipGradNorm: 1e9 });
}

/** Random bindings for every input, parameter and state value of a step (a new seed every run). */
function bindings(g: Graph, seed: number): Record<string, Float32Array | Int32Array> {
  const out: Record<string, Float32Array | Int32Array> = {};
  for (const [name, id] of Object.entries(g.params)) out[name] = initialValues(g.init[name] ?? { dist: 'zeros' }, numel(g.values[id]!.type.shape), seed, name) as Float32Array;
  for (const [name, id] of Object.entries(g.state)) out[name] = new Float32Array(numel(g.values[id]!.type.shape));
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % 64;
  for (const name of ['tokens', 'targets']) out[name] = Int32Array.from({ length: B * T }, next);
  out.lr = Float32Array.of(1e-3);
  out.step = Float32Array.of(1);
  return out;
}

const run = (g: Graph, b: Record<string, Float32Array | Int32Array>) => {
  const vals = interpret(g, b);
  return { loss: vals[g.outputs.loss!]![0]!, norm: vals[g.outputs.grad_norm!]![0]! };
};

describe('PrecisionPolicy, native rewrite', () => {
  for (const recipe of ['fp8-tensorwise', 'fp8-blockwise'] as const) {
    it(`${recipe}: quantize → scaled_matmul for every GEMM of a chosen layer, one quantize per tensor`, () => {
      const policy = new PrecisionPolicy({ recipe, native: true, minWeightElements: 0 });
      const g = policy.run(step()).verify();
      const plan = policy.lastPlan!;
      const chosen = plan.filter((d) => d.recipe === recipe);
      // The middle block's four linear layers; the first and last blocks, head and attention stay BF16.
      expect(chosen.map((d) => d.layer).sort()).toEqual(['blocks.1.attn.proj', 'blocks.1.attn.qkv', 'blocks.1.mlp.fc', 'blocks.1.mlp.proj']);
      for (const d of chosen) expect(d).toMatchObject({ gemms: 3, rewritten: 3, native: 3 });
      expect(g.nodes.filter((n) => n.op === 'fake_quant')).toEqual([]);
      const sm = g.nodes.filter((n) => n.op === 'scaled_matmul' || n.op === 'scaled_matmul_bias');
      expect(sm.length).toBe(12);
      // The forward GEMMs take their Linear's bias into the epilogue; no bias_add is left for them.
      expect(sm.filter((n) => n.op === 'scaled_matmul_bias').map((n) => n.phase)).toEqual(['forward', 'forward', 'forward', 'forward']);
      expect(g.nodes.filter((n) => n.op === 'bias_add' && n.scope.startsWith('blocks.1.'))).toEqual([]);
      const q = g.nodes.filter((n) => n.op === 'quantize');
      // Per layer: its input x, its weight and the gradient dy, each once, in both directions.
      expect(q.length).toBe(12);
      for (const n of q) expect(n.attrs.direction).toBe('both');
      // A weight is quantized from its bf16 copy (the cast of its f32 master), as the emulation reads it.
      const castOfParam = (id: number) => g.nodes.some((m) => m.op === 'cast' && m.outputs[0] === id && g.values[m.inputs[0]!]!.kind === 'param');
      const weights = q.filter((n) => castOfParam(n.inputs[0]!));
      expect(weights.length).toBe(4);
      for (const n of weights) expect(n.attrs.format).toBe(recipe === 'fp8-blockwise' ? 'fp8-block128x128' : 'fp8-e4m3');
      const grads = q.filter((n) => n.phase === 'backward');
      expect(grads.length).toBe(4);
      for (const n of grads) expect(n.attrs.format).toBe(recipe === 'fp8-blockwise' ? 'fp8-block1x128' : 'fp8-e5m2');
      // The forward GEMMs accumulate fast under tensorwise, the backward ones promote.
      for (const n of sm) expect(n.attrs.fastAccum).toBe(recipe === 'fp8-tensorwise' && n.phase === 'forward');
      expect(PrecisionPolicy.table(plan, '9.0')).toMatch(new RegExp(`blocks\\.1\\.mlp\\.fc\\s+linear\\s+512×128\\s+${recipe}\\s+native\\s`));
    });

    it(`${recipe}: the interpreted native step agrees with the emulated one`, () => {
      const seed = (Math.random() * 2 ** 31) >>> 0;
      const base = step();
      const b = bindings(base, seed);
      const native = new PrecisionPolicy({ recipe, native: true, minWeightElements: 0, keepFirstLast: false }).run(step()).verify();
      const emulated = new PrecisionPolicy({ recipe, native: false, minWeightElements: 0, keepFirstLast: false }).run(step()).verify();
      expect(native.nodes.some((n) => n.op === 'scaled_matmul')).toBe(true);
      expect(emulated.nodes.some((n) => n.op === 'scaled_matmul')).toBe(false);
      const [n, e, f] = [run(native, b), run(emulated, b), run(base, b)];
      // The same quantized operands; the GEMMs differ only in rounding (the emulation's dequantized
      // bf16 operands and f32 sums, the reference's exact sums rounded once).
      expect(Math.abs(n.loss - e.loss) / e.loss, `seed ${seed}`).toBeLessThan(2e-3);
      expect(Math.abs(n.norm - e.norm) / e.norm, `seed ${seed}`).toBeLessThan(2e-2);
      // …and both differ from the unquantized step by about the formats' error.
      expect(Math.abs(n.loss - f.loss) / f.loss).toBeLessThan(3e-2);
      expect(n.loss).not.toBe(f.loss);
    }, 120_000);
  }

  it('fp8-tensorwise: every quantizer takes its amax from the kernel that wrote its input, where that kernel can; the step is unchanged', () => {
    const seed = (Math.random() * 2 ** 31) >>> 0;
    const policy = () => new PrecisionPolicy({ recipe: 'fp8-tensorwise', native: true, minWeightElements: 0, keepFirstLast: false });
    const plain = policy().run(step()).verify();
    const fused = runPasses(step(), { precision: policy() });
    const producer = new Map<number, NodeDecl>();
    for (const n of fused.nodes) for (const o of n.outputs) producer.set(o, n);
    const rootProducer = (v: number): NodeDecl => {
      let p = producer.get(v)!;
      while (p.op === 'reshape') p = producer.get(p.inputs[0]!)!;
      return p;
    };
    const q = fused.nodes.filter((n) => n.op === 'quantize' && n.scope.startsWith('blocks.1.'));
    expect(q.length).toBe(12);
    // The four weights' casts, both layernorms' outputs, GELU's, GELU's gradient and the residual
    // stream's gradient (two adds) give their amax; the attention output and its gradient do not.
    const given = q.filter((n) => n.inputs.length === 2).map((n) => `${n.scope} ${rootProducer(n.inputs[0]!).op}`).sort();
    expect(given).toEqual([
      'blocks.1.attn.proj add',
      'blocks.1.attn.proj cast',
      'blocks.1.attn.qkv add_layernorm',
      'blocks.1.attn.qkv cast',
      'blocks.1.mlp.fc add_layernorm',
      'blocks.1.mlp.fc cast',
      'blocks.1.mlp.fc gelu_backward',
      'blocks.1.mlp.proj add',
      'blocks.1.mlp.proj cast',
      'blocks.1.mlp.proj gelu',
    ]);
    for (const n of q.filter((m) => m.inputs.length === 2)) {
      const p = producer.get(n.inputs[1]!)!;
      expect(p.attrs.amax).toBe(true);
      expect(p.outputs.at(-1)).toBe(n.inputs[1]);
      expect(p).toBe(rootProducer(n.inputs[0]!));
    }
    // The CPU reference runs the fused step to the same loss and gradient norm, bit for bit.
    const b = bindings(plain, seed);
    const [u, f] = [run(plain, b), run(fused, b)];
    expect(f.loss, `seed ${seed}`).toBe(u.loss);
    expect(f.norm, `seed ${seed}`).toBe(u.norm);
    // Blockwise scales come from each block: no quantizer asks.
    const blockwise = runPasses(step(), { precision: new PrecisionPolicy({ recipe: 'fp8-blockwise', native: true, minWeightElements: 0, keepFirstLast: false }) });
    expect(blockwise.nodes.filter((n) => n.op === 'quantize' && n.inputs.length !== 1)).toEqual([]);
  }, 120_000);

  it('quantize with an amax input: its reference scales by that amax; the input is checked', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [64, 32], 'bf16');
    const amax = b.input('amax', [1], 'f32');
    const [, , scale] = b.op('quantize', [x, amax], { format: 'fp8-e4m3', direction: 'both' });
    b.output('scale', scale!);
    const xs = Float32Array.from({ length: 64 * 32 }, () => Math.random() * 2 - 1);
    const out = interpret(b.graph, { x: xs, amax: Float32Array.of(3.5) });
    expect(out[b.graph.outputs.scale!]![0]).toBe(Math.fround(1 / Math.fround(448 / 3.5)));
    const square = b.input('square', [128, 128], 'bf16');
    expect(errorOf(() => b.op('quantize', [square, amax], { format: 'fp8-block1x128', direction: 'rowwise' })).message).toMatch(/Expected no 'amax' input for fp8-block1x128/);
    const wide = b.input('wide', [2], 'f32');
    expect(errorOf(() => b.op('quantize', [x, wide], { format: 'fp8-e5m2' })).message).toMatch(/Expected f32\[1\] for input 'amax' but received f32\[2\]/);
    expect(errorOf(() => b.op('quantize', [x, amax, amax], { format: 'fp8-e5m2' })).message).toMatch(/Expected 1 to 2 inputs \(x, amax\?\) but received 3/);
  });

  it('keeps a GEMM emulated, saying why, where the kernels do not take its shape', () => {
    // B·T = 48: not a multiple of 32 rows for tensorwise's columnwise quantizer, so the weight
    // gradient (which reads x and dy columnwise) stays emulated; the other two run natively.
    const fwd = capture(wide(), { tokens: { shape: [3, 16], dtype: 'i32' }, targets: { shape: [3, 16], dtype: 'i32' } });
    delete fwd.outputs.logits;
    const g = trainingStep(autocast(fwd), { optimizer: { weightDecay: 0 } });
    const policy = new PrecisionPolicy({ recipe: 'fp8-tensorwise', native: true, minWeightElements: 0, keepFirstLast: false });
    policy.run(g).verify();
    const fc = policy.lastPlan!.find((d) => d.layer === 'blocks.1.mlp.fc')!;
    expect(fc.rewritten).toBe(3);
    expect(fc.native).toBe(2);
    expect(fc.reason).toMatch(/stays emulated: operand . has 48 rows, not a multiple of 32/);
    expect(PrecisionPolicy.table(policy.lastPlan!, '9.0')).toMatch(/blocks\.1\.mlp\.fc.*native 2\/3 GEMMs/);
  });

  it("native: 'auto' emulates on the CPU and in dryrun without a GPU; dryrun counts the FP8 copies", () => {
    const auto = new PrecisionPolicy({ recipe: 'fp8-tensorwise', minWeightElements: 0 });
    const g = auto.run(step(), { device: 'cpu' });
    expect(g.nodes.some((n) => n.op === 'quantize')).toBe(false);
    expect(auto.lastPlan!.every((d) => d.native === 0)).toBe(true);
    const plain = dryrun(step());
    const native = dryrun(step(), { precision: new PrecisionPolicy({ recipe: 'fp8-tensorwise', native: true, minWeightElements: 0, keepFirstLast: false }) });
    expect(native.totalBytes).not.toBe(plain.totalBytes);
    // The same GEMMs, in FP8; the weights' bf16 casts are gone (quantized from their f32 masters).
    expect(native.flopsPerStep).toBeLessThanOrEqual(plain.flopsPerStep);
    expect(native.flopsPerStep).toBeGreaterThan(0.99 * plain.flopsPerStep);
    expect(errorOf(() => new PrecisionPolicy({ recipe: 'fp8-tensorwise', native: 'yes' as never })).message).toMatch(/Expected 'auto' or a boolean for native/);
  });

  it("registryProbe: whether the device has a kernel for a call, else each candidate's reason (the policy asks it before the k-grouped weight gradient on CUDA)", () => {
    const types = [{ shape: [300, 64], dtype: 'bf16' as const }, { shape: [5], dtype: 'i32' as const }];
    expect(registryProbe('cpu')('quantize_kgrouped', types, { experts: 4 })).toMatch(/quantize_kgrouped_reference: the CPU reference computes f32, f16, bf16 and i32, not f8e4m3/);
    // Without a GPU (here) no CUDA kernel takes it; with one and the kernels built, it is true.
    const cuda = registryProbe('cuda:0')('quantize_kgrouped', types, { experts: 4 });
    expect(cuda === true || /quantize_kgrouped_reference: runs on the CPU, not cuda:0/.test(cuda), String(cuda)).toBe(true);
    expect(errorOf(() => registryProbe('cpu')('quantize_kgrouped', types, { experts: 3 })).message).toMatch(/Expected i32\[4\]/);
  });

  it('quantize: outputs by format and direction, the reference against its codec, and bad input', () => {
    expect(quantizeOutputs('fp8-e4m3', 'both')).toEqual({ rowCodes: 0, colCodes: 1, rowScales: 2, colScales: 2 });
    expect(quantizeOutputs('fp8-block1x128', 'both')).toEqual({ rowCodes: 0, rowScales: 1, colCodes: 2, colScales: 3 });
    const b = new GraphBuilder();
    const x = b.input('x', [256, 128], 'bf16');
    const outs = b.op('quantize', [x], { format: 'fp8-block1x128', direction: 'both' });
    expect(outs.map((s) => `${s.type.dtype}[${s.shape.join(',')}]`)).toEqual(['f8e4m3[256,128]', 'f32[1,256]', 'f8e4m3[128,256]', 'f32[2,128]']);
    const t = b.op('quantize', [x], { format: 'fp8-e5m2', direction: 'columnwise' });
    expect(t.map((s) => `${s.type.dtype}[${s.shape.join(',')}]`)).toEqual(['f8e5m2[128,256]', 'f32[1]']);
    const bad = new GraphBuilder();
    const y = bad.input('y', [100, 128], 'bf16');
    expect(errorOf(() => bad.op('quantize', [y], { format: 'fp8-block1x128', direction: 'columnwise' })).message).toMatch(/divisible by 128 for fp8-block1x128 \(columnwise\)/);
    expect(errorOf(() => bad.op('quantize', [y], { format: 'fp8-block128x128' })).message).toMatch(/rows and cols divisible by 128/);
    expect(errorOf(() => bad.op('quantize', [y], { format: 'mxfp8-e4m3' })).message).toMatch(/Expected one of 'fp8-e4m3'/);
    const i = bad.input('i', [128, 128], 'i32');
    expect(errorOf(() => bad.op('quantize', [i], { format: 'fp8-e4m3' })).message).toMatch(/Expected f32, bf16 or f16 for input 'x'/);
    expect(getOp('quantize').gradient).toBeUndefined();
    void RECIPES;
  });

  it('quantize of a batch [B, rows, cols] (blockwise formats): each slice exactly as quantized alone, outputs batch-major', () => {
    for (const [format, direction, rows, cols] of [['fp8-block128x128', 'both', 128, 256], ['fp8-block1x128', 'both', 128, 256], ['fp8-block128x128', 'columnwise', 256, 128]] as const) {
      const B = 3;
      const x = Float32Array.from({ length: B * rows * cols }, () => (Math.random() * 2 - 1) * 2 ** (Math.random() * 8 - 4));
      const one = (data: Float32Array, shape: number[]) => {
        const g = new GraphBuilder();
        const outs = g.op('quantize', [g.input('x', shape)], { format, direction });
        outs.forEach((o, i) => g.output(`o${i}`, o));
        const vals = interpret(g.graph, { x: data });
        return outs.map((o) => ({ shape: o.shape, data: vals[o.id]! }));
      };
      const batched = one(x, [B, rows, cols]);
      const slices = Array.from({ length: B }, (_, b) => one(x.subarray(b * rows * cols, (b + 1) * rows * cols), [rows, cols]));
      batched.forEach((o, i) => {
        expect(o.shape, `${format} ${direction} output ${i}`).toEqual([B, ...slices[0]![i]!.shape]);
        const per = slices[0]![i]!.data.length;
        for (let b = 0; b < B; b++) expect(Array.from(o.data.subarray(b * per, (b + 1) * per)), `${format} output ${i} slice ${b}`).toEqual(Array.from(slices[b]![i]!.data));
      });
    }
    const g = new GraphBuilder();
    expect(errorOf(() => g.op('quantize', [g.input('x', [2, 128, 128])], { format: 'fp8-e4m3' })).message).toMatch(/Expected a rank-2 tensor \[rows, cols\] for input 'x' but received \[2, 128, 128\]/);
    expect(errorOf(() => g.op('quantize', [g.input('y', [2, 2, 128, 128])], { format: 'fp8-block1x128' })).message).toMatch(/or a batch of them \[batch, rows, cols\]/);
  });
});
