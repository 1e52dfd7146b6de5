// The optimizer phase's and the weight casts' CUDA kernels against their CPU references, on fresh
// random inputs with outputs poisoned first: sum_squares (multi-tensor, deterministic), adamw and
// adamw_multi with gradScale, cast_multi; and a compiled autocast step with clipping whose optimizer
// phase runs on those kernels, against the same step on the CPU. Skipped without a GPU.
import { registry, type DTypeName } from '@deepwell/core';
import { Stream, cudaBackend, type CudaCall } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { autocast, biasAdd, capture, checkAttrs, compile, crossEntropy, currentBuilder, gelu, getOp, layernorm, matmul, reshape, trainingStep, type Capturable, type Sym, type ValueType } from '../src/index.js';
import { decode, encode, gpu, maxError, reference, rounded, runCuda, type CudaInput } from './cuda-helpers.js';
import { randInt, randn } from './helpers.js';

type Storage = 'f32' | 'bf16' | 'f16';
const FLOATS: Storage[] = ['f32', 'bf16', 'f16'];
const bytesOf = (d: DTypeName) => (d === 'f32' || d === 'i32' ? 4 : 2);

/**
 * Runs `op`'s CUDA candidate with every input packed into one device buffer, input k at an offset
 * one element past a 16-byte boundary when `misalign(k)` (the kernels' scalar paths), else on one;
 * outputs in their own buffer, poisoned (all bits set), likewise placed; the declared workspace
 * poisoned too. Returns the outputs as float64 and each output's raw bytes.
 */
function runPacked(op: string, inputs: CudaInput[], attrs: Record<string, unknown>, misalign: (k: number) => boolean) {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const inTypes: ValueType[] = inputs.map((x) => ({ shape: x.shape, dtype: x.dtype ?? 'f32' }));
  const outTypes = def.infer(inTypes, checked);
  const params = { op, device: 'cuda:0', inTypes, outTypes, attrs: checked };
  const kernel = registry.select<CudaCall, void>(op, params as unknown as CudaCall);
  expect(kernel.name).toBe(`${op}_cuda`);
  const layout = (types: ValueType[]) => {
    let bytes = 0;
    const offs = types.map((t, k) => {
      const off = Math.ceil(bytes / 16) * 16 + 16 + (misalign(k) ? bytesOf(t.dtype) : 0);
      bytes = off + t.shape.reduce((a, b) => a * b, 1) * bytesOf(t.dtype);
      return off;
    });
    return { offs, bytes: Math.max(16, bytes) };
  };
  const inL = layout(inTypes);
  const outL = layout(outTypes);
  const be = cudaBackend(0);
  const stream = new Stream(0);
  const inBuf = be.alloc(inL.bytes);
  const outBuf = be.alloc(outL.bytes);
  const wsBytes = kernel.workspace?.(params as unknown as CudaCall) ?? 0;
  const wsBuf = wsBytes > 0 ? be.alloc(wsBytes) : null;
  try {
    const host = new Uint8Array(inL.bytes);
    inputs.forEach((x, k) => {
      const enc = encode(inTypes[k]!.dtype, x.data);
      host.set(new Uint8Array(enc.buffer, enc.byteOffset, enc.byteLength), inL.offs[k]!);
    });
    be.write(inBuf, host);
    be.memset(outBuf, 0xff);
    if (wsBuf) be.memset(wsBuf, 0xff);
    be.synchronize();
    const n = (t: ValueType) => t.shape.reduce((a, b) => a * b, 1);
    const arg = (buf: { ptr: number }, off: number, t: ValueType) => ({ base: buf.ptr, offset: off, bytes: n(t) * bytesOf(t.dtype) });
    kernel.run({
      ...params,
      stream: stream.handle,
      inputs: inTypes.map((t, k) => arg(inBuf, inL.offs[k]!, t)),
      outputs: outTypes.map((t, k) => arg(outBuf, outL.offs[k]!, t)),
      workspace: wsBuf ? { base: wsBuf.ptr, offset: 0, bytes: wsBytes } : null,
    });
    stream.synchronize();
    const out = new Uint8Array(outL.bytes);
    be.read(outBuf, out);
    const raw = outTypes.map((t, k) => out.slice(outL.offs[k]!, outL.offs[k]! + n(t) * bytesOf(t.dtype)));
    return { outputs: raw.map((r, k) => decode(outTypes[k]!.dtype, r)), raw };
  } finally {
    stream.dispose();
    be.free(inBuf);
    be.free(outBuf);
    if (wsBuf) be.free(wsBuf);
  }
}

