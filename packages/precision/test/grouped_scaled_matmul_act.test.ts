// grouped_scaled_matmul_gelu, _dgelu and _swiglu (the FP8 grouped GEMM with the GELU, its gradient,
// or SwiGLU of two products, and the next GEMM's rowwise 1 × 128 quantization in the epilogue) and
// the pass that makes them (fuse_scaled_grouped.ts), on the CPU, fresh random inputs every run:
//   - each op's reference against the unfused composition it replaces (grouped_scaled_matmul, bf16
//     out → gelu / gelu_backward, or two grouped_scaled_matmul → swiglu, stored as bf16 → quantize),
//     every output bit for bit, into outputs poisoned with NaN; ragged groups with an empty expert,
//     one expert taking every row, R not a multiple of 128, e4m3 and e5m2 operands;
//   - the pass on hand-built graphs (what it fuses, what it leaves alone, the kernel probe), each
//     fused graph interpreted against the unfused one bit for bit;
//   - the precision policy on a dropless MoE GELU GPT and a SwiGLU one (fp8-blockwise, native forced):
//     the fusions per layer, the step interpreted with fuseEpilogues on and off giving the same bits;
//   - bad input as typed errors naming the op and the argument.
import { bf16BitsToF32, f32ToBf16Bits, registry } from '@deepwell/core';
import { GraphBuilder, autocast, capture, checkAttrs, eliminateDeadCode, getOp, initialValues, interpret, numel, runPasses, trainingStep, Graph, type Attrs, type KernelParams, type NumArray, type Sym, type ValueType } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { PrecisionPolicy, fuseScaledGroupedEpilogues } from '../src/index.js';
import { registryProbe } from '../src/native_grouped.js';
import { errorOf } from '../../../testing/errors.js';
import { randomOffsets } from '../../../testing/moe.js';
import { firstDiff, nearestBf16, randomCodes, runReference } from './fp8.js';

