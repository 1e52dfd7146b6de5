// The 'tensor' family's CUDA kernels (native/ops/tensor/) against the float64 CPU references on
// the same storage-rounded inputs. Outputs are poisoned with NaN before each run, so an element a
// kernel never writes fails the comparison. Error budgets are what the precision costs: FP32
// arithmetic plus one rounding of the output to the storage dtype; reductions grow with length.
import { registry, type DTypeName } from '@deepwell/core';
import { cudaBackend, nativeEntries, type CudaBuffer } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { capture, checkAttrs, compile, getOp, interpret, numel, storedAmax, type AttrValue, type ValueType } from '../src/index.js';
import { decode, encode, gpu, maxError, reference, rounded, runCuda, UNIT_ROUNDOFF, type CudaInput } from './cuda-helpers.js';
import { errorOf, randInt, randn } from './helpers.js';

const U32 = UNIT_ROUNDOFF.f32!;

/** Random normals times `scale`, never exactly zero. */
function data(n: number, scale = 1): Float64Array {
  return randn(n).map((v) => (v === 0 ? 0.5 : v) * scale);
}

const inp = (shape: number[], scale = 1): CudaInput => ({ shape, data: data(numel(shape), scale) });

/** Random integers in [lo, hi]. */
const ints = (n: number, lo: number, hi: number) => Int32Array.from({ length: n }, () => randInt(lo, hi));

/** Elementwise budget: FP32 arithmetic for f32 storage, one output rounding (2u) for narrow ones. */
const tol = (storage: DTypeName) => (storage === 'f32' ? 1e-5 : 2 * UNIT_ROUNDOFF[storage]!);

function run(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue>, storage: DTypeName) {
  const r = runCuda(op, inputs, attrs, { storage });
  expect(r.kernel).toBe(`${op}_cuda`);
  return { got: r.outputs, want: reference(op, inputs, attrs, storage) };
}

/**
 * Elementwise results: maxError (relative to |want| + 1) against the reference, rounded to the
 * storage dtype for narrow storage.
 */
function expectClose(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue>, storage: DTypeName): void {
  const { got, want } = run(op, inputs, attrs, storage);
  want.forEach((w, k) => {
    const target = storage === 'f32' ? w : rounded(storage, w);
    const err = maxError(got[k]!, target);
    if (!(err <= tol(storage))) throw new Error(`${op} (${storage}, ${inputs.map((x) => `[${x.shape.join(', ')}]`).join(' ')}): maxError ${err} > ${tol(storage)}`);
  });
}

/** Bit-exact results (data movement, casts, max): equal values, NaN where the reference has NaN. */
function expectExact(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue>, storage: DTypeName): void {
  const { got, want } = run(op, inputs, attrs, storage);
  want.forEach((w, k) => {
    const target = w instanceof Int32Array ? w : rounded(storage, w);
    const g = got[k]!;
    expect(g.length).toBe(target.length);
    for (let i = 0; i < g.length; i++) {
      if (!Object.is(g[i], target[i])) throw new Error(`${op} (${storage}, ${inputs.map((x) => `[${x.shape.join(', ')}]`).join(' ')}): element ${i} is ${g[i]}, want ${target[i]}`);
    }
  });
}

/**
 * Reductions, group by group: |got - want| <= 4·sqrt(count)·u_f32·Σ|terms| (FP32 accumulation)
 * + the output rounding: u_f32·|want| for f32, 2u·(|want| + max|want|) for narrow storage.
 */