/** Fresh random tensors of random float dtypes, more than one launch takes, some past a chunk. */
function manyTensors(count: number, dtypes: readonly Storage[]): CudaInput[] {
  return Array.from({ length: count }, (_, k) => {
    const n = k === 7 ? 40000 : k === 11 ? 0 : k === 13 ? 1 : k === 17 ? 16384 : randInt(1, 900);
    return { shape: [n], dtype: dtypes[randInt(0, dtypes.length - 1)]!, data: randn(n).map((v) => v * 2 ** randInt(-4, 4)) };
  });
}

describe.skipIf(!gpu)('sum_squares_cuda', () => {
  it('sums the squares of 300 tensors of mixed dtypes to within one f32 rounding, and the same bits every run', () => {
    const ins = manyTensors(300, FLOATS);
    const r = runCuda('sum_squares', ins);
    expect(r.kernel).toBe('sum_squares_cuda');
    const [want] = reference('sum_squares', ins);
    // f64 partials in another order than the reference's: the f32 result is the rounded f64 sum
    // (half an f32 ulp, plus the f64 order's ~1e-16).
    expect(maxError(r.outputs[0]!, want!, 0)).toBeLessThanOrEqual(2 ** -24 + 1e-12);
    expect(r.outputs[0]![0]).toBeGreaterThan(0);
    const again = runCuda('sum_squares', ins);
    expect(again.outputs[0]![0]).toBe(r.outputs[0]![0]);
  });

  it('takes misaligned tensors (scalar path) and one empty tensor alone', () => {
    for (const dtypes of [['bf16'], ['f32'], ['f16'], FLOATS] as Storage[][]) {
      const ins = manyTensors(140, dtypes);
      const want = reference('sum_squares', ins)[0]!;
      const got = runPacked('sum_squares', ins, {}, (k) => k % 2 === 1).outputs[0]!;
      expect(maxError(got, want, 0), dtypes.join()).toBeLessThanOrEqual(2 ** -24 + 1e-12);
    }
    const zero = runCuda('sum_squares', [{ shape: [0], dtype: 'bf16', data: new Float64Array(0) }]);
    expect(Array.from(zero.outputs[0]!)).toEqual([0]);
  });
});

const ADAMW = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** One parameter's [param, grad, m, v] for adamw, the gradient in `gdt`. */
function adamwGroup(n: number, gdt: Storage): CudaInput[] {
  return [
    { shape: [n], dtype: 'f32', data: randn(n) },
    { shape: [n], dtype: gdt, data: randn(n) },
    { shape: [n], dtype: 'f32', data: randn(n).map((x) => 0.1 * x) },
    { shape: [n], dtype: 'f32', data: randn(n).map((x) => 0.01 * x * x + 1e-4) },
  ];
}

// As adamw_cuda's test (cuda-nn.test.ts): the new param cancels at about the update's size.
function expectAdamw(got: Float64Array[], want: ArrayLike<number>[], lr: number, what: string) {
  const big = (w: ArrayLike<number>) => Math.max(...Array.from(w, Math.abs));
  want.forEach((w, i) => expect(maxError(got[i]!, w, [lr * 10, big(w), 0][i % 3]!), `${what} output ${i}`).toBeLessThanOrEqual(1e-5));
}