type Fmt = 'e4m3' | 'e5m2';
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** Scales that keep the products of random FP8 codes mostly within a few units (GELU's curve, not its tails): e5m2's codes reach 2^7 times e4m3's. */
const smallScale = (f: Fmt = 'e4m3') => Math.fround(2 ** (randInt(-12, -9) - (f === 'e5m2' ? 6 : 0)) * (1 + Math.random()));
const QUANT = { format: 'fp8-block1x128', direction: 'rowwise' } as const;
const GEMM_ATTRS = { scaleLayout: 'gemm', outDtype: 'bf16' } as const;
const bf16 = (R: number, N: number): ValueType => ({ shape: [R, N], dtype: 'bf16' });
/** A bf16 result as the interpreter stores it: in a float32 array, then rounded to bf16 (roundTo). */
const roundBf16 = (a: NumArray) => Float64Array.from(a, (v) => bf16BitsToF32(f32ToBf16Bits(v)));

interface Problem {
  R: number;
  K: number;
  N: number;
  E: number;
  inputs: NumArray[]; // a, aScale, b, bScale, offsets
  types: ValueType[];
  pre: Float32Array; // a bf16 [R, N] pre-activation for the GELU backward
  b3: Float32Array; // a second weight of b's type (SwiGLU's w3, b w1): codes [E, N, K]
  b3Scale: Float32Array; // and its scales [E, ceil(N/128), L4]
}

/** Codes as their byte values, scales in the 'gemm' layout (b's padding NaN: a reader of it fails). */
function problem(E: number, R: number, K: number, N: number, fa: Fmt, fb: Fmt, kind: 'ragged' | 'one'): Problem {
  const L = K / 128, L4 = Math.ceil(L / 4) * 4, NB = Math.ceil(N / 128);
  const weightScales = () => {
    const s = new Float32Array(E * NB * L4).fill(NaN);
    for (let t = 0; t < E * NB; t++) for (let l = 0; l < L; l++) s[t * L4 + l] = smallScale(fb);
    return s;
  };
  const code = (f: Fmt) => (f === 'e4m3' ? 'f8e4m3' : 'f8e5m2');
  return {
    R, K, N, E,
    inputs: [Float32Array.from(randomCodes(R * K, fa)), Float32Array.from({ length: L * R }, () => smallScale(fa)), Float32Array.from(randomCodes(E * N * K, fb)), weightScales(), randomOffsets(E, R, kind)],
    types: [{ shape: [R, K], dtype: code(fa) }, { shape: [L, R], dtype: 'f32' }, { shape: [E, N, K], dtype: code(fb) }, { shape: [E, NB, L4], dtype: 'f32' }, { shape: [E + 1], dtype: 'i32' }],
    pre: Float32Array.from({ length: R * N }, () => nearestBf16(Math.random() * 8 - 4)),
    b3: Float32Array.from(randomCodes(E * N * K, fb)),
    b3Scale: weightScales(),
  };
}

/** Random sizes: ragged groups (an empty expert) or one expert taking every row; R not a multiple of 128. */
function randomProblem(trial: number): Problem {
  let R = randInt(1, 300);
  if (R % 128 === 0) R++;
  const [fa, fb]: [Fmt, Fmt] = trial % 3 === 1 ? ['e5m2', 'e4m3'] : trial % 3 === 2 ? ['e4m3', 'e5m2'] : ['e4m3', 'e4m3'];
  return problem(randInt(1, 6), R, 128 * randInt(1, 2), 128 * randInt(1, 2), fa, fb, trial % 2 ? 'one' : 'ragged');
}

/** The unfused chain, each result stored as the interpreter stores it (bf16 values rounded). */
function unfused(p: Problem, backward: boolean): Float64Array[] {
  const product = runReference('grouped_scaled_matmul', p.inputs, p.types, GEMM_ATTRS)[0]!;
  const t = bf16(p.R, p.N);
  const act = backward ? runReference('gelu_backward', [product, p.pre], [t, t], {})[0]! : runReference('gelu', [product], [t], {})[0]!;
  const h = roundBf16(act);
  const [codes, scales] = runReference('quantize', [h], [t], QUANT);
  return backward ? [h, codes!, scales!] : [h, product, codes!, scales!];
}

const NAMES = { gelu: ['out', 'pre', 'codes', 'scales'], dgelu: ['out', 'codes', 'scales'] };

describe('grouped_scaled_matmul_gelu and _dgelu: the references', () => {
  for (const kind of ['gelu', 'dgelu'] as const) {
    it(`${kind}: every output is the unfused chain's (grouped_scaled_matmul → ${kind === 'gelu' ? 'gelu' : 'gelu_backward'} → quantize), bit for bit, into poisoned outputs`, () => {
      for (let trial = 0; trial < 6; trial++) {
        const p = randomProblem(trial);
        const backward = kind === 'dgelu';
        const ins = backward ? [...p.inputs, p.pre] : p.inputs;
        const types = backward ? [...p.types, bf16(p.R, p.N)] : p.types;
        const got = runReference(`grouped_scaled_matmul_${kind}`, ins, types, GEMM_ATTRS); // every output NaN first
        const want = unfused(p, backward);
        const what = `trial ${trial}: E ${p.E} R ${p.R} K ${p.K} N ${p.N} ${p.types[0]!.dtype}·${p.types[2]!.dtype} offsets ${Array.from(p.inputs[4]!)}`;
        expect(got.length).toBe(NAMES[kind].length);
        got.forEach((g, i) => {
          expect(firstDiff(g, want[i]!), `${what}: ${NAMES[kind][i]}`).toBe(-1);
          expect(g.every((v) => !Number.isNaN(v)), `${what}: ${NAMES[kind][i]} fully written`).toBe(true);
        });
        // Not trivially so: the activation changes the product, and the codes are not all zero.
        const out = got[0]!;
        expect(out.some((v, i) => v !== (backward ? 0 : got[1]![i]))).toBe(true);
        expect(got.at(-2)!.some((c) => c !== 0 && c !== 128)).toBe(true);
      }
    });
  }

  it('flops: the GEMM and the activation', () => {
    const p = problem(3, 70, 256, 128, 'e4m3', 'e4m3', 'ragged');
    const gemm = getOp('grouped_scaled_matmul').flops!(p.types, [bf16(70, 128)], GEMM_ATTRS);
    expect(gemm).toBe(2 * 70 * 128 * 256);
    const outs = getOp('grouped_scaled_matmul_gelu').infer(p.types, checkAttrs(getOp('grouped_scaled_matmul_gelu'), {}));
    expect(getOp('grouped_scaled_matmul_gelu').flops!(p.types, outs, {})).toBe(gemm + 9 * 70 * 128);
    const dtypes = [...p.types, bf16(70, 128)];
    expect(getOp('grouped_scaled_matmul_dgelu').flops!(dtypes, getOp('grouped_scaled_matmul_dgelu').infer(dtypes, {}), {})).toBe(gemm + 16 * 70 * 128);
  });
});

/** A graph of the unfused pattern on a problem's sizes: the forward (gelu) or backward (gelu_backward) chain, each value an output. */
function unfusedGraph(p: Problem, backward: boolean, options: { amax?: boolean; direction?: 'rowwise' | 'both'; outDtype?: 'bf16' | 'f32'; extraUse?: boolean; preIsDh?: boolean } = {}): Graph {
  const b = new GraphBuilder();
  const names = ['a', 'aScale', 'b', 'bScale', 'offsets'];
  const ins = p.types.map((t, i) => b.input(names[i]!, t.shape, t.dtype));
  const product = b.op1('grouped_scaled_matmul', ins, { scaleLayout: 'gemm', outDtype: options.outDtype ?? 'bf16' });
  let act: Sym;
  if (backward) {
    const pre = options.preIsDh ? product : b.input('pre', [p.R, p.N], options.outDtype ?? 'bf16');
    act = b.op('gelu_backward', [product, pre], { amax: options.amax ?? false })[0]!;
    if (options.extraUse) b.output('dh', product);
  } else {
    act = b.op('gelu', [product], { amax: options.amax ?? false })[0]!;
    b.output('pre', product);
  }
  const q = b.op('quantize', [act], { format: 'fp8-block1x128', direction: options.direction ?? 'rowwise' });
  b.output('act', act);
  q.forEach((s, i) => b.output(`q${i}`, s));
  // Another reader of the activation (the weight gradient's quantize_kgrouped, in a MoE).
  b.output('twice', b.op1('scale', [act], { alpha: 2 }));
  return b.graph;
}

const copyOf = (g: Graph) => Graph.fromJSON(g.toJSON());

/** Every output of g, interpreted with these bindings, by name. */
function outputsOf(g: Graph, bind: Record<string, NumArray>): Record<string, NumArray> {
  const vals = interpret(g, bind);
  return Object.fromEntries(Object.entries(g.outputs).map(([name, id]) => [name, vals[id]!]));
}

function interpretOutputs(g: Graph, p: Problem): Record<string, NumArray> {
  const names = ['a', 'aScale', 'b', 'bScale', 'offsets'];
  const bind: Record<string, NumArray> = Object.fromEntries(names.map((n, i) => [n, p.inputs[i]!]));
  if ('pre' in g.inputs) bind.pre = p.pre;
  return outputsOf(g, bind);
}

describe('fuseScaledGroupedEpilogues', () => {
  it('fuses grouped_scaled_matmul → gelu / gelu_backward → quantize; the fused graph interprets to the same bits', () => {
    for (let trial = 0; trial < 4; trial++) {
      const p = randomProblem(trial);
      for (const backward of [false, true]) {
        const before = unfusedGraph(p, backward);
        const g = copyOf(before);
        expect(fuseScaledGroupedEpilogues(g)).toEqual({ gelu: backward ? 0 : 1, dgelu: backward ? 1 : 0, swiglu: 0 });
        const fused = eliminateDeadCode(g).verify();
        const op = backward ? 'grouped_scaled_matmul_dgelu' : 'grouped_scaled_matmul_gelu';
        expect(fused.nodes.map((n) => n.op)).toEqual([op, 'scale']);
        const [want, got] = [interpretOutputs(before, p), interpretOutputs(fused, p)];
        expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
        for (const name of Object.keys(want)) expect(firstDiff(got[name]!, want[name]!), `trial ${trial} ${op}: output ${name}`).toBe(-1);
      }
    }
  });

  it('leaves alone what the fused kernel does not take: an amax, no rowwise 1 × 128 quantize, f32 products, a product read twice or as pre', () => {
    const p = problem(3, 256, 128, 128, 'e4m3', 'e4m3', 'ragged'); // R a multiple of 128: a columnwise quantize takes it
    const none = { gelu: 0, dgelu: 0, swiglu: 0 };
    for (const backward of [false, true]) {
      for (const o of [{ amax: true }, { direction: 'both' as const }, { outDtype: 'f32' as const }]) {
        const g = unfusedGraph(p, backward, o);
        const ops = g.nodes.map((n) => n.op);
        expect(fuseScaledGroupedEpilogues(g), `${backward} ${JSON.stringify(o)}`).toEqual(none);
        expect(g.nodes.map((n) => n.op)).toEqual(ops);
      }
    }
    expect(fuseScaledGroupedEpilogues(unfusedGraph(p, true, { extraUse: true }))).toEqual(none);
    expect(fuseScaledGroupedEpilogues(unfusedGraph(p, true, { preIsDh: true }))).toEqual(none);
    // A gelu with no quantize after it.
    const b = new GraphBuilder();
    const ins = p.types.map((t, i) => b.input(`x${i}`, t.shape, t.dtype));
    b.output('h', b.op1('gelu', [b.op1('grouped_scaled_matmul', ins, GEMM_ATTRS)]));
    expect(fuseScaledGroupedEpilogues(b.graph)).toEqual(none);
  });

  it('asks the kernel probe about each fused call, and leaves the site unfused where it says no', () => {
    const p = problem(2, 100, 128, 256, 'e4m3', 'e4m3', 'one');
    const asked: [string, string[], Attrs][] = [];
    const probe = (ok: boolean) => (op: string, inTypes: ValueType[], attrs: Attrs) => {
      asked.push([op, inTypes.map((t) => `${t.dtype}[${t.shape}]`), attrs]);
      return ok ? (true as const) : 'no kernel here';
    };
    expect(fuseScaledGroupedEpilogues(unfusedGraph(p, false), probe(false))).toEqual({ gelu: 0, dgelu: 0, swiglu: 0 });
    expect(fuseScaledGroupedEpilogues(unfusedGraph(p, true), probe(true))).toEqual({ gelu: 0, dgelu: 1, swiglu: 0 });
    const attrs = { aScaling: 'block1x128', bScaling: 'block128x128', ...GEMM_ATTRS }; // the grouped_scaled_matmul node's (checked)
    expect(asked).toEqual([
      ['grouped_scaled_matmul_gelu', ['f8e4m3[100,128]', 'f32[1,100]', 'f8e4m3[2,256,128]', 'f32[2,2,4]', 'i32[3]'], attrs],
      ['grouped_scaled_matmul_dgelu', ['f8e4m3[100,128]', 'f32[1,100]', 'f8e4m3[2,256,128]', 'f32[2,2,4]', 'i32[3]', 'bf16[100,256]'], attrs],
    ]);
    // The registry's answer on a CUDA device: the CUDA candidate where this machine has a GPU and the
    // addon's groupedScaledGemmAct, else its reason (no fusion).
    const g = unfusedGraph(p, false);
    const r = registryProbe('cuda:0')('grouped_scaled_matmul_gelu', g.nodes[0]!.inputs.map((i) => g.values[i]!.type), GEMM_ATTRS);
    expect(r === true || /grouped_scaled_matmul_gelu_cuda: /.test(r), String(r)).toBe(true);
    expect(fuseScaledGroupedEpilogues(g, registryProbe('cuda:0')).gelu).toBe(r === true ? 1 : 0);
    const cpu = registryProbe('cpu')('grouped_scaled_matmul_gelu', g.nodes[0]!.inputs.map((i) => g.values[i]!.type), GEMM_ATTRS);
    expect(cpu).toMatch(/grouped_scaled_matmul_gelu_reference: the CPU reference computes f32, f16, bf16 and i32, not f8e4m3/);
    const rows = registry.explain('grouped_scaled_matmul_dgelu', { op: 'grouped_scaled_matmul_dgelu', device: 'cuda:0', inTypes: [], outTypes: [], attrs: {} } as KernelParams).rows.map((row) => row.name);
    expect(rows).toContain('grouped_scaled_matmul_dgelu_cuda');
  });
});

const [B, T] = [8, 16];
/** A training step of a small dropless MoE GPT (2 layers) with GELU or SwiGLU experts, autocast to bf16. */
function moeStep(activation: 'gelu' | 'swiglu'): Graph {
  const fwd = capture(new GPT({ vocabSize: 16, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 128, moe: { experts: 4, topK: 2, routing: 'dropless', activation } }), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  delete fwd.outputs.logits;
  return trainingStep(autocast(fwd), { optimizer: { weightDecay: 0 } });
}
const policy = (fuseEpilogues?: boolean) => new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0, native: true, ...(fuseEpilogues === undefined ? {} : { fuseEpilogues }) });
const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;
const moeCount = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op && n.scope.endsWith('.moe')).length;