function expectReduced(op: 'sum' | 'mean' | 'sum_to', x: CudaInput, attrs: Record<string, AttrValue>, storage: DTypeName): void {
  const { got, want } = run(op, [x], attrs, storage);
  const abs = { ...x, data: Float64Array.from(rounded(storage, x.data), Math.abs) };
  const mag = reference(op, [abs], attrs, storage)[0]!;
  const w = want[0]!;
  const g = got[0]!;
  const count = w.length ? numel(x.shape) / w.length : 0;
  const maxWant = Math.max(0, ...Array.from(w, Math.abs));
  for (let j = 0; j < w.length; j++) {
    const target = storage === 'f32' ? w[j]! : rounded(storage, [w[j]!])[0]!;
    const out = storage === 'f32' ? U32 * Math.abs(w[j]!) : 2 * UNIT_ROUNDOFF[storage]! * (Math.abs(target) + maxWant);
    const bound = 4 * Math.sqrt(Math.max(count, 1)) * U32 * mag[j]! * 1.01 + out;
    if (!(Math.abs(g[j]! - target) <= bound)) throw new Error(`${op} (${storage}, [${x.shape.join(', ')}], ${JSON.stringify(attrs)}): group ${j} is ${g[j]}, want ${target} (bound ${bound})`);
  }
}

const params = (op: string, inTypes: ValueType[], outTypes: ValueType[], attrs: Record<string, AttrValue> = {}) => ({ op, device: 'cuda:0', inTypes, outTypes, attrs: checkAttrs(getOp(op), attrs) });

/** The verdict of `<op>_cuda` for these parameters. */
function verdict(p: ReturnType<typeof params>): string {
  const row = registry.explain(p.op, p).rows.find((r) => r.name === `${p.op}_cuda`);
  expect(row, `${p.op}_cuda is registered`).toBeDefined();
  return row!.verdict;
}

const STORAGES = ['f32', 'bf16', 'f16'] as const;

describe.skipIf(!gpu)('a compiled step on CUDA with 16-bit graph inputs and outputs', () => {
  it('takes f32 values, rounds them into bf16 / f16 storage, and returns the outputs as f32 values', () => {
    for (const dtype of ['bf16', 'f16'] as const) {
      const g = capture({ forward: ({ x }) => ({ y: x!.builder.op1('add', [x!, x!]) }) }, { x: { shape: [3, 1000], dtype } });
      const x = randn(3000);
      const exe = compile(g, { device: 'cuda:0' });
      const got = exe.run({ x }).y!;
      exe.dispose();
      const want = interpret(g, { x })[g.outputs.y!]!;
      expect(got).toBeInstanceOf(Float32Array);
      expect(Array.from(got)).toEqual(Array.from(want));
      expect(Array.from(got)).toEqual(Array.from(rounded(dtype, Array.from(x, (v) => 2 * v))));
      expect(got.some((v, i) => v !== 2 * x[i]!), dtype).toBe(true); // the storage did round
    }
  });
});