describe.skipIf(!gpu)('adamw with gradScale on the GPU', () => {
  for (const gdt of FLOATS) {
    it(`adamw_cuda multiplies the ${gdt} gradient by gradScale first`, () => {
      const lr = 3e-4;
      const ins: CudaInput[] = [...adamwGroup(randInt(5000, 9000), gdt), { shape: [1], dtype: 'f32', data: Float64Array.of(lr) }, { shape: [1], dtype: 'f32', data: Float64Array.of(randInt(1, 50)) }];
      const scale = { shape: [1], dtype: 'f32' as const, data: Float64Array.of(Math.fround(0.05 + Math.random() * 0.5)) };
      const r = runCuda('adamw', [...ins, scale], ADAMW);
      expect(r.kernel).toBe('adamw_cuda');
      expectAdamw(r.outputs, reference('adamw', [...ins, scale], ADAMW), lr, 'scaled');
      // Without the scale the moments differ well beyond that bound.
      const unscaled = reference('adamw', ins, ADAMW);
      expect(maxError(r.outputs[1]!, unscaled[1]!, 0)).toBeGreaterThan(1e-2);
    });
  }

  it('adamw_multi_cuda shares one gradScale over 70 tensors (3 launches)', () => {
    for (const gdt of ['bf16', 'f32'] as const) {
      const lr = 1e-3;
      const groups = Array.from({ length: 70 }, (_, k) => adamwGroup(k === 3 ? 20000 : randInt(1, 700), gdt));
      const scale = { shape: [1], dtype: 'f32' as const, data: Float64Array.of(Math.fround(0.3)) };
      const inputs: CudaInput[] = [{ shape: [1], dtype: 'f32', data: Float64Array.of(lr) }, { shape: [1], dtype: 'f32', data: Float64Array.of(4) }, ...groups.flat(), scale];
      const r = runCuda('adamw_multi', inputs, ADAMW);
      expect(r.kernel).toBe('adamw_multi_cuda');
      expectAdamw(r.outputs, reference('adamw_multi', inputs, ADAMW), lr, gdt);
    }
  });

  it('refuses a gradScale that is not f32 (the op rule first)', () => {
    const t = (dtype: DTypeName, shape = [4]): ValueType => ({ shape, dtype });
    const inTypes = [t('f32'), t('bf16'), t('f32'), t('f32'), t('f32', [1]), t('f32', [1]), t('bf16', [1])];
    expect(() => getOp('adamw').infer(inTypes, checkAttrs(getOp('adamw'), {}))).toThrow(/Expected f32 for input 'gradScale'/);
  });
});

describe.skipIf(!gpu)('cast_multi_cuda', () => {
  for (const [from, to] of [['f32', 'bf16'], ['f32', 'f16'], ['bf16', 'f32'], ['f16', 'bf16']] as const) {
    it(`casts 150 tensors ${from} -> ${to} to exactly cast's bits, aligned or not`, () => {
      const ins = manyTensors(150, [from]).map((x) => ({ ...x, data: rounded(from, x.data.map((v) => v * (1 + 2 ** -9 * Math.random()))) }));
      for (const misalign of [() => false, (k: number) => k % 3 === 1]) {
        const got = runPacked('cast_multi', ins, { dtype: to }, misalign);
        const want = reference('cast_multi', ins, { dtype: to });
        got.outputs.forEach((g, k) => {
          expect(Array.from(g), `tensor ${k}`).toEqual(Array.from(rounded(to, want[k]!)));
          // And the bits are cast_cuda's.
          if (k < 4 && g.length > 0) expect(Array.from(g)).toEqual(Array.from(runCuda('cast', [ins[k]!], { dtype: to }).outputs[0]!));
        });
      }
    });
  }
});

describe.skipIf(!gpu)('native checks of the new entry points (a DeepwellError, never a crash)', () => {
  const select = (op: string, inTypes: ValueType[], attrs: Record<string, unknown> = {}) => {
    const def = getOp(op);
    const checked = checkAttrs(def, attrs);
    const params = { op, device: 'cuda:0', inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
    return { params, kernel: registry.select<CudaCall, void>(op, params as unknown as CudaCall) };
  };
  it('cast_multi refuses an output overlapping an input; sum_squares a short workspace; adamw a gradScale inside an output', () => {
    const be = cudaBackend(0);
    const stream = new Stream(0);
    const buf = be.alloc(1 << 17);
    const at = (offset: number, bytes: number) => ({ base: buf.ptr, offset, bytes });
    try {
      const cm = select('cast_multi', [{ shape: [100], dtype: 'f32' }, { shape: [10], dtype: 'f32' }], { dtype: 'bf16' });
      const run = (outAt: number) => cm.kernel.run({ ...cm.params, stream: stream.handle, inputs: [at(0, 400), at(1024, 40)], outputs: [at(outAt, 200), at(2048, 20)], workspace: null });
      expect(() => run(200)).toThrow(/cast_multi not to overlap any of its tensors, but output 0 overlaps input 0/);
      run(4096); // apart: fine
      const ss = select('sum_squares', [{ shape: [40000], dtype: 'bf16' }]);
      expect(() => ss.kernel.run({ ...ss.params, stream: stream.handle, inputs: [at(0, 80000)], outputs: [at(81920, 4)], workspace: at(82176, 8) })).toThrow(/workspace of at least 24 bytes/);
      const f = (shape: number[]): ValueType => ({ shape, dtype: 'f32' });
      const aw = select('adamw', [f([64]), f([64]), f([64]), f([64]), f([1]), f([1]), f([1])]);
      const ins = [at(0, 256), at(256, 256), at(512, 256), at(768, 256), at(1024, 4), at(1028, 4), at(16, 4)];
      be.memset(buf, 0);
      expect(() => aw.kernel.run({ ...aw.params, stream: stream.handle, inputs: ins, outputs: [at(0, 256), at(512, 256), at(768, 256)], workspace: null })).toThrow(/not to overlap input 'gradScale'/);
      stream.synchronize();
    } finally {
      stream.dispose();
      be.free(buf);
    }
  });
});

/** A pre-norm MLP with a head, in bf16 under autocast. */
class Net implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const p = (name: string, shape: number[]) => b.param(name, shape, 'f32', { dist: 'normal', scale: 0.2 });
    const linear = (name: string, v: Sym, out: number, inn: number) =>
      b.scoped(name, () => biasAdd(matmul(v, p(`${name}.weight`, [out, inn]), { transB: true }), p(`${name}.bias`, [out])));
    const h = gelu(linear('fc1', layernorm(x!, p('ln.weight', [64]), p('ln.bias', [64])), 256, 64));
    const logits = linear('head', h, 32, 256);
    return { loss: crossEntropy(reshape(logits, [-1, 32]), reshape(y!, [-1])) };
  }
}