/**
 * Both steps interpreted on one fresh random batch and initialization: the loss, the gradient norm
 * and every update, bit for bit.
 */
function expectSameStep(fused: Graph, plain: Graph): void {
  const seed = (Math.random() * 2 ** 31) >>> 0;
  const bind: Record<string, NumArray> = { tokens: Int32Array.from({ length: B * T }, () => randInt(0, 15)), targets: Int32Array.from({ length: B * T }, () => randInt(0, 15)), lr: Float32Array.of(1e-3), step: Float32Array.of(1) };
  for (const [name, id] of Object.entries(plain.params)) bind[name] = initialValues(plain.init[name] ?? { dist: 'zeros' }, numel(plain.values[id]!.type.shape), seed, name) as Float32Array;
  for (const [name, id] of Object.entries(plain.state)) bind[name] = new Float32Array(numel(plain.values[id]!.type.shape));
  const [a, b] = [interpret(fused, bind), interpret(plain, bind)];
  for (const table of ['outputs', 'updates'] as const) {
    expect(Object.keys(fused[table]).sort()).toEqual(Object.keys(plain[table]).sort());
    for (const name of Object.keys(plain[table])) expect(firstDiff(a[fused[table][name]!]!, b[plain[table][name]!]!), `${table} ${name} (seed ${seed})`).toBe(-1);
  }
  expect(Number.isFinite(a[fused.outputs.loss!]![0]!)).toBe(true);
}

