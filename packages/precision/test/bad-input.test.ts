// Issue 20: bad input to precision's public API gets a typed DeepwellError before anything is read
// or allocated; extreme amaxes and inputs never decode to NaN or to 0 that should not; a Quantized
// whose fields do not fit is refused by dequantize.
import { Tensor, bf16BitsToF32, cpuBackend, f32ToBf16Bits } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  AmaxHistory,
  ELEMENTS,
  FORMATS,
  FallbackController,
  PrecisionPolicy,
  RECIPES,
  blockSizeOf,
  checkFallbackOptions,
  checkQuantize,
  checkScaledMatmul,
  computeCapabilityOf,
  decodeE8m0,
  decodeElement,
  dequantize,
  dequantize2d,
  dequantizeMx,
  dequantizeNvfp4,
  dequantizeTensor,
  encodeE8m0,
  encodeElement,
  encodeElements,
  hasNativeRewrite,
  microBlock,
  mx8Sm90Limits,
  mxExponent,
  operandFormat,
  planNativeGemm,
  quantize,
  quantize2d,
  quantizeMx,
  quantizeNvfp4,
  quantizeOutputs,
  quantizeTensor,
  roundToBf16,
  scaleIndex,
  scaleShape,
  scaledGemmLimits,
  scaledMatmul,
  scalingOf,
  support,
  tileScales128x4,
  tiledScaleIndex128x4,
  untileScales128x4,
  type Format,
  type Quantized,
} from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const F32_MAX = 3.4028234663852886e38;
const seed = Math.floor(Math.random() * 2 ** 31);
let state = seed;
const rand = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => normal() * scale);

const ELEMENT_OF: Record<Format, keyof typeof ELEMENTS> = { 'mxfp8-e4m3': 'e4m3', 'mxfp8-e5m2': 'e5m2', mxfp4: 'e2m1', nvfp4: 'e2m1', 'fp8-e4m3': 'e4m3', 'fp8-e5m2': 'e5m2' };

/**
 * The largest error quantize → dequantize may make on x[i]: half the element's step at |x| / S (S
 * the block's decode scale), or what saturation clamps off, plus float32 rounding; an NVFP4 block
 * whose scale underflowed holds only values below 6 · g · 2^-10.
 */
function bound(q: Quantized, x: ArrayLike<number>, i: number): number {
  const f = ELEMENTS[ELEMENT_OF[q.format]];
  const b = Math.floor(i / q.blockSize);
  const a = Math.abs(x[i]!);
  let S: number;
  if (q.format.startsWith('mx')) S = decodeE8m0(q.scales[b]!);
  else if (q.format === 'nvfp4') {
    S = decodeElement(ELEMENTS.e4m3, q.scales[b]!) * q.globalScale!;
    if (S === 0) return 6 * q.globalScale! * 2 ** -10 * (1 + 2 ** -20) + 8 * 2 ** -149;
  } else S = q.globalScale!;
  const v = a / S;
  const minNormal = 2 ** (1 - f.bias);
  const half = v >= minNormal ? 2 ** (Math.floor(Math.log2(v)) - f.manBits - 1) : 2 ** (1 - f.bias - f.manBits - 1);
  const err = v > f.max ? a - f.max * S : half * S * (1 + 2 ** -20);
  return err + a * 2 ** -22 + 8 * 2 ** -149;
}