describe.skipIf(!gpu)('a compiled autocast step with clipping on CUDA', () => {
  it('runs its optimizer phase on sum_squares, adamw_multi and cast_multi, tracking the CPU step', () => {
    const fwd = capture(new Net(), { x: { shape: [4, 16, 64] }, y: { shape: [4, 16], dtype: 'i32' } });
    const step = trainingStep(autocast(fwd), { clipGradNorm: 0.5 });
    const cuda = compile(step, { device: 'cuda:0', seed: 3 });
    const cpu = compile(step, { seed: 3 });
    const kernels = new Map(cuda.kernelSummary().map((r) => [r.op, r.kernel]));
    expect(kernels.get('sum_squares')).toBe('sum_squares_cuda');
    expect(kernels.get('adamw_multi')).toBe('adamw_multi_cuda');
    expect(kernels.get('cast_multi')).toBe('cast_multi_cuda');
    expect(cuda.kernelSummary().filter((r) => r.op === 'mul' || r.op === 'adamw')).toEqual([]);
    const init = Object.fromEntries(cpu.parameterNames().map((n) => [n, Float64Array.from(cpu.get(n))]));
    for (let s = 1; s <= 4; s++) {
      const batch = {
        x: Float32Array.from(randn(4 * 16 * 64)),
        y: Int32Array.from({ length: 64 }, () => randInt(0, 31)),
        lr: Float32Array.of(1e-3),
        step: Float32Array.of(s),
      };
      const a = cuda.run(batch);
      const b = cpu.run(batch);
      // bf16 activations: the GPU's GEMMs sum in another order than the CPU reference.
      expect(Math.abs(a.loss![0]! - b.loss![0]!)).toBeLessThan(2e-2 * Math.abs(b.loss![0]!));
      expect(Math.abs(a.grad_norm![0]! - b.grad_norm![0]!)).toBeLessThan(3e-2 * b.grad_norm![0]!);
    }
    // The updates (after - before) point the same way: near-zero gradients may flip an element's
    // Adam step (about lr) between the two, the bulk does not. Every element finite and within
    // Adam's reach of the CPU's (a few lr a step); an unwritten or garbage update fails.
    for (const name of cuda.parameterNames()) {
      const [g, c, p0] = [cuda.get(name), cpu.get(name), init[name]!];
      let dot = 0, gg = 0, cc = 0, worst = 0;
      for (let i = 0; i < p0.length; i++) {
        expect(Number.isFinite(g[i]!), `${name}[${i}]`).toBe(true);
        const [du, dc] = [g[i]! - p0[i]!, c[i]! - p0[i]!];
        dot += du * dc;
        gg += du * du;
        cc += dc * dc;
        worst = Math.max(worst, Math.abs(du - dc));
      }
      expect(dot / Math.sqrt(gg * cc), name).toBeGreaterThan(0.9);
      expect(worst, name).toBeLessThan(8 * 1e-3 * 4);
    }
    cuda.dispose();
    cpu.dispose();
  });
});