describe('PrecisionPolicy: the fused epilogues of a native FP8 MoE GELU MLP', () => {
  it('fuses each layer\'s GELU and GELU backward with their quantize; the interpreted step gives the same bits with the fusion off', () => {
    const fused = policy().run(moeStep('gelu')).verify();
    const plain = policy(false).run(moeStep('gelu')).verify();
    expect([count(fused, 'grouped_scaled_matmul_gelu'), count(fused, 'grouped_scaled_matmul_dgelu')]).toEqual([2, 2]);
    expect([count(plain, 'grouped_scaled_matmul_gelu'), count(plain, 'grouped_scaled_matmul_dgelu')]).toEqual([0, 0]);
    expect([moeCount(fused, 'gelu'), moeCount(fused, 'gelu_backward'), moeCount(plain, 'gelu'), moeCount(plain, 'gelu_backward')]).toEqual([0, 0, 2, 2]);
    // Each fused node takes the place of one grouped_scaled_matmul, gelu (or gelu_backward) and quantize.
    expect(count(plain, 'grouped_scaled_matmul') - count(fused, 'grouped_scaled_matmul')).toBe(4);
    expect(count(plain, 'quantize') - count(fused, 'quantize')).toBe(4);
    // The activation and its gradient still feed the weight gradients' k-grouped quantizers.
    const producer = new Map(fused.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    const kgrouped = fused.nodes.filter((n) => n.op === 'quantize_kgrouped').map((n) => producer.get(n.inputs[0]!)!.op);
    expect(kgrouped.filter((op) => op === 'grouped_scaled_matmul_gelu').length).toBe(2);
    expect(kgrouped.filter((op) => op === 'grouped_scaled_matmul_dgelu').length).toBe(2);
    // With the numerics' quant_stats beside the operands (extra readers of the activation), the same.
    const stats = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0, native: true, numerics: true }).run(moeStep('gelu')).verify();
    expect([count(stats, 'grouped_scaled_matmul_gelu'), count(stats, 'grouped_scaled_matmul_dgelu'), count(stats, 'quant_stats') > 0]).toEqual([2, 2, true]);
    // The compile pipeline's passes keep them.
    const piped = runPasses(moeStep('gelu'), { precision: policy(), device: 'cpu' });
    expect([count(piped, 'grouped_scaled_matmul_gelu'), count(piped, 'grouped_scaled_matmul_dgelu')]).toEqual([2, 2]);
    expectSameStep(fused, plain);
  }, 120_000);

  it('refuses a fuseEpilogues that is not a boolean', () => {
    const e = errorOf(() => new PrecisionPolicy({ recipe: 'fp8-blockwise', fuseEpilogues: 'no' as never }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/Expected a boolean for fuseEpilogues but received/);
  });
});