/** '' when dequantize(q) is x within bound() everywhere (finite x: finite result), else what is wrong. */
function roundTrip(x: ArrayLike<number>, q: Quantized): string {
  const d = dequantize(q);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) continue;
    const blockHasSpecial = (q.format.startsWith('mx') || q.format === 'nvfp4') && Array.from({ length: q.blockSize }, (_, k) => x[Math.floor(i / q.blockSize) * q.blockSize + k]!).some((v) => !Number.isFinite(v));
    if (blockHasSpecial) {
      if (!Number.isNaN(d[i]!)) return `${q.format}: [${i}] in a block with NaN/Inf decoded to ${d[i]}`;
      continue;
    }
    // float32 output: a value that rounds to 2^128 at the element's precision overflows, as any
    // rounding to float32 does (quantize.ts's comment); nothing else may come back non-finite.
    const top = 2 ** 128 * (1 - 2 ** -(ELEMENTS[ELEMENT_OF[q.format]].manBits + 2));
    if (d[i] === Math.sign(x[i]!) * Infinity && Math.abs(x[i]!) >= top) continue;
    if (!Number.isFinite(d[i]!)) return `${q.format}: [${i}] = ${x[i]} decoded to ${d[i]}`;
    if (Math.abs(d[i]! - x[i]!) > bound(q, x, i)) return `${q.format}: [${i}] = ${x[i]} decoded to ${d[i]} (bound ${bound(q, x, i)})`;
  }
  return '';
}