describe.skipIf(!gpu)('tensor kernels on the GPU', () => {
  // ---- elementwise --------------------------------------------------------------------------------
  const ewShapes = [[7], [13, 1], [3, 5, 7], [1], [1000003]];

  for (const storage of STORAGES) {
    for (const op of ['gelu', 'silu'] as const) {
      it(`${op} (${storage}) matches the reference on edge and large shapes`, () => {
        for (const s of ewShapes) expectClose(op, [inp(s, 3)], {}, storage);
      });
    }

    for (const op of ['gelu_backward', 'silu_backward', 'swiglu'] as const) {
      it(`${op} (${storage}) matches the reference on edge and large shapes`, () => {
        for (const s of ewShapes) expectClose(op, [inp(s), inp(s, 3)], {}, storage);
      });
    }

    it(`scale (${storage}) multiplies by alpha`, () => {
      for (const s of ewShapes) expectClose('scale', [inp(s)], { alpha: randn(1)[0]! * 3 }, storage);
    });

    it(`fill (${storage}) writes the value rounded to storage everywhere`, () => {
      // fill's output dtype is its attribute (the op's rule), so ask for the storage being tested.
      for (const shape of [[7, 13], [], [1000003]]) expectExact('fill', [], { shape, value: randn(1)[0]! * 100, dtype: storage }, storage);
    });
  }

  it('gelu, silu and their gradients follow the reference far out and on specials', () => {
    const specials = [-1e4, -100, -88, -20, -10.5, -10, -9.99, -3, -1e-3, 1e-3, 0.5, 3, 9.99, 10, 10.5, 20, 100, 1e4];
    const x = { shape: [specials.length + 64], data: Float64Array.from([...specials, ...data(64, 8)]) };
    const g = inp(x.shape);
    for (const storage of ['f32', 'bf16'] as const) {
      expectClose('gelu', [x], {}, storage);
      expectClose('silu', [x], {}, storage);
      expectClose('gelu_backward', [g, x], {}, storage);
      expectClose('silu_backward', [g, x], {}, storage);
      expectClose('swiglu', [x, g], {}, storage);
    }
    // Infinities and NaN come out as the reference computes them (gelu'(±inf) is NaN there).
    const inf = { shape: [3], data: Float64Array.of(Infinity, -Infinity, NaN) };
    const ones = { shape: [3], data: Float64Array.of(1, 1, 1) };
    expectExact('gelu_backward', [ones, inf], {}, 'f32');
    expectExact('silu_backward', [ones, inf], {}, 'f32');
    const { got } = run('gelu', [inf], {}, 'f32');
    expect(got[0]![0]).toBe(Infinity);
    expect(Number.isNaN(got[0]![1]!) && Number.isNaN(got[0]![2]!)).toBe(true);
  });

  it('handles offsets that break 16-byte alignment (the scalar path)', () => {
    // A tensor at a 4-byte offset: allocate extra and call the native entry point directly.
    const ops = nativeEntries().entries!;
    const backend = cudaBackend(0);
    const n = 1001;
    const x = data(n, 3);
    const xb = backend.alloc(4 * (n + 1));
    const ob = backend.alloc(4 * (n + 1));
    try {
      backend.write(xb, Float32Array.from(x), 4);
      backend.memset(ob, 0xff);
      ops.gelu(0, 0, n, { base: xb.ptr, offset: 4, bytes: 4 * n }, { base: ob.ptr, offset: 4, bytes: 4 * n }, null);
      backend.synchronize();
      const host = new Float32Array(n);
      backend.read(ob, host, 4);
      const want = reference('gelu', [{ shape: [n], data: x }])[0]!;
      expect(maxError(host, want)).toBeLessThanOrEqual(1e-5);
    } finally {
      backend.free(xb);
      backend.free(ob);
    }
  });

  it('fused amax: gelu, gelu_backward, add and cast reduce the largest finite |out| as stored, on the packed and scalar paths', () => {
    const ops = nativeEntries().entries!;
    const backend = cudaBackend(0);
    const bufs: CudaBuffer[] = [];
    const alloc = (bytes: number) => {
      const b = backend.alloc(bytes);
      bufs.push(b);
      return b;
    };
    try {
      for (const [dtype, code, bytes] of [['f32', 0, 4], ['bf16', 1, 2]] as const) {
        for (const offset of [0, 4]) {
          for (const n of [1, 4097, 300001]) {
            const x = data(n, 3);
            const g = data(n, 0.5);
            if (n > 10) {
              x[randInt(0, n - 1)] = 60 * (Math.random() < 0.5 ? -1 : 1);
              x[randInt(0, n - 1)] = Number.NaN;
              x[randInt(0, n - 1)] = Number.NEGATIVE_INFINITY;
            }
            const enc = (v: Float64Array) => encode(dtype, v);
            const [xb, gb, ob, ab] = [alloc(4 * n + 16), alloc(bytes * n + 16), alloc(bytes * n + 16), alloc(4)]; // xb also holds cast's f32 input
            backend.write(xb, enc(x), offset);
            backend.write(gb, enc(g), offset);
            const at = (b: CudaBuffer) => ({ base: b.ptr, offset, bytes: bytes * n });
            const amaxArg = { base: ab.ptr, offset: 0, bytes: 4 };
            const calls: [string, () => void][] = [
              ['gelu', () => ops.gelu(0, code, n, at(xb), at(ob), amaxArg)],
              ['gelu_backward', () => ops.geluBackward(0, code, n, at(gb), at(xb), at(ob), amaxArg)],
              ['add', () => ops.add(0, code, [n], [n], [n], at(xb), at(gb), at(ob), amaxArg)],
              ['cast', () => ops.cast(0, 0, code, n, at(xb), at(ob), amaxArg)],
            ];
            for (const [op, call] of calls) {
              if (op === 'cast') backend.write(xb, Float32Array.from(x), offset); // f32 in
              backend.memset(ob, 0xff);
              backend.write(ab, Float32Array.of(-1)); // the entry point zeroes it
              call();
              backend.synchronize();
              const host = new Uint8Array(bytes * n);
              backend.read(ob, host, offset);
              const out = decode(dtype, host);
              const got = new Float32Array(1);
              backend.read(ab, got);
              const want = storedAmax(out, dtype);
              expect(want, `${op} ${dtype} n ${n}`).toBeGreaterThan(0);
              expect(got[0], `${op} ${dtype} offset ${offset} n ${n}`).toBe(want);
            }
          }
        }
      }
      // The amax of an add is for same-shape operands; a cast's for float dtypes.
      const [a, b2, o, am] = [alloc(64), alloc(64), alloc(64), alloc(4)].map((x) => ({ base: x.ptr, offset: 0, bytes: x.bytes }));
      expect(errorOf(() => ops.add(0, 0, [2, 4], [2, 4], [1, 4], a!, b2!, o!, am!)).message).toMatch(/Expected operands of the output's shape for add with an amax/);
      expect(errorOf(() => ops.cast(0, 3, 0, 4, a!, o!, am!)).code).toBe('INVALID_DTYPE');
    } finally {
      for (const b of bufs) backend.free(b);
    }
  });

  // ---- broadcasting -------------------------------------------------------------------------------
  const pairs: [number[], number[]][] = [
    [[7], [7]],
    [[13, 7], [13, 7]],
    [[1000003], [1000003]],
    [[5, 7], [7]], // row broadcast
    [[7], [5, 7]], // row broadcast, swapped
    [[64, 256], [256]], // row broadcast, packed
    [[5, 1], [5, 7]],
    [[1], [3, 5]],
    [[], [4, 3]],
    [[2, 1, 3], [4, 1]],
    [[6, 1], [1, 8]],
    [[1, 1, 1], [1]],
    [[3, 1, 5, 1, 7], [1, 4, 1, 6, 1]],
    [[2, 1, 2, 1, 2, 1, 2, 1], [1, 2, 1, 2, 1, 2, 1, 2]], // rank 8
  ];

  for (const storage of STORAGES) {
    for (const op of ['add', 'mul'] as const) {
      it(`${op} (${storage}) broadcasts like the reference`, () => {
        for (const [a, b] of pairs) expectClose(op, [inp(a), inp(b)], {}, storage);
      });
    }
  }

  for (const storage of ['f32', 'bf16'] as const) {
    it(`bias_add (${storage}) adds the bias along the last dimension`, () => {
      for (const s of [[7], [5, 13], [2, 3, 64], [1000, 128], [1, 1]]) expectClose('bias_add', [inp(s), inp([s.at(-1)!])], {}, storage);
    });

    it(`broadcast_to (${storage}) repeats along broadcast dimensions`, () => {
      const cases: [number[], number[]][] = [[[3, 1], [2, 3, 5]], [[1], [7]], [[5], [4, 5]], [[64], [3, 64]], [[1, 8], [5, 8]], [[], [3, 3]], [[2, 1, 4], [2, 3, 4]], [[7, 1], [7, 13]], [[4], [4]]];
      for (const [from, to] of cases) expectExact('broadcast_to', [inp(from)], { shape: to }, storage);
    });

    it(`sum_to (${storage}) sums over the broadcast dimensions`, () => {
      const cases: [number[], number[]][] = [[[4, 5, 6], [5, 1]], [[4, 5, 6], [6]], [[4, 5, 6], [4, 1, 1]], [[4, 5, 6], [1]], [[4, 5, 6], []], [[4, 5, 6], [4, 5, 6]], [[2, 3000], [1]], [[3000, 5], [5]], [[200, 300], [300]], [[7, 1, 13], [1, 13]], [[512, 64], [64]],
        // split column mode (columns of >= 2048 rows, few blocks of 32 outputs): even and uneven slices, a bias gradient's shape
        [[2049, 33], [1, 33]], [[3, 1500, 70], [70]],
        // column vector mode (nOut a multiple of 8): a bias gradient's shapes, a tail of rows
        [[2, 2500, 96], [96]], [[4096, 2048], [2048]], [[8192, 40], [40]], [[2053, 6144], [6144]],
        // GPT-2's: 96 threads a block; 288 vectors in two blocks of 160 threads (the last 32 idle)
        [[16384, 768], [768]], [[4100, 2304], [2304]]];
      for (const [from, to] of cases) expectReduced('sum_to', inp(from), { shape: to }, storage);
    }, 180_000); // the float64 references of ~40M elements: bf16 took 91 s on the H200's host
  }

  // ---- data movement ------------------------------------------------------------------------------
  for (const storage of STORAGES) {
    it(`reshape (${storage}) copies every element`, () => {
      expectExact('reshape', [inp([6, 35])], { shape: [35, 6] }, storage);
      expectExact('reshape', [inp([])], { shape: [1] }, storage);
      expectExact('reshape', [inp([1000003])], { shape: [1000003, 1] }, storage);
    });

    it(`transpose (${storage}) permutes dimensions (tiled and gather paths)`, () => {
      const cases: [number[], number[]][] = [
        [[13, 7], [1, 0]],
        [[1, 7], [1, 0]],
        [[4, 33, 65], [0, 2, 1]],
        [[3, 5, 7, 2], [2, 0, 3, 1]],
        [[2, 64, 3, 16], [0, 2, 1, 3]],
        [[257, 1031], [1, 0]],
        [[2, 3, 2, 3, 2, 3, 2, 3], [7, 6, 5, 4, 3, 2, 1, 0]],
        [[5], [0]],
        [[], []],
      ];
      for (const p of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]) cases.push([[2, 3, 4], p]);
      for (let t = 0; t < 10; t++) {
        const rank = randInt(2, 6);
        const shape = Array.from({ length: rank }, () => [1, 2, 3, 5, 7, 13, 33][randInt(0, 6)]!);
        const perm = Array.from({ length: rank }, (_, i) => i).sort(() => Math.random() - 0.5);
        if (numel(shape) <= 200000) cases.push([shape, perm]);
      }
      for (const [shape, perm] of cases) expectExact('transpose', [inp(shape)], { perm }, storage);
    });

    it(`slice (${storage}) copies the range along an axis`, () => {
      expectExact('slice', [inp([5, 7, 3])], { axis: 1, start: 2, end: 6 }, storage);
      expectExact('slice', [inp([5, 7, 3])], { axis: 0, start: 4, end: 5 }, storage);
      expectExact('slice', [inp([5, 7, 3])], { axis: -1, start: 1, end: 3 }, storage);
      expectExact('slice', [inp([13])], { axis: 0, start: 0, end: 13 }, storage);
      expectExact('slice', [inp([4, 16, 8])], { axis: 1, start: 4, end: 12 }, storage);
      expectExact('slice', [inp([64, 96])], { axis: 1, start: 32, end: 64 }, storage);
    });

    it(`slice_backward (${storage}) writes g into zeros`, () => {
      expectExact('slice_backward', [inp([5, 4, 3])], { shape: [5, 7, 3], axis: 1, start: 2 }, storage);
      expectExact('slice_backward', [inp([1, 7, 3])], { shape: [5, 7, 3], axis: 0, start: 4 }, storage);
      expectExact('slice_backward', [inp([5, 7, 2])], { shape: [5, 7, 3], axis: -1, start: 1 }, storage);
      expectExact('slice_backward', [inp([13])], { shape: [13], axis: 0, start: 0 }, storage);
      expectExact('slice_backward', [inp([4, 8, 8])], { shape: [4, 16, 8], axis: 1, start: 8 }, storage);
    });

    it(`concat (${storage}) joins along an axis`, () => {
      expectExact('concat', [inp([2, 3]), inp([2, 5]), inp([2, 1])], { axis: 1 }, storage);
      expectExact('concat', [inp([3, 4]), inp([1, 4])], { axis: 0 }, storage);
      expectExact('concat', [inp([2, 3, 2]), inp([2, 3, 5])], { axis: -1 }, storage);
      expectExact('concat', [inp([7, 13])], { axis: 0 }, storage);
      expectExact('concat', [inp([4, 8]), inp([4, 16]), inp([4, 8])], { axis: 1 }, storage);
      expectExact('concat', [inp([3, 64, 5]), inp([3, 1, 5]), inp([3, 7, 5])], { axis: 1 }, storage);
    });
  }

  it('moves i32 tensors too (reshape, transpose, slice, concat)', () => {
    const x = (shape: number[]): CudaInput => ({ shape, dtype: 'i32', data: ints(numel(shape), -(2 ** 31), 2 ** 31 - 1) });
    expectExact('reshape', [x([6, 7])], { shape: [42] }, 'f32');
    expectExact('transpose', [x([5, 33, 7])], { perm: [2, 0, 1] }, 'f32');
    expectExact('transpose', [x([5, 3, 8])], { perm: [1, 0, 2] }, 'f32');
    expectExact('slice', [x([5, 7])], { axis: 1, start: 3, end: 7 }, 'f32');
    expectExact('concat', [x([2, 3]), x([2, 4])], { axis: 1 }, 'f32');
  });

  // ---- reductions ---------------------------------------------------------------------------------
  const reductions: [number[], Record<string, AttrValue>][] = [
    [[7], {}],
    [[13, 7], { axes: [1] }],
    [[13, 7], { axes: [0] }],
    [[13, 7], { axes: [], keepdims: true }],
    [[3, 4, 5], { axes: [0, 2] }],
    [[3, 4, 5], { axes: [1], keepdims: true }],
    [[3, 4, 5], { axes: [-1, 0] }],
    [[4, 1, 6], { axes: [1] }],
    [[], {}],
    [[2, 3000], { axes: [1] }], // block per output, few outputs
    [[300, 1500], { axes: [1] }], // block per output
    [[3000, 5], { axes: [0] }], // split columns: 3 slices of 1000 rows, then 32 partials each
    [[500, 5], { axes: [0] }], // columns, 32 partials each
    [[3, 1500, 70], { axes: [0, 1] }], // split columns over merged dimensions, uneven slices
    [[200, 300], { axes: [0] }],
    [[6, 40, 9], { axes: [1] }], // reduced dimension in the middle
    [[1000003], {}], // split: one output, 245 slices, two kernels
    [[3, 200001], { axes: [1] }], // split: a few outputs
    [[2, 65536, 1], { axes: [1, 2], keepdims: true }], // split, at the threshold
    // column vector mode (sums over the rows of a [rows, 8k]; max takes the split column mode):
    [[3001, 24], { axes: [0] }], // 47 slices of 64 rows, the last 57 (a tail under 8 rows)
    [[2, 1100, 136], { axes: [0, 1] }], // merged leading dimensions
    [[2050, 2056], { axes: [0] }], // two blocks of 256 threads across the columns, the second partly idle
    [[2048, 8], { axes: [0] }], // at the threshold
  ];

  for (const storage of STORAGES) {
    for (const op of ['sum', 'mean'] as const) {
      it(`${op} (${storage}) reduces within the FP32 accumulation budget`, () => {
        for (const [shape, attrs] of reductions) expectReduced(op, inp(shape), attrs, storage);
      });
    }

    it(`max (${storage}) picks the maximum exactly`, () => {
      for (const [shape, attrs] of reductions) expectExact('max', [inp(shape)], attrs, storage);
    });
  }

  for (const storage of ['f32', 'bf16'] as const) {
    it(`max_backward (${storage}) sends g to the first maximal element`, () => {
      for (const [shape, attrs] of reductions) {
        const out = getOp('max').infer([{ shape, dtype: 'f32' }], checkAttrs(getOp('max'), attrs))[0]!.shape;
        expectExact('max_backward', [inp([...out]), inp(shape)], attrs, storage);
      }
    });

    it(`max and max_backward (${storage}) break ties by position and let NaN win`, () => {
      for (const [shape, attrs] of reductions) {
        // Few distinct values (ties, signed zeros), and a NaN in some groups.
        const x = { shape, data: randn(numel(shape)).map((v) => Math.round(v * 1.5) / 2) };
        if (x.data.length > 5) x.data[randInt(0, x.data.length - 1)] = NaN;
        const out = getOp('max').infer([{ shape, dtype: 'f32' }], checkAttrs(getOp('max'), attrs))[0]!.shape;
        expectExact('max', [x], attrs, storage);
        expectExact('max_backward', [inp([...out]), x], attrs, storage);
      }
      expectExact('max', [{ shape: [4], data: Float64Array.of(-0, 0, -0, 0) }], {}, storage);
      expectExact('max', [{ shape: [4], data: Float64Array.of(0, -0, 0, -0) }], {}, storage);
    });
  }

  it('reduces empty groups to the reference values (0, NaN, -Infinity)', () => {
    const x = { shape: [3, 0], data: new Float64Array(0) };
    expectExact('sum', [x], { axes: [1] }, 'f32');
    expectExact('mean', [x], { axes: [1] }, 'f32');
    expectExact('max', [x], { axes: [1] }, 'bf16');
    expectExact('sum_to', [x], { shape: [3, 1] }, 'f32');
  });

  it('reductions are bitwise reproducible', () => {
    const cases: [number[], Record<string, AttrValue>][] = [[[1000003], {}], [[3, 200001], { axes: [1] }], [[3000, 5], { axes: [0] }], [[300, 1500], { axes: [1] }]];
    for (const [shape, attrs] of cases) {
      const x = inp(shape);
      const a = runCuda('sum', [x], attrs).outputs[0]!;
      const b = runCuda('sum', [x], attrs).outputs[0]!;
      expect(Array.from(b)).toEqual(Array.from(a));
    }
  });

  // ---- cast ---------------------------------------------------------------------------------------
  it('cast converts between f32, bf16, f16 and i32 exactly as the reference', () => {
    const floats = [NaN, Infinity, -Infinity, 0.5, -0.7, 1.5, 2.5, -2.5, 65504, 65520, 70000, 1e-8, -1e-30, -3e9, 3e9, 2147483520, -2147483648, 16777217, 0.1, 1 / 3, 123456.789, ...data(100, 1000)];
    const integers = [0, 1, -1, 16777217, 33554435, 2147483647, -2147483648, 65519, ...ints(100, -(2 ** 31), 2 ** 31 - 1), ...ints(100, -70000, 70000)];
    for (const from of ['f32', 'bf16', 'f16', 'i32'] as const) {
      for (const to of ['f32', 'bf16', 'f16', 'i32'] as const) {
        const values = from === 'i32' ? Int32Array.from(integers) : Float64Array.from(floats);
        expectExact('cast', [{ shape: [values.length], dtype: from, data: values }], { dtype: to }, 'f32');
      }
    }
  });

  // ---- what is refused ----------------------------------------------------------------------------
  it('refuses ranks above 8, mixed or unsupported dtypes, with reasons', () => {
    const r9 = [1, 2, 1, 2, 1, 2, 1, 2, 3];
    const f = (shape: number[], dtype: DTypeName = 'f32'): ValueType => ({ shape, dtype });
    expect(verdict(params('add', [f(r9), f([3])], [f(r9)]))).toMatch(/rank <= 8, not rank 9/);
    expect(verdict(params('broadcast_to', [f([3])], [f(r9)], { shape: r9 }))).toMatch(/rank <= 8/);
    expect(verdict(params('transpose', [f(r9)], [f(r9)], { perm: r9.map((_, i) => i) }))).toMatch(/rank <= 8/);
    expect(verdict(params('sum', [f(r9)], [f([])]))).toMatch(/rank <= 8/);
    expect(verdict(params('sum_to', [f(r9)], [f([3])], { shape: [3] }))).toMatch(/rank <= 8/);
    expect(verdict(params('gelu', [f([4], 'bf16')], [f([4])]))).toMatch(/one storage dtype/);
    expect(verdict(params('gelu', [f([4], 'f8e4m3')], [f([4], 'f8e4m3')]))).toMatch(/no CUDA kernel for f8e4m3/);
    expect(verdict(params('cast', [f([4], 'i64')], [f([4])], { dtype: 'f32' }))).toMatch(/no CUDA kernel for i64/);
    expect(verdict(params('reshape', [f([4], 'u8')], [f([4], 'u8')], { shape: [4] }))).toMatch(/no CUDA kernel for u8/);
    // Elementwise ops and slice/concat pass counts, not shapes: any rank is fine.
    expect(verdict(params('gelu', [f(r9)], [f(r9)]))).toBe('selected');
    expect(verdict(params('slice', [f(r9)], [f(r9)], { axis: 8, start: 0, end: 3 }))).toBe('selected');
  });

  it('native entry points reject inconsistent sizes instead of crashing', () => {
    // Argument counts and kinds are the ABI reader's (kernels-native's sweep test); these are the
    // checks each kernel makes of the sizes it is given.
    const ops = nativeEntries().entries!;
    const backend = cudaBackend(0);
    const bufs: CudaBuffer[] = [];
    const buf = (bytes: number) => {
      const b = backend.alloc(bytes);
      bufs.push(b);
      return { base: b.ptr, offset: 0, bytes };
    };
    try {
      const a = buf(64);
      const b = buf(64);
      const o = buf(64);
      // Shapes that do not broadcast.
      let e = errorOf(() => ops.add(0, 0, [3, 4], [2, 4], [3, 1], a, b, o, null));
      expect(e.code).toBe('SHAPE_MISMATCH');
      expect(e.message).toMatch(/Expected 3 or 1 for dimension 0 of a/);
      // A buffer too small for the element count.
      e = errorOf(() => ops.gelu(0, 0, 17, a, o, null));
      expect(e.code).toBe('SHAPE_MISMATCH');
      expect(e.message).toMatch(/Expected at most 64 bytes/);
      // i32 where a float is needed.
      expect(errorOf(() => ops.silu(0, 3, 4, a, o)).code).toBe('INVALID_DTYPE');
      // Not a permutation.
      e = errorOf(() => ops.transpose(0, 0, [2, 2], [0, 0], a, o));
      expect(e.message).toMatch(/Expected a permutation of 0\.\.1 for perm of transpose but received \[0, 0\]/);
      // A slice past the end.
      e = errorOf(() => ops.slice(0, 0, 1, 4, 1, 3, 2, a, o));
      expect(e.message).toMatch(/Expected start \+ length <= 4 for slice but received start 3, length 2/);
      // A kept shape that is not x's shape with 1s.
      e = errorOf(() => ops.sum(0, 0, [2, 3], [2, 2], a, o, null));
      expect(e.message).toMatch(/Expected 3 or 1 for dimension 1 of the kept shape/);
      // concat with a missing tensor argument.
      e = errorOf(() => ops.concat(0, 0, 1, 1, [1, 1], [a], b));
      expect(e.message).toMatch(/Expected an argument 11 \(out\) for concat but received 11 arguments/);
      // A rank above 8.
      e = errorOf(() => ops.sum(0, 0, new Array(9).fill(1), new Array(9).fill(1), a, o, null));
      expect(e.message).toMatch(/Expected an integer in \[0, 8\] for rank/);
      // Misaligned offsets and foreign pointers.
      expect(errorOf(() => ops.gelu(0, 0, 4, { ...a, offset: 2 }, o, null)).message).toMatch(/aligned to 4 bytes/);
      expect(errorOf(() => ops.gelu(0, 0, 4, { ...a, base: a.base + 4096 * 1024 * 1024 }, o, null)).message).toMatch(/live device allocation/);
    } finally {
      for (const b of bufs) backend.free(b);
    }
  });
});