describe('grouped_scaled_matmul_gelu and _dgelu: bad input', () => {
  const [E, R, K, N] = [2, 5, 128, 256];
  const types = (over: Partial<Record<number, ValueType>> = {}, n = N): ValueType[] =>
    [
      { shape: [R, K], dtype: 'f8e4m3' },
      { shape: [1, R], dtype: 'f32' },
      { shape: [E, n, K], dtype: 'f8e4m3' },
      { shape: [E, Math.ceil(n / 128), 4], dtype: 'f32' },
      { shape: [E + 1], dtype: 'i32' },
      { shape: [R, n], dtype: 'bf16' },
    ].map((t, i) => over[i] ?? t) as ValueType[];
  const infer = (op: string, t: ValueType[], attrs: Attrs = {}) => errorOf(() => getOp(op).infer(t, attrs));
  const gelu = 'grouped_scaled_matmul_gelu';
  const dgelu = 'grouped_scaled_matmul_dgelu';

  it('gives typed errors naming the op and the argument', () => {
    // The good calls, for contrast: codes and scales as quantize gives them for a bf16 [R, N].
    expect(getOp(gelu).infer(types().slice(0, 5), {})).toEqual([bf16(R, N), bf16(R, N), { shape: [R, N], dtype: 'f8e4m3' }, { shape: [N / 128, R], dtype: 'f32' }]);
    expect(getOp(dgelu).infer(types(), {})).toEqual([bf16(R, N), ...getOp('quantize').infer([bf16(R, N)], QUANT)]);
    for (const [op, t] of [[gelu, types({}, 192).slice(0, 5)], [dgelu, types({}, 192)]] as const) {
      const e = infer(op, t);
      expect([e.code, e.message]).toEqual(['SHAPE_MISMATCH', `${op}: Expected N (the output's columns, input 'b' [E, N, K]) a multiple of 128 (the epilogue quantizes each row in 1 × 128 blocks) but received N = 192 (input 'b' f8e4m3[2, 192, 128])`]);
    }
    let e = infer(dgelu, types({ 5: { shape: [R, 128], dtype: 'bf16' } }));
    expect([e.code, e.message]).toEqual(['SHAPE_MISMATCH', `${dgelu}: Expected bf16[5, 256] (the forward's pre-activation: the product's shape and dtype) for input 'pre' but received bf16[5, 128]`]);
    e = infer(dgelu, types({ 5: { shape: [R, N], dtype: 'f32' } }));
    expect([e.code, e.message]).toEqual(['INVALID_DTYPE', `${dgelu}: Expected bf16[5, 256] (the forward's pre-activation: the product's shape and dtype) for input 'pre' but received f32[5, 256]`]);
    // outDtype f32: refused by the attributes' check and by the shape rule itself.
    e = errorOf(() => checkAttrs(getOp(gelu), { outDtype: 'f32' }));
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `Expected one of 'bf16' for attribute 'outDtype' of ${gelu} but received "f32"`]);
    e = infer(dgelu, types(), { outDtype: 'f32' });
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `${dgelu}: Expected 'bf16' for attribute 'outDtype' (the epilogue writes bf16) but received "f32"`]);
    expect(infer(gelu, types().slice(0, 5), { scaleLayout: 'plain' }).message).toMatch(/Expected 'gemm' for attribute 'scaleLayout'/);
    expect(infer(gelu, types().slice(0, 5), { aScaling: 'mx32', bScaling: 'mx32' }).message).toMatch(/Expected 'block1x128' for attribute 'aScaling'/);
    // Input counts.
    e = infer(gelu, types());
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `${gelu}: Expected 5 inputs (a, aScale, b, bScale, offsets) but received 6`]);
    e = infer(dgelu, types().slice(0, 5));
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `${dgelu}: Expected 6 inputs (a, aScale, b, bScale, offsets, pre) but received 5`]);
    const b = new GraphBuilder();
    const syms = types().slice(0, 4).map((t, i) => b.input(`x${i}`, t.shape, t.dtype));
    expect(errorOf(() => b.op(gelu, syms)).message).toMatch(/Expected 5 inputs \(a, aScale, b, bScale, offsets\) but received 4/);
    // The GEMM's own checks, naming the fused op.
    e = infer(gelu, types({ 0: { shape: [R, K], dtype: 'bf16' } }).slice(0, 5));
    expect([e.code, e.message]).toEqual(['INVALID_DTYPE', `${gelu}: Expected f8e4m3 or f8e5m2 codes for input 'a' but received bf16[5, 128]`]);
    expect(infer(dgelu, types({ 3: { shape: [E, 2, 1], dtype: 'f32' } })).message).toMatch(new RegExp(`^${dgelu}: Expected f32\\[2, 2, 4\\] for input 'bScale'`));
    expect(infer(gelu, types({ 0: { shape: [R, K], dtype: 'f8e5m2' }, 2: { shape: [E, N, K], dtype: 'f8e5m2' } }).slice(0, 5)).message).toMatch(/at most one f8e5m2/);
    e = infer(gelu, types({ 0: { shape: [0, K], dtype: 'f8e4m3' }, 1: { shape: [1, 0], dtype: 'f32' } }).slice(0, 5));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(new RegExp(`^${gelu}: Expected at least one row`));
    expect(errorOf(() => getOp(gelu).infer([null as never, ...types().slice(1, 5)], {})).message).toMatch(/input 'a'/);
    // Offsets that do not add up, from the reference.
    const p = problem(E, R, K, N, 'e4m3', 'e4m3', 'ragged');
    e = errorOf(() => runReference(gelu, [...p.inputs.slice(0, 4), Int32Array.of(0, 4, 3)], p.types, {}));
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', 'grouped_scaled_matmul: Expected an integer in [offsets[1], 5] (offsets never decrease) for offsets[2] but received 3']);
  });

  it('the pass refuses what is not a graph or a probe', () => {
    for (const junk of [null, 3, 'graph', {}, { nodes: [], values: [] }]) expect(errorOf(() => fuseScaledGroupedEpilogues(junk as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => fuseScaledGroupedEpilogues(new GraphBuilder().graph, 'yes' as never)).message).toMatch(/Expected a kernel probe/);
  });
});

// ---- grouped_scaled_matmul_swiglu: a SwiGLU expert MLP's gate and up GEMMs, swiglu and quantize ----

const SWIGLU = 'grouped_scaled_matmul_swiglu';
const SWIGLU_NAMES = ['out', 'gate', 'up', 'codes', 'scales'];
/** The SwiGLU form's inputs: a, aScale, b1 (the problem's b: w1, the gate), b1Scale, b3, b3Scale (w3, the up projection, of b's type), offsets. */
const swigluInputs = (p: Problem): NumArray[] => [p.inputs[0]!, p.inputs[1]!, p.inputs[2]!, p.inputs[3]!, p.b3, p.b3Scale, p.inputs[4]!];
const swigluTypes = (p: Problem): ValueType[] => [p.types[0]!, p.types[1]!, p.types[2]!, p.types[3]!, p.types[2]!, p.types[3]!, p.types[4]!];

/** The unfused chain: grouped_scaled_matmul of w1 and of w3 (bf16 out), swiglu stored as bf16, quantize; [out, gate, up, codes, scales]. */
function unfusedSwiglu(p: Problem): Float64Array[] {
  const gate = runReference('grouped_scaled_matmul', p.inputs, p.types, GEMM_ATTRS)[0]!;
  const up = runReference('grouped_scaled_matmul', [p.inputs[0]!, p.inputs[1]!, p.b3, p.b3Scale, p.inputs[4]!], p.types, GEMM_ATTRS)[0]!;
  const t = bf16(p.R, p.N);
  const h = roundBf16(runReference('swiglu', [gate, up], [t, t], {})[0]!);
  const [codes, scales] = runReference('quantize', [h], [t], QUANT);
  return [h, gate, up, codes!, scales!];
}

describe('grouped_scaled_matmul_swiglu: the reference', () => {
  it("every output is the unfused chain's (grouped_scaled_matmul × 2 → swiglu → quantize), bit for bit, into poisoned outputs", () => {
    for (let trial = 0; trial < 6; trial++) {
      const p = randomProblem(trial);
      const got = runReference(SWIGLU, swigluInputs(p), swigluTypes(p), GEMM_ATTRS); // every output NaN first
      const want = unfusedSwiglu(p);
      const what = `trial ${trial}: E ${p.E} R ${p.R} K ${p.K} N ${p.N} ${p.types[0]!.dtype}·${p.types[2]!.dtype} offsets ${Array.from(p.inputs[4]!)}`;
      expect(got.length).toBe(SWIGLU_NAMES.length);
      got.forEach((g, i) => {
        expect(firstDiff(g, want[i]!), `${what}: ${SWIGLU_NAMES[i]}`).toBe(-1);
        expect(g.every((v) => !Number.isNaN(v)), `${what}: ${SWIGLU_NAMES[i]} fully written`).toBe(true);
      });
      // Not trivially so: two different products, an activation that changes them, codes not all zero.
      const [out, gate, up, codes] = got as [Float64Array, Float64Array, Float64Array, Float64Array];
      expect(gate.some((v, i) => v !== up[i]), what).toBe(true);
      expect(out.some((v, i) => v !== gate[i] && v !== up[i]), what).toBe(true);
      expect(codes.some((c) => c !== 0 && c !== 128), what).toBe(true);
    }
  });

  it('flops: both GEMMs and the activation', () => {
    const p = problem(3, 70, 256, 128, 'e4m3', 'e4m3', 'ragged');
    const gemm = getOp('grouped_scaled_matmul').flops!(p.types, [bf16(70, 128)], GEMM_ATTRS);
    const types = swigluTypes(p);
    expect(getOp(SWIGLU).flops!(types, getOp(SWIGLU).infer(types, {}), {})).toBe(2 * gemm + 6 * 70 * 128);
  });
});