describe(`precision refuses bad input (seed ${seed})`, () => {
  it('tensorwise FP8 and NVFP4 refuse an amax beyond float32 (it decoded to NaN)', () => {
    const x = randn(32);
    for (const format of ['fp8-e4m3', 'fp8-e5m2', 'nvfp4'] as const) {
      for (const amax of [1e300, 4e38, Infinity, NaN, -1]) expect(errorOf(() => quantize(x, { format, amax })).code, `${format} ${amax}`).toBe('INVALID_ARGUMENT');
      const ok = quantize(x, { format, amax: F32_MAX });
      expect(Array.from(dequantize(ok)).every(Number.isFinite)).toBe(true);
    }
    expect(errorOf(() => new AmaxHistory(4).push(1e300)).code).toBe('INVALID_ARGUMENT');
  });

  it('refuses Float64Array values beyond float32, naming the index (1e300 decoded to NaN)', () => {
    for (const format of FORMATS) {
      const x = Float64Array.from(randn(32));
      const at = Math.floor(rand() * 32);
      x[at] = rand() < 0.5 ? 1e300 : -4e38;
      const e = errorOf(() => quantize(x, { format }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(`[${at}]`);
    }
    expect(errorOf(() => quantize([1, 2, 3, 1e39], { format: 'fp8-e4m3' })).message).toContain('[3]');
    expect(errorOf(() => quantize2d(Float64Array.of(...randn(127), 1e300), 1, 128, { format: 'fp8-block1x128' })).message).toContain('[127]');
  });

  it('a tiny amax keeps a finite non-zero scale and decodes back within the format bound (NVFP4 made g = 0)', () => {
    for (const scale of [1e-40, 1e-43, 3e-45, 1e-36, 1e-30]) {
      const x = Float32Array.from(randn(64, scale), (v) => Math.fround(v));
      if (!x.some((v) => v !== 0)) continue;
      for (const format of FORMATS) {
        const q = quantize(x, { format });
        if (q.globalScale !== null) expect(q.globalScale > 0 && Number.isFinite(q.globalScale), `${format} at ${scale}: scale ${q.globalScale}`).toBe(true);
        expect(roundTrip(x, q), `${format} at ${scale}`).toBe('');
      }
      const nv = dequantize(quantize(x, { format: 'nvfp4' }));
      if (scale >= 1e-43) expect(nv.some((v) => v !== 0), `nvfp4 at ${scale} decoded to all zeros`).toBe(true);
    }
    const d = quantize(randn(32, 1e-40), { format: 'nvfp4', amax: 1e-300 });
    expect(d.globalScale).toBeGreaterThan(0);
  });

  it('random round trips stay within each format bound, extremes included', () => {
    for (let t = 0; t < 30; t++) {
      const n = 32 * (1 + Math.floor(rand() * 4));
      const x = randn(n, 2 ** Math.floor(rand() * 200 - 120));
      if (t % 5 === 0) x[Math.floor(rand() * n)] = (rand() < 0.5 ? -1 : 1) * 3e38;
      for (const format of FORMATS) {
        const q = quantize(x, { format, ...(format.startsWith('mx') && rand() < 0.5 ? { scaleMode: 'rceil' as const } : {}) });
        expect(roundTrip(x, q), `seed ${seed}, case ${t}`).toBe('');
      }
    }
  });

  it('dequantize checks every field of the Quantized before reading it', () => {
    for (const format of FORMATS) {
      const q = quantize(randn(64), { format });
      const bad: [string, Partial<Quantized> | Record<string, unknown>][] = [
        ['length', { length: 2 ** 40 }],
        ['length', { length: 128 }],
        ['length', { length: -32 }],
        ['blockSize', { blockSize: 0 }],
        ['blockSize', { blockSize: 7 }],
        ['data', { data: q.data.subarray(1) }],
        ['data', { data: Array.from(q.data) as never }],
        ['scales', { scales: new Uint8Array(q.scales.length + 1) }],
        ['globalScale', { globalScale: format.startsWith('mx') ? 1 : NaN }],
        ['format', { format: 'fp16' as never }],
      ];
      if (!format.startsWith('mx')) bad.push(['scaleMode', { scaleMode: 'floor' }]);
      if (format === 'nvfp4') bad.push(['scales', { scales: Uint8Array.from(q.scales, (c, i) => (i === 1 ? c | 0x80 : c)) }]);
      if (format.startsWith('fp8')) bad.push(['globalScale', { globalScale: 0 }], ['globalScale', { globalScale: null }]);
      for (const [what, change] of bad) {
        const e = errorOf(() => dequantize({ ...q, ...change } as Quantized));
        expect(['INVALID_ARGUMENT', 'SHAPE_MISMATCH'], `${format} ${what}`).toContain(e.code);
      }
      expect(errorOf(() => dequantize(null as never)).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('the codec building blocks refuse junk with typed errors (no TypeError, RangeError or stack overflow)', () => {
    const x = randn(32);
    const calls: (() => unknown)[] = [
      () => encodeElement(null as never, 1),
      () => encodeElement(ELEMENTS.e4m3, '1' as never),
      () => encodeElement(ELEMENTS.e4m3, 1, { saturat: true } as never),
      () => encodeElement({ ...ELEMENTS.e4m3, max: 1 }, 1),
      () => decodeElement(null as never, 1),
      () => decodeElement(ELEMENTS.e2m1, 16),
      () => decodeElement(ELEMENTS.e4m3, 1.5),
      () => encodeElements(ELEMENTS.e4m3, null as never),
      () => encodeE8m0('3' as never),
      () => decodeE8m0(256),
      () => decodeE8m0('x' as never),
      () => mxExponent(null as never, 1, 'floor'),
      () => mxExponent(ELEMENTS.e4m3, 0, 'rceil'),
      () => mxExponent(ELEMENTS.e4m3, NaN, 'floor'),
      () => mxExponent(ELEMENTS.e4m3, 1, 'up' as never),
      () => quantizeMx(null as never, ELEMENTS.e4m3, 'floor'),
      () => quantizeMx(x, ELEMENTS.e4m3, 'floor', 0),
      () => quantizeMx(x, ELEMENTS.e4m3, 'floor', 5),
      () => quantizeMx(x, ELEMENTS.e4m3, 'xx' as never),
      () => dequantizeMx(null as never, ELEMENTS.e4m3, 32),
      () => dequantizeMx({ data: new Uint8Array(32), scales: new Uint8Array(1) }, ELEMENTS.e4m3, 2 ** 40),
      () => quantizeNvfp4(null as never),
      () => quantizeNvfp4(randn(15)),
      () => quantizeNvfp4(x, 1e300),
      () => dequantizeNvfp4(null as never, 16),
      () => dequantizeNvfp4({ data: new Uint8Array(8), scales: new Uint8Array(1), globalScale: -1 }, 16),
      () => blockSizeOf('zz' as never),
      () => quantize(x, null as never),
      () => quantize(x, { format: 'fp8-e4m3', amx: 3 } as never),
      () => quantize(x, { format: 'fp16' as never }),
      () => quantize(x, { format: 'mxfp8-e4m3', scaleMode: null as never }),
      () => quantize2d(null as never, 1, 32, { format: 'fp8-e4m3' }),
      () => quantize2d(x, 1, 32, null as never),
      () => quantize2d(x, 1, 32, { format: 'fp8-block1x128', amax: 1 } as never),
      () => dequantize2d(null as never),
      () => dequantize2d({ format: 'fp8-block1x128', direction: 'rowwise', rows: 1e5, cols: 1e5, data: new Uint8Array(1), scales: new Float32Array(1), globalScale: null }),
      () => tileScales128x4(null as never, 1, 1),
      () => untileScales128x4(null as never, 1, 1),
      () => untileScales128x4(new Uint8Array(512), 1e9, 0.5),
      () => tiledScaleIndex128x4('a' as never, null as never, 0),
      () => new AmaxHistory(1e300),
      () => new AmaxHistory(4, null as never),
      () => new AmaxHistory(4).quantize(null as never),
      () => new AmaxHistory(4).dequantize(null as never),
      () => new AmaxHistory(4).dequantize({ data: new Uint8Array(4), scale: NaN }),
    ];
    calls.forEach((f, i) => expect(['INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH'], `call ${i}`).toContain(errorOf(f).code));
  });

  it('the op helpers, kernel limits and policy functions refuse junk and unknown names', () => {
    const calls: (() => unknown)[] = [
      () => scaleShape(null as never, null as never, 1, 1),
      () => scaleShape('tensor', 'plain', 0, 1),
      () => scaleIndex('mx32', 'gemm', 1.5, 32),
      () => microBlock('tensor' as never),
      () => roundToBf16('x' as never),
      () => checkScaledMatmul(null as never, null as never, null as never),
      () => checkScaledMatmul('scaled_matmul', [null as never], {}),
      () => checkQuantize(null as never, null as never, null as never),
      () => quantizeOutputs(null as never, null as never),
      () => scalingOf('fp16' as never),
      () => scaledGemmLimits(null as never),
      () => mx8Sm90Limits({} as never, null),
      () => hasNativeRewrite('fp16'),
      () => planNativeGemm(null as never, null as never, null as never, null as never, null as never, null as never, null),
      () => operandFormat(null as never, 0, null as never, null as never, null as never, null as never),
      () => computeCapabilityOf(5 as never),
      () => support('fp16' as never, '9.0'),
      () => support('bf16', 9 as never),
      () => new PrecisionPolicy({ recipe: 'fp16' as never }),
      () => new PrecisionPolicy({ recipe: 'bf16', keepFirstlast: false } as never),
      () => new PrecisionPolicy({ recipe: 'bf16', precision: 'bf16' } as never),
      () => new PrecisionPolicy({ recipe: 'bf16', minWeightElements: 1e300 }),
      () => new PrecisionPolicy({ recipe: 'bf16', rules: [{ match: 'a', recipe: 'bf16', recpe: 'x' } as never] }),
      () => new PrecisionPolicy({ recipe: 'bf16' }).plan(null as never),
      () => new PrecisionPolicy({ recipe: 'bf16' }).run(null as never),
      () => new PrecisionPolicy({ recipe: 'bf16' }).clone(5 as never),
      () => new PrecisionPolicy({ recipe: 'bf16' }).addRule({ match: 'a', recipe: 'bf16' }, null as never),
      () => PrecisionPolicy.table(null as never),
      () => PrecisionPolicy.table([5 as never]),
      () => PrecisionPolicy.numericsTable([null as never]),
      () => new FallbackController(new PrecisionPolicy({ recipe: 'bf16' })).observe('x' as never, 1),
      () => new FallbackController(new PrecisionPolicy({ recipe: 'bf16' })).observe(1, 'y' as never),
      () => new FallbackController(new PrecisionPolicy({ recipe: 'bf16' })).observe(1, 1, null as never),
      () => new FallbackController(new PrecisionPolicy({ recipe: 'bf16' })).replay([{ step: 1, layer: 'a', from: 'fp16' as never, to: 'bf16', reason: '' }]),
      () => new FallbackController(new PrecisionPolicy({ recipe: 'bf16' })).rewind('x' as never),
      () => checkFallbackOptions({ toString: 3 }),
    ];
    calls.forEach((f, i) => expect(['INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH'], `call ${i}`).toContain(errorOf(f).code));
    expect(errorOf(() => new PrecisionPolicy({ recipe: 'fp8' as never })).message).toMatch(/did you mean 'fp8-tensorwise' or 'fp8-blockwise'/);
    expect(Object.keys(RECIPES)).not.toContain('fp16');
  });

  it('quantizeTensor and dequantizeTensor check options, out tensors and parts before writing anything', () => {
    const v = Float32Array.from(randn(64 * 32), (x) => bf16BitsToF32(f32ToBf16Bits(x)));
    const x = Tensor.from(v, [64, 32]);
    expect(errorOf(() => quantizeTensor(x, null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-e4m3', directon: 'both' } as never)).message).toMatch(/did you mean direction/);
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-e4m3', amax: 1e300 })).code).toBe('INVALID_ARGUMENT');
    // A good rowwise destination and a bad columnwise one: the rowwise one stays as it was.
    const rowCodes = Tensor.from(Uint8Array.from({ length: 64 * 32 }, (_, i) => i % 251), [64, 32], 'f8e4m3');
    const before = Array.from(rowCodes.toHost() as Uint8Array);
    const wrong = Tensor.empty([64, 32], 'f8e4m3');
    const e = errorOf(() => quantizeTensor(x, { format: 'fp8-e4m3', direction: 'both', out: { rowwise: { data: rowCodes, scales: null }, columnwise: { data: wrong, scales: null } } }));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(Array.from(rowCodes.toHost() as Uint8Array)).toEqual(before);
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-e4m3', out: { columnwise: { data: wrong, scales: null } } })).code).toBe('INVALID_ARGUMENT');
    // dequantizeTensor: options and a part whose tensors do not fit its header.
    const q = quantizeTensor(x, { format: 'mxfp8-e4m3', direction: 'rowwise' });
    const wrong5 = Tensor.empty([64, 32], 'f8e5m2');
    expect(errorOf(() => dequantizeTensor(q, null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => dequantizeTensor(q, { dtyp: 'f32' } as never)).code).toBe('INVALID_ARGUMENT');
    for (const change of [{ rows: 128 }, { cols: 0 }, { rows: 2 ** 40 }, { rowwise: { data: q.rowwise!.data, scales: null } }, { rowwise: { data: wrong5, scales: q.rowwise!.scales } }]) {
      expect(['INVALID_ARGUMENT', 'SHAPE_MISMATCH']).toContain(errorOf(() => dequantizeTensor({ ...q, ...change } as never)).code);
    }
    expect(Array.from(dequantizeTensor(q).toHost() as Float32Array).every(Number.isFinite)).toBe(true);
    for (const t of [x, rowCodes, wrong, wrong5]) t.dispose();
    q.dispose();
  });

  it('scaledMatmul refuses a CPU product the reference would take hours over, before allocating', () => {
    const [M, N, K] = [2 ** 17, 2 ** 17, 16];
    const part = (rows: number) => ({ data: Tensor.empty([rows, K], 'f8e4m3'), scales: null });
    const op = (rows: number) => ({ format: 'fp8-e4m3', scaleMode: null, scaleLayout: 'plain', rows, cols: K, rowwise: part(rows), columnwise: null, globalScale: Tensor.from([1], [1]), amax: null, dispose() {} }) as never;
    const [a, b] = [op(M), op(N)];
    const before = cpuBackend.memoryStats().inUse;
    expect(errorOf(() => scaledMatmul(a, b, { outDtype: 'f32' })).code).toBe('INVALID_ARGUMENT');
    expect(cpuBackend.memoryStats().inUse).toBe(before);
  });
});