const SWIGLU_INPUT_NAMES = ['a', 'aScale', 'b1', 'b1Scale', 'b3', 'b3Scale', 'offsets'];

/**
 * A graph of the unfused SwiGLU pattern on a problem's sizes: gate = M1(a, w1), up = M3(a, w3),
 * swiglu, quantize, every value an output, and a later reader of the activation and of gate. Options
 * break the pattern: no quantize, one not rowwise, M3 reading another a or other offsets, w3 of
 * another format, f32 products, a reader of the first product between the two GEMMs; upFirst builds
 * M3 before M1.
 */
function unfusedSwigluGraph(p: Problem, o: { quantize?: boolean; direction?: 'rowwise' | 'both'; otherA?: boolean; otherOffsets?: boolean; b3Dtype?: string; outDtype?: 'bf16' | 'f32'; upFirst?: boolean; earlyReader?: boolean } = {}): Graph {
  const b = new GraphBuilder();
  const types = swigluTypes(p);
  if (o.b3Dtype) types[4] = { ...types[4]!, dtype: o.b3Dtype as ValueType['dtype'] };
  const [a, aScale, b1, b1Scale, b3, b3Scale, offsets] = types.map((t, i) => b.input(SWIGLU_INPUT_NAMES[i]!, t.shape, t.dtype));
  const a3 = o.otherA ? b.input('a2', types[0]!.shape, types[0]!.dtype) : a!;
  const offsets3 = o.otherOffsets ? b.input('offsets2', types[6]!.shape, types[6]!.dtype) : offsets!;
  const attrs = { scaleLayout: 'gemm', outDtype: o.outDtype ?? 'bf16' };
  const gemm = (x: Sym, w: Sym, ws: Sym, off: Sym) => b.op1('grouped_scaled_matmul', [x, aScale!, w, ws, off], attrs);
  let gate: Sym, up: Sym;
  if (o.upFirst) {
    up = gemm(a3, b3!, b3Scale!, offsets3);
    if (o.earlyReader) b.output('early', b.op1('scale', [up], { alpha: 3 }));
    gate = gemm(a!, b1!, b1Scale!, offsets!);
  } else {
    gate = gemm(a!, b1!, b1Scale!, offsets!);
    if (o.earlyReader) b.output('early', b.op1('scale', [gate], { alpha: 3 }));
    up = gemm(a3, b3!, b3Scale!, offsets3);
  }
  const act = b.op1('swiglu', [gate, up]);
  if (o.quantize !== false) b.op('quantize', [act], { format: 'fp8-block1x128', direction: o.direction ?? 'rowwise' }).forEach((s, i) => b.output(`q${i}`, s));
  b.output('act', act);
  b.output('gate', gate);
  b.output('up', up);
  // Other readers: the weight gradient's quantize_kgrouped of the activation, swiglu's gradient of gate.
  b.output('twice', b.op1('scale', [act], { alpha: 2 }));
  b.output('silu', b.op1('silu', [gate]));
  return b.graph;
}

function interpretSwiglu(g: Graph, p: Problem): Record<string, NumArray> {
  const data = swigluInputs(p);
  return outputsOf(g, Object.fromEntries(SWIGLU_INPUT_NAMES.map((n, i) => [n, data[i]!])));
}

describe('fuseScaledGroupedEpilogues: SwiGLU (pattern C)', () => {
  it('fuses grouped_scaled_matmul × 2 → swiglu → quantize, either GEMM first; the fused graph interprets to the same bits', () => {
    for (let trial = 0; trial < 4; trial++) {
      const p = randomProblem(trial);
      for (const upFirst of [false, true]) {
        const before = unfusedSwigluGraph(p, { upFirst });
        const g = copyOf(before);
        expect(fuseScaledGroupedEpilogues(g)).toEqual({ gelu: 0, dgelu: 0, swiglu: 1 });
        const fused = eliminateDeadCode(g).verify();
        expect(fused.nodes.map((n) => n.op)).toEqual([SWIGLU, 'scale', 'silu']);
        // The fused node reads M1's weight as b1 and M3's as b3 whichever came first.
        expect(fused.nodes[0]!.inputs.map((i) => Object.entries(fused.inputs).find(([, id]) => id === i)?.[0])).toEqual(SWIGLU_INPUT_NAMES);
        const [want, got] = [interpretSwiglu(before, p), interpretSwiglu(fused, p)];
        expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
        for (const name of Object.keys(want)) expect(firstDiff(got[name]!, want[name]!), `trial ${trial} upFirst ${upFirst}: output ${name}`).toBe(-1);
      }
    }
  });

  it('leaves alone what the fused kernel does not take: no rowwise 1 × 128 quantize, GEMMs of different inputs, w3 of another format, f32 products, an early reader', () => {
    const p = problem(3, 256, 128, 128, 'e4m3', 'e4m3', 'ragged'); // R a multiple of 128: a columnwise quantize takes it
    const none = { gelu: 0, dgelu: 0, swiglu: 0 };
    const cases = [{ quantize: false }, { direction: 'both' as const }, { otherA: true }, { otherOffsets: true }, { b3Dtype: 'f8e5m2' }, { outDtype: 'f32' as const }, { earlyReader: true }, { earlyReader: true, upFirst: true }];
    for (const o of cases) {
      const g = unfusedSwigluGraph(p, o);
      const ops = g.nodes.map((n) => n.op);
      expect(fuseScaledGroupedEpilogues(g), JSON.stringify(o)).toEqual(none);
      expect(g.nodes.map((n) => n.op)).toEqual(ops);
    }
    // A reader of the later product between the two GEMMs and the swiglu is no obstacle.
    const b = new GraphBuilder();
    const ins = swigluTypes(p).map((t, i) => b.input(SWIGLU_INPUT_NAMES[i]!, t.shape, t.dtype));
    const gate = b.op1('grouped_scaled_matmul', [ins[0]!, ins[1]!, ins[2]!, ins[3]!, ins[6]!], GEMM_ATTRS);
    const up = b.op1('grouped_scaled_matmul', [ins[0]!, ins[1]!, ins[4]!, ins[5]!, ins[6]!], GEMM_ATTRS);
    b.output('late', b.op1('scale', [up], { alpha: 3 }));
    b.op('quantize', [b.op1('swiglu', [gate, up])], QUANT).forEach((s, i) => b.output(`q${i}`, s));
    expect(fuseScaledGroupedEpilogues(b.graph)).toEqual({ ...none, swiglu: 1 });
    eliminateDeadCode(b.graph).verify();
  });

  it('asks the kernel probe about each fused call, and leaves the site unfused where it says no', () => {
    const p = problem(2, 100, 128, 256, 'e4m3', 'e4m3', 'one');
    const asked: [string, string[], Attrs][] = [];
    const probe = (ok: boolean) => (op: string, inTypes: ValueType[], attrs: Attrs) => {
      asked.push([op, inTypes.map((t) => `${t.dtype}[${t.shape}]`), attrs]);
      return ok ? (true as const) : 'no kernel here';
    };
    const no = unfusedSwigluGraph(p);
    const ops = no.nodes.map((n) => n.op);
    expect(fuseScaledGroupedEpilogues(no, probe(false))).toEqual({ gelu: 0, dgelu: 0, swiglu: 0 });
    expect(no.nodes.map((n) => n.op)).toEqual(ops);
    expect(fuseScaledGroupedEpilogues(unfusedSwigluGraph(p), probe(true))).toEqual({ gelu: 0, dgelu: 0, swiglu: 1 });
    const attrs = { aScaling: 'block1x128', bScaling: 'block128x128', ...GEMM_ATTRS }; // the grouped_scaled_matmul node's (checked)
    const types = ['f8e4m3[100,128]', 'f32[1,100]', 'f8e4m3[2,256,128]', 'f32[2,2,4]', 'f8e4m3[2,256,128]', 'f32[2,2,4]', 'i32[3]'];
    expect(asked).toEqual([[SWIGLU, types, attrs], [SWIGLU, types, attrs]]);
    // The registry's answer on a CUDA device: the CUDA candidate where this machine has a GPU and the
    // addon's groupedScaledGemmSwiglu, else its reason (no fusion); on the CPU the reference's reason.
    const inTypes = swigluTypes(p);
    const r = registryProbe('cuda:0')(SWIGLU, inTypes, GEMM_ATTRS);
    expect(r === true || /grouped_scaled_matmul_swiglu_cuda: /.test(r), String(r)).toBe(true);
    expect(fuseScaledGroupedEpilogues(unfusedSwigluGraph(p), registryProbe('cuda:0')).swiglu).toBe(r === true ? 1 : 0);
    expect(registryProbe('cpu')(SWIGLU, inTypes, GEMM_ATTRS)).toMatch(/grouped_scaled_matmul_swiglu_reference: the CPU reference computes f32, f16, bf16 and i32, not f8e4m3/);
    const rows = registry.explain(SWIGLU, { op: SWIGLU, device: 'cuda:0', inTypes: [], outTypes: [], attrs: {} } as KernelParams).rows.map((row) => row.name);
    expect(rows).toContain('grouped_scaled_matmul_swiglu_cuda');
  });
});

describe('PrecisionPolicy: the fused epilogue of a native FP8 MoE SwiGLU MLP', () => {
  it("fuses each layer's gate and up GEMMs, swiglu and quantize; the interpreted step gives the same bits with the fusion off", () => {
    const fused = policy().run(moeStep('swiglu')).verify();
    const plain = policy(false).run(moeStep('swiglu')).verify();
    expect([count(fused, SWIGLU), count(plain, SWIGLU)]).toEqual([2, 0]);
    expect([moeCount(fused, 'swiglu'), moeCount(plain, 'swiglu')]).toEqual([0, 2]);
    // Unfused, the rewrite's gate and up GEMMs already read one quantize of x (native_grouped.ts shares it).
    const producer = (g: Graph) => new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    const plainBy = producer(plain);
    for (const s of plain.nodes.filter((n) => n.op === 'swiglu' && n.scope.endsWith('.moe'))) {
      const [m1, m3] = s.inputs.map((i) => plainBy.get(i)!);
      expect([m1!.op, m3!.op]).toEqual(['grouped_scaled_matmul', 'grouped_scaled_matmul']);
      expect([m3!.inputs[0], m3!.inputs[1], m3!.inputs[4]]).toEqual([m1!.inputs[0], m1!.inputs[1], m1!.inputs[4]]);
    }
    // Each fused node takes the place of two grouped_scaled_matmul, a swiglu and a quantize (x's stays: the fused node reads it).
    expect(count(plain, 'grouped_scaled_matmul') - count(fused, 'grouped_scaled_matmul')).toBe(4);
    expect(count(plain, 'quantize') - count(fused, 'quantize')).toBe(2);
    // The activation still feeds the down projection's weight gradient (quantize_kgrouped), and gate
    // and up swiglu's gradient (silu, silu_backward, mul), now from the fused node.
    const by = producer(fused);
    const kgrouped = fused.nodes.filter((n) => n.op === 'quantize_kgrouped').map((n) => by.get(n.inputs[0]!)!.op);
    expect(kgrouped.filter((op) => op === SWIGLU).length).toBe(2);
    const sb = fused.nodes.filter((n) => n.op === 'silu_backward' && n.scope.includes('.moe'));
    expect(sb.map((n) => by.get(n.inputs[1]!)!.op)).toEqual([SWIGLU, SWIGLU]);
    // With the numerics' quant_stats beside the operands, the same; and the compile pipeline's passes keep them.
    const stats = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0, native: true, numerics: true }).run(moeStep('swiglu')).verify();
    expect([count(stats, SWIGLU), count(stats, 'quant_stats') > 0]).toEqual([2, true]);
    expect(count(runPasses(moeStep('swiglu'), { precision: policy(), device: 'cpu' }), SWIGLU)).toBe(2);
    expectSameStep(fused, plain);
  }, 120_000);
});

describe('grouped_scaled_matmul_swiglu: bad input', () => {
  const [E, R, K, N] = [2, 5, 128, 256];
  const types = (over: Partial<Record<number, ValueType>> = {}, n = N): ValueType[] =>
    [
      { shape: [R, K], dtype: 'f8e4m3' },
      { shape: [1, R], dtype: 'f32' },
      { shape: [E, n, K], dtype: 'f8e4m3' },
      { shape: [E, Math.ceil(n / 128), 4], dtype: 'f32' },
      { shape: [E, n, K], dtype: 'f8e4m3' },
      { shape: [E, Math.ceil(n / 128), 4], dtype: 'f32' },
      { shape: [E + 1], dtype: 'i32' },
    ].map((t, i) => over[i] ?? t) as ValueType[];
  const infer = (t: ValueType[], attrs: Attrs = {}) => errorOf(() => getOp(SWIGLU).infer(t, attrs));
  const sw = SWIGLU;

  it('gives typed errors naming the op and the argument', () => {
    // The good call, for contrast: codes and scales as quantize gives them for a bf16 [R, N].
    expect(getOp(sw).infer(types(), {})).toEqual([bf16(R, N), bf16(R, N), bf16(R, N), ...getOp('quantize').infer([bf16(R, N)], QUANT)]);
    let e = infer(types().slice(0, 6));
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `${sw}: Expected 7 inputs (a, aScale, b1, b1Scale, b3, b3Scale, offsets) but received 6`]);
    // w3 must be w1's type, its scales b1Scale's.
    const why = "the type of input 'b1': w1 and w3 are one MLP's gate and up projections: one shape and one format";
    e = infer(types({ 4: { shape: [E, N, K], dtype: 'f8e5m2' } }));
    expect([e.code, e.message]).toEqual(['INVALID_DTYPE', `${sw}: Expected f8e4m3[2, 256, 128] (${why}) for input 'b3' but received f8e5m2[2, 256, 128]`]);
    e = infer(types({ 4: { shape: [E, 128, K], dtype: 'f8e4m3' } }));
    expect([e.code, e.message]).toEqual(['SHAPE_MISMATCH', `${sw}: Expected f8e4m3[2, 256, 128] (${why}) for input 'b3' but received f8e4m3[2, 128, 128]`]);
    e = infer(types({ 5: { shape: [E, 2, 8], dtype: 'f32' } }));
    expect([e.code, e.message]).toEqual(['SHAPE_MISMATCH', `${sw}: Expected f32[2, 2, 4] (the type of input 'b1Scale': the 128 × 128 scales of a weight of b1's shape) for input 'b3Scale' but received f32[2, 2, 8]`]);
    e = infer(types({ 5: { shape: [E, 2, 4], dtype: 'bf16' } }));
    expect(e.code).toBe('INVALID_DTYPE');
    // The GEMM's own checks, naming the fused op and its input b1.
    e = infer(types({}, 192));
    expect([e.code, e.message]).toEqual(['SHAPE_MISMATCH', `${sw}: Expected N (the output's columns, input 'b1' [E, N, K]) a multiple of 128 (the epilogue quantizes each row in 1 × 128 blocks) but received N = 192 (input 'b1' f8e4m3[2, 192, 128])`]);
    e = infer(types({ 2: { shape: [E, N, K], dtype: 'bf16' } }));
    expect([e.code, e.message]).toEqual(['INVALID_DTYPE', `${sw}: Expected f8e4m3 or f8e5m2 codes for input 'b1' but received bf16[2, 256, 128]`]);
    expect(infer(types({ 3: { shape: [E, 2, 1], dtype: 'f32' } })).message).toMatch(new RegExp(`^${sw}: Expected f32\\[2, 2, 4\\] for input 'b1Scale'`));
    expect(infer(types({ 2: { shape: [E, N, 256], dtype: 'f8e4m3' } })).message).toMatch(new RegExp(`^${sw}: Expected input 'b1' with K = 128`));
    const e5 = { shape: [E, N, K], dtype: 'f8e5m2' } as ValueType;
    expect(infer(types({ 0: { shape: [R, K], dtype: 'f8e5m2' }, 2: e5, 4: e5 })).message).toMatch(/at most one f8e5m2 operand but received f8e5m2 for both 'a' and 'b1'/);
    e = infer(types({ 0: { shape: [0, K], dtype: 'f8e4m3' }, 1: { shape: [1, 0], dtype: 'f32' } }));
    expect([e.code, e.message.startsWith(`${sw}: Expected at least one row`)]).toEqual(['SHAPE_MISMATCH', true]);
    expect(errorOf(() => getOp(sw).infer([...types().slice(0, 4), null as never, ...types().slice(5)], {})).message).toMatch(/input 'b3'/);
    // Attributes: each its one value.
    e = errorOf(() => checkAttrs(getOp(sw), { outDtype: 'f32' }));
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `Expected one of 'bf16' for attribute 'outDtype' of ${sw} but received "f32"`]);
    e = infer(types(), { outDtype: 'f32' });
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `${sw}: Expected 'bf16' for attribute 'outDtype' (the epilogue writes bf16) but received "f32"`]);
    expect(infer(types(), { scaleLayout: 'plain' }).message).toMatch(/Expected 'gemm' for attribute 'scaleLayout'/);
    // Offsets that do not add up, from the reference.
    const p = problem(E, R, K, N, 'e4m3', 'e4m3', 'ragged');
    e = errorOf(() => runReference(sw, [...swigluInputs(p).slice(0, 6), Int32Array.of(0, 4, 3)], swigluTypes(p), {}));
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', 'grouped_scaled_matmul: Expected an integer in [offsets[1], 5] (offsets never decrease) for offsets[2] but received 3']);
  });
});
