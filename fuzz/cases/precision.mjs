// @deepwell/precision: every public export with valid random input, checked (quantize → dequantize
// within each format's error bound, extremes included; 2-D layouts and tensors against the flat
// codecs; the CPU scaled GEMM against a float64 product), and with bad input of every family:
// amaxes and Float64Array values beyond float32 (they decoded to NaN), tiny amaxes (NVFP4's scale
// underflowed to 0), Quantized objects whose fields do not fit, junk options and unknown keys,
// unknown format and recipe names, huge sizes, junk into every helper of the policy and fallback.
import { Tensor, bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, scope } from '@deepwell/core';
import { autocast, capture, trainingStep, Graph } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import * as P from '@deepwell/precision';
import { BAD_INTEGERS, NON_FINITE, WRONG_TYPES, damage, makeRng, show } from '../lib.mjs';

const { ELEMENTS, FORMATS, FAKE_QUANT_FORMATS, RECIPES, SCALINGS } = P;
const F32_MAX = 3.4028234663852886e38;
const ELEMENT_OF = { 'mxfp8-e4m3': 'e4m3', 'mxfp8-e5m2': 'e5m2', mxfp4: 'e2m1', nvfp4: 'e2m1', 'fp8-e4m3': 'e4m3', 'fp8-e5m2': 'e5m2', 'fp8-block1x128': 'e4m3', 'fp8-block128x128': 'e4m3' };
const isMx = (f) => f.startsWith('mx');
const hasTensorScale = (f) => f === 'nvfp4' || f === 'fp8-e4m3' || f === 'fp8-e5m2';
const blockOf = (f) => ({ 'mxfp8-e4m3': 32, 'mxfp8-e5m2': 32, mxfp4: 32, nvfp4: 16, 'fp8-block1x128': 128, 'fp8-block128x128': 128 })[f] ?? null;

/** The most one element may be off after a round trip at decode scale S (half a step, or what saturation clamps), plus float32 rounding. */
function elemBound(f, S, a) {
  const v = a / S;
  const half = v >= 2 ** (1 - f.bias) ? 2 ** (Math.floor(Math.log2(v)) - f.manBits - 1) : 2 ** (-f.bias - f.manBits);
  return (v > f.max ? a - f.max * S : half * S * (1 + 2 ** -20)) + a * 2 ** -22 + 8 * 2 ** -149;
}

/** Why decoded values `d` are not x within the bound, given each element's decode scale; '' when they are. */
function compare(x, d, f, scaleAt, special = () => false, underflow = () => null) {
  if (d.length !== x.length) return `decoded ${d.length} values for ${x.length}`;
  const top = 2 ** 128 * (1 - 2 ** -(f.manBits + 2)); // a value that rounds to 2^128 overflows float32 (quantize.ts)
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    if (special(i)) {
      if (!Number.isNaN(d[i])) return `[${i}] in a block holding NaN/Inf decoded to ${d[i]}`;
      continue;
    }
    if (Number.isNaN(xi)) {
      if (!Number.isNaN(d[i])) return `NaN at [${i}] decoded to ${d[i]}`;
      continue;
    }
    const S = scaleAt(i);
    if (!Number.isFinite(xi)) {
      if (d[i] !== Math.fround(Math.sign(xi) * f.max * S)) return `${xi} at [${i}] decoded to ${d[i]}, not ±max · scale`;
      continue;
    }
    if (d[i] === Math.sign(xi) * Infinity && Math.abs(xi) >= top) continue;
    if (!Number.isFinite(d[i])) return `[${i}] = ${xi} decoded to ${d[i]}`;
    const cap = underflow(i) ?? elemBound(f, S, Math.abs(xi));
    if (Math.abs(d[i] - xi) > cap) return `[${i}] = ${xi} decoded to ${d[i]} (bound ${cap}, scale ${S})`;
  }
  return '';
}

/** quantize → dequantize of x checked against q's own scales. */
function roundTrip(x, q, d = P.dequantize(q)) {
  const f = ELEMENTS[ELEMENT_OF[q.format]];
  const bs = q.blockSize;
  if (q.length !== x.length || q.data.length !== (f.bits === 4 ? x.length / 2 : x.length)) return `length ${q.length}, ${q.data.length} code bytes`;
  const blockSpecial = (i) => (isMx(q.format) || q.format === 'nvfp4') && Array.prototype.some.call(Array.from({ length: bs }, (_, k) => x[Math.floor(i / bs) * bs + k]), (v) => !Number.isFinite(v));
  const g = q.globalScale;
  if (g !== null && !(g >= 0 && Number.isFinite(g))) return `globalScale ${g}`;
  if (g === 0 && Array.prototype.some.call(x, (v) => Number.isFinite(v) && v !== 0)) return 'a tensor with non-zero values got globalScale 0';
  const scaleAt = (i) => (isMx(q.format) ? P.decodeE8m0(q.scales[Math.floor(i / bs)]) : q.format === 'nvfp4' ? P.decodeElement(ELEMENTS.e4m3, q.scales[Math.floor(i / bs)]) * g : g);
  const underflow = (i) => (q.format === 'nvfp4' && scaleAt(i) === 0 ? 6 * g * 2 ** -10 * (1 + 2 ** -20) + 8 * 2 ** -149 : null);
  return compare(x, d, f, scaleAt, blockSpecial, underflow);
}

/** Random values: normals at a random binary scale, with planted zeros, subnormals, extremes and (when asked) NaN / ±Inf. */
function values(r, n, { specials = true, as = 'f32' } = {}) {
  const e = r.int(-140, 120);
  const x = Array.from({ length: n }, () => r.normals(1)[0] * 2 ** e);
  const plant = r.int(0, Math.max(1, n >> 3));
  for (let k = 0; k < plant; k++) {
    const at = r.int(0, n - 1);
    x[at] = r.pick(specials ? [0, -0, 1e-45, -3e-42, 2 ** -130, F32_MAX, -F32_MAX, 3e38, NaN, Infinity, -Infinity, 1, 448, 57344] : [0, -0, 1e-45, 2 ** -130, 3e38, -1, 448]);
  }
  if (as === 'f64') return Float64Array.from(x, (v) => (Math.abs(v) > F32_MAX && Number.isFinite(v) ? Math.sign(v) * F32_MAX : v));
  const f = Float32Array.from(x);
  return as === 'array' ? Array.from(f) : f;
}

let cachedStep = null;
/** The tiny GPT's training step (built once per worker; cases clone it before a rewrite). */
function tinyStep() {
  if (!cachedStep) {
    const fwd = capture(new GPT('tiny'), { tokens: { shape: [2, 8], dtype: 'i32' }, targets: { shape: [2, 8], dtype: 'i32' } });
    delete fwd.outputs.logits;
    cachedStep = trainingStep(autocast(fwd));
  }
  return Graph.fromJSON(cachedStep.toJSON());
}

/** A DeepwellError thrown by fn whose message must contain `needle` (else a plain Error: untyped). */
function errorNaming(fn, needle) {
  try {
    fn();
  } catch (e) {
    if (e?.code && !String(e.message).includes(needle)) throw new Error(`the error does not name ${needle}: ${e.message}`);
    throw e;
  }
}

function quantizeCases(rng, out) {
  for (let i = 0; i < 180; i++) {
    const format = FORMATS[i % FORMATS.length];
    const block = blockOf(format) ?? rng.pick([1, 3, 8, 32]);
    const n = block * rng.int(1, 8);
    const scaleMode = isMx(format) ? rng.pick([undefined, 'floor', 'rceil']) : undefined;
    const delayed = hasTensorScale(format) && rng.bool(0.25) ? rng.float(0.25, 2) : null;
    const as = rng.pick(['f32', 'f64', 'array']);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.quantize: ${format}${scaleMode ? ` ${scaleMode}` : ''} of ${n} ${as}${delayed ? `, amax × ${delayed.toFixed(2)}` : ''} round trip #${i}`,
      entry: ['precision.quantize', 'precision.dequantize', 'precision.blockSizeOf'],
      expect: 'ok',
      run: () => {
        const x = values(makeRng(seed), n, { as });
        let amax;
        if (delayed) amax = Math.min(F32_MAX, Array.prototype.reduce.call(x, (a, v) => (Number.isFinite(v) ? Math.max(a, Math.abs(v)) : a), 0) * delayed);
        const q = P.quantize(x, { format, ...(scaleMode ? { scaleMode } : {}), ...(amax !== undefined ? { amax } : {}) });
        return { x, q, d: P.dequantize(q), block: P.blockSizeOf(format) };
      },
      check: ({ x, q, d, block: b }) => (b !== blockOf(format) ? `blockSizeOf ${b}` : q.format !== format || q.scales.length !== (blockOf(format) ? n / blockOf(format) : 0) ? `${q.format}: ${q.scales.length} scales` : roundTrip(x, q, d) || undefined),
    });
  }
  // Amaxes that are not amaxes (1e300 made a NaN scale), and amax where the format takes none.
  for (const format of ['fp8-e4m3', 'fp8-e5m2', 'nvfp4']) {
    for (const amax of [1e300, 4e38, -1, -1e-30, ...NON_FINITE, '1', null, 1n, [1]]) out.push({ name: `precision.quantize: ${format} with amax ${show(amax)}`, entry: 'precision.quantize', expect: 'error', run: () => P.quantize(new Float32Array(32).fill(0.5), { format, amax }) });
  }
  for (const format of ['mxfp8-e4m3', 'mxfp4']) out.push({ name: `precision.quantize: ${format} with an amax`, entry: 'precision.quantize', expect: 'error', run: () => P.quantize(new Float32Array(32), { format, amax: 1 }) });
  // Float64Array values beyond float32: refused, naming the index.
  for (let i = 0; i < 36; i++) {
    const format = FORMATS[i % FORMATS.length];
    const n = (blockOf(format) ?? 16) * rng.int(1, 3);
    const at = rng.int(0, n - 1);
    const bad = rng.pick([1e300, -1e300, 4e38, -3.5e38, Number.MAX_VALUE, 1e39]);
    const plain = rng.bool(0.3);
    out.push({ name: `precision.quantize: ${format}, ${show(bad)} at [${at}] of a ${plain ? 'number array' : 'Float64Array'}`, entry: 'precision.quantize', expect: 'error', run: () => { const x = new Float64Array(n).fill(0.25); x[at] = bad; return errorNaming(() => P.quantize(plain ? Array.from(x) : x, { format }), `[${at}]`); } });
  }
  // Tiny amaxes: a finite, non-zero scale, and values that decode back within the bound.
  for (let i = 0; i < 36; i++) {
    const format = FORMATS[i % FORMATS.length];
    const n = (blockOf(format) ?? 32) * rng.int(1, 2);
    const scale = rng.pick([1e-45, 3e-45, 1e-43, 1e-42, 1e-40, 1e-38, 1e-36, 1e-32]);
    const amaxOpt = hasTensorScale(format) && rng.bool(0.3) ? rng.pick([1e-300, 1e-45, 1e-40, 0]) : undefined;
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.quantize: ${format} of values near ${scale}${amaxOpt !== undefined ? ` with amax ${amaxOpt}` : ''} #${i}`,
      entry: ['precision.quantize', 'precision.dequantize'],
      expect: 'ok',
      run: () => {
        const r = makeRng(seed);
        const x = Float32Array.from({ length: n }, () => r.normals(1)[0] * scale);
        const q = P.quantize(x, { format, ...(amaxOpt !== undefined ? { amax: amaxOpt } : {}) });
        return { x, q, nonzero: x.some((v) => v !== 0) };
      },
      check: ({ x, q, nonzero }) => (q.globalScale !== null && nonzero && amaxOpt !== 0 && !(q.globalScale > 0 && Number.isFinite(q.globalScale)) ? `scale ${q.globalScale}` : amaxOpt === undefined ? roundTrip(x, q) || undefined : Array.from(P.dequantize(q)).every(Number.isFinite) ? undefined : 'non-finite values decoded'),
    });
  }
  // Junk options, formats, inputs and lengths.
  const x32 = () => new Float32Array(32).fill(0.5);
  const badCalls = [
    ...[null, undefined, 'fp8-e4m3', 5, [], () => 1].map((o) => [`options ${show(o)}`, () => P.quantize(x32(), o)]),
    ...['fp16', 'mxfp6', 'FP8-E4M3', 'nvfp4 ', 'fp8', 'fp8-block1x128', 'e4m3', '', ...WRONG_TYPES.slice(0, 6)].map((f) => [`format ${show(f)}`, () => P.quantize(x32(), { format: f })]),
    ...[{ format: 'fp8-e4m3', amx: 1 }, { format: 'mxfp4', scalemode: 'rceil' }, { format: 'nvfp4', block: 16 }, { formats: 'nvfp4' }].map((o) => [`options ${show(o)}`, () => P.quantize(x32(), o)]),
    ...['ceil', 'up', 'FLOOR', null, 1, true].map((m) => [`scaleMode ${show(m)}`, () => P.quantize(x32(), { format: 'mxfp8-e4m3', scaleMode: m })]),
    ...['fp8-e4m3', 'nvfp4'].map((f) => [`scaleMode for ${f}`, () => P.quantize(x32(), { format: f, scaleMode: 'floor' })]),
    ...[[33, 'mxfp8-e4m3'], [24, 'nvfp4'], [31, 'mxfp4'], [16, 'mxfp8-e5m2'], [1, 'nvfp4']].map(([n, f]) => [`${n} values for ${f}`, () => P.quantize(new Float32Array(n), { format: f })]),
    ...[new Int32Array(32), new Uint8Array(32), ['1', 2], null, 'abc', { length: 32 }, [1n], new Float32Array(4).buffer].map((v) => [`values ${show(v)}`, () => P.quantize(v, { format: 'fp8-e4m3' })]),
  ];
  for (const [what, f] of badCalls) out.push({ name: `precision.quantize: ${what}`, entry: 'precision.quantize', expect: 'error', run: f });
  for (const f of ['fp16', 'fp8-block1x128', null, 5, '']) out.push({ name: `precision.blockSizeOf: ${show(f)}`, entry: 'precision.blockSizeOf', expect: 'error', run: () => P.blockSizeOf(f) });
}

function dequantizeCases(rng, out) {
  const mutations = [
    ['length × 2', (q) => ({ ...q, length: q.length * 2 }), 'error'], ['length 2^40', (q) => ({ ...q, length: 2 ** 40 }), 'error'], ['length -1', (q) => ({ ...q, length: -1 }), 'error'],
    ['length NaN', (q) => ({ ...q, length: NaN }), 'error'], ['length "64"', (q) => ({ ...q, length: String(q.length) }), 'error'], ['blockSize 0', (q) => ({ ...q, blockSize: 0 }), 'error'],
    ['blockSize + 1', (q) => ({ ...q, blockSize: q.blockSize + 1 }), 'error'], ['data one byte short', (q) => ({ ...q, data: q.data.subarray(1) }), 'error'],
    ['data as an array', (q) => ({ ...q, data: Array.from(q.data) }), 'error'], ['data as an Int8Array', (q) => ({ ...q, data: new Int8Array(q.data.length) }), 'error'], ['data null', (q) => ({ ...q, data: null }), 'error'],
    ['scales one longer', (q) => ({ ...q, scales: new Uint8Array(q.scales.length + 1) }), 'error'], ['scales as a Float32Array', (q) => ({ ...q, scales: new Float32Array(q.scales.length) }), 'error'],
    ['globalScale NaN', (q) => ({ ...q, globalScale: NaN }), 'error'], ['globalScale -1', (q) => ({ ...q, globalScale: -1 }), 'error'], ['globalScale 1e300', (q) => ({ ...q, globalScale: 1e300 }), 'error'],
    ['globalScale "1"', (q) => ({ ...q, globalScale: '1' }), 'error'], ['globalScale 0.1 (not a float32)', (q) => ({ ...q, globalScale: 0.1 }), 'error'], ['format fp16', (q) => ({ ...q, format: 'fp16' }), 'error'],
    ['format of another family', (q) => ({ ...q, format: isMx(q.format) ? 'fp8-e4m3' : 'mxfp8-e4m3' }), 'error'], ['scaleMode junk', (q) => ({ ...q, scaleMode: 'ceil' }), 'error'], ['no object', () => null, 'error'],
    ['a string', () => 'quantized', 'error'],
  ];
  for (let i = 0; i < 100; i++) {
    const format = FORMATS[i % FORMATS.length];
    const n = (blockOf(format) ?? 16) * rng.int(1, 3);
    const seed = rng.int(0, 2 ** 31);
    const k = rng.int(0, mutations.length + 3);
    if (k >= mutations.length) {
      // Damaged bytes: the same lengths decode (to whatever the codes say), other lengths are refused.
      const part = rng.pick(['data', 'scales']);
      const dseed = rng.int(0, 2 ** 31);
      out.push({
        name: `precision.dequantize: ${format} with damaged ${part} #${i}`,
        entry: 'precision.dequantize',
        expect: 'either',
        run: () => {
          const q = P.quantize(values(makeRng(seed), n, { specials: false }), { format });
          return { d: P.dequantize({ ...q, [part]: damage(q[part], makeRng(dseed)).bytes }), n };
        },
        check: ({ d }) => (d instanceof Float32Array && d.length === n ? undefined : `decoded ${show(d)}`),
      });
      continue;
    }
    // Every mutation breaks the Quantized: MX has no tensor scale (any number is refused), a junk
    // scaleMode is refused for every format, and so on.
    const [what, mutate, expect] = mutations[k];
    out.push({ name: `precision.dequantize: ${format}, ${what} #${i}`, entry: 'precision.dequantize', expect, run: () => P.dequantize(mutate(P.quantize(values(makeRng(seed), n), { format }))) });
  }
  out.push({ name: 'precision.dequantize: NVFP4 scale codes with the sign bit', entry: 'precision.dequantize', expect: 'error', run: () => { const q = P.quantize(values(makeRng(1), 32, { specials: false }), { format: 'nvfp4' }); q.scales[0] |= 0x80; return P.dequantize(q); } });
}

function elementCases(rng, out) {
  const NAMES = ['e4m3', 'e5m2', 'e2m1'];
  for (let i = 0; i < 45; i++) {
    const name = NAMES[i % 3];
    const saturate = rng.pick([undefined, true, false]);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.encodeElement: 40 random values to ${name}${saturate === undefined ? '' : ` (saturate ${saturate})`} #${i}`,
      entry: ['precision.encodeElement', 'precision.decodeElement', 'precision.encodeElements', 'precision.elementFormat'],
      expect: 'ok',
      run: () => {
        const f = P.elementFormat(name);
        const r = makeRng(seed);
        const xs = Array.from({ length: 40 }, () => (r.bool(0.1) ? r.pick([0, -0, NaN, Infinity, -Infinity, f.max, -f.max, f.max * 1.1, 2 ** (-f.bias - f.manBits - 1)]) : Math.fround(r.normals(1)[0] * 2 ** r.int(-f.bias - 4, f.emax + 2))));
        const opts = saturate === undefined ? undefined : { saturate };
        const codes = xs.map((x) => P.encodeElement(f, x, opts));
        return { f, xs, codes, batch: Array.from(P.encodeElements(f, xs, opts)), back: codes.map((c) => P.decodeElement(f, c)) };
      },
      check: ({ f, xs, codes, batch, back }) => {
        if (batch.join() !== codes.join()) return 'encodeElements differs from encodeElement';
        for (let k = 0; k < xs.length; k++) {
          const [x, y] = [xs[k], back[k]];
          if (codes[k] < 0 || codes[k] >= 2 ** f.bits || !Number.isInteger(codes[k])) return `code ${codes[k]}`;
          if (Number.isNaN(x)) {
            if (f.hasNaN ? !Number.isNaN(y) : y !== 0) return `NaN encoded to ${y}`;
            continue;
          }
          if (Math.abs(x) > f.max) {
            const ok = saturate === false && f.hasNaN ? [f.max, Infinity, NaN].some((v) => Object.is(Math.abs(y), v) || (Number.isNaN(v) && Number.isNaN(y))) : Math.abs(y) === f.max;
            if (!ok || (y === y && Math.sign(y) !== Math.sign(x))) return `${x} beyond max became ${y}`;
            continue;
          }
          if (Math.abs(y - x) > elemBound(f, 1, Math.abs(x))) return `${x} encoded to ${y}`;
          if (x === 0 && Object.is(x, -0) !== Object.is(y, -0)) return `the sign of ${Object.is(x, -0) ? '-0' : '0'} was lost`;
        }
        return undefined;
      },
    });
  }
  for (const name of NAMES) {
    out.push({
      name: `precision.decodeElement: every ${name} code`,
      entry: 'precision.decodeElement',
      expect: 'ok',
      run: () => { const f = ELEMENTS[name]; return Array.from({ length: 2 ** f.bits }, (_, c) => P.decodeElement(f, c)); },
      check: (v) => { const bad = v.filter((y) => !Number.isFinite(y)).length; const want = { e4m3: 2, e5m2: 8, e2m1: 0 }[name]; return bad === want ? undefined : `${bad} non-finite codes, want ${want}`; },
    });
  }
  for (let i = 0; i < 20; i++) {
    const e = rng.int(-127, 127);
    out.push({ name: `precision.encodeE8m0: 2^${e}`, entry: ['precision.encodeE8m0', 'precision.decodeE8m0'], expect: 'ok', run: () => P.decodeE8m0(P.encodeE8m0(e)), check: (v) => (v === 2 ** e ? undefined : `2^${e} came back as ${v}`) });
  }
  for (const e of [-128, 128, 1.5, NaN, Infinity]) out.push({ name: `precision.encodeE8m0: ${e} is the NaN code`, entry: 'precision.encodeE8m0', expect: 'ok', run: () => P.encodeE8m0(e), check: (c) => (c === P.E8M0_NAN ? undefined : `code ${c}`) });
  const junkCalls = [
    ...['e4m3 ', 'E4M3', 'fp8', 'e3m2', 'toString', ...WRONG_TYPES.slice(0, 8)].map((n) => [`elementFormat ${show(n)}`, 'elementFormat', () => P.elementFormat(n)]),
    ...[null, {}, { ...ELEMENTS.e4m3 }, 'e4m3', { ...ELEMENTS.e2m1, max: 1e9 }].map((f) => [`encodeElement format ${show(f)}`, 'encodeElement', () => P.encodeElement(f, 1)]),
    ...['1', null, 1n, Symbol('v'), {}, [1]].map((x) => [`encodeElement value ${show(x)}`, 'encodeElement', () => P.encodeElement(ELEMENTS.e4m3, x)]),
    ...[null, 5, 'x', { saturate: 1 }, { saturat: true }].map((o) => [`encodeElement options ${show(o)}`, 'encodeElement', () => P.encodeElement(ELEMENTS.e5m2, 1, o)]),
    ...[[ELEMENTS.e4m3, 256], [ELEMENTS.e2m1, 16], [ELEMENTS.e4m3, -1], [ELEMENTS.e5m2, 1.5], [ELEMENTS.e4m3, NaN], [ELEMENTS.e4m3, '1'], [null, 1]].map(([f, c]) => [`decodeElement ${show(c)}`, 'decodeElement', () => P.decodeElement(f, c)]),
    ...[null, 'abc', [1, '2'], { length: 3 }, new BigInt64Array(2)].map((xs) => [`encodeElements ${show(xs)}`, 'encodeElements', () => P.encodeElements(ELEMENTS.e4m3, xs)]),
    ...['3', null, 1n, Symbol('e')].map((e) => [`encodeE8m0 ${show(e)}`, 'encodeE8m0', () => P.encodeE8m0(e)]), ...[256, -1, 1.5, NaN, '1', null, 2 ** 40].map((c) => [`decodeE8m0 ${show(c)}`, 'decodeE8m0', () => P.decodeE8m0(c)]),
  ];
  for (const [what, entry, f] of junkCalls) out.push({ name: `precision.${what}`, entry: `precision.${entry}`, expect: 'error', run: f });
}

function blockCases(rng, out) {
  for (let i = 0; i < 36; i++) {
    const name = ['e4m3', 'e5m2', 'e2m1'][i % 3];
    const mode = rng.pick(['floor', 'rceil']);
    const block = rng.pick([2, 8, 16, 32, 64]);
    const n = block * rng.int(1, 4);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.quantizeMx: ${name} ${mode}, blocks of ${block}, ${n} values #${i}`,
      entry: ['precision.quantizeMx', 'precision.dequantizeMx', 'precision.mxExponent'],
      expect: 'ok',
      run: () => {
        const x = values(makeRng(seed), n);
        const f = ELEMENTS[name];
        const q = P.quantizeMx(x, f, mode, block);
        const d = P.dequantizeMx(q, f, n, block);
        const amaxes = Array.from({ length: n / block }, (_, b) => Array.from(x.subarray(b * block, (b + 1) * block)).reduce((a, v) => (Number.isFinite(v) ? Math.max(a, Math.abs(v)) : a), 0));
        return { x, q, d, f, exps: amaxes.map((a) => (a > 0 ? P.mxExponent(f, a, mode) : null)) };
      },
      check: ({ x, q, d, f, exps }) => {
        for (let b = 0; b < exps.length; b++) if (exps[b] !== null && q.scales[b] !== 255 && P.decodeE8m0(q.scales[b]) !== 2 ** exps[b]) return `block ${b}: scale ${P.decodeE8m0(q.scales[b])}, mxExponent ${exps[b]}`;
        const special = (i) => Array.from(x.subarray(Math.floor(i / block) * block, (Math.floor(i / block) + 1) * block)).some((v) => !Number.isFinite(v));
        return compare(x, d, f, (i) => P.decodeE8m0(q.scales[Math.floor(i / block)]), special) || undefined;
      },
    });
  }
  for (let i = 0; i < 24; i++) {
    const n = 16 * rng.int(1, 4);
    const seed = rng.int(0, 2 ** 31);
    const withAmax = rng.bool(0.3);
    out.push({
      name: `precision.quantizeNvfp4: ${n} values${withAmax ? ', its own amax given' : ''} #${i}`,
      entry: ['precision.quantizeNvfp4', 'precision.dequantizeNvfp4'],
      expect: 'ok',
      run: () => {
        const x = values(makeRng(seed), n);
        const amax = Array.from(x).reduce((a, v) => (Number.isFinite(v) ? Math.max(a, Math.abs(v)) : a), 0);
        const b = P.quantizeNvfp4(x, withAmax ? amax : undefined);
        const q = { format: 'nvfp4', scaleMode: null, length: n, blockSize: 16, ...b };
        return { x, q, d: P.dequantizeNvfp4(b, n) };
      },
      check: ({ x, q, d }) => roundTrip(x, q, d) || undefined,
    });
  }
  for (let i = 0; i < 20; i++) {
    const name = ['e4m3', 'e5m2', 'e2m1'][i % 3];
    const a = Math.fround(2 ** rng.float(-149, 127.9));
    for (const mode of ['floor', 'rceil']) {
      out.push({
        name: `precision.mxExponent: ${name} ${mode} of ${a}`,
        entry: 'precision.mxExponent',
        expect: 'ok',
        run: () => P.mxExponent(ELEMENTS[name], a, mode),
        check: (e) => {
          const f = ELEMENTS[name];
          if (!Number.isInteger(e) || e < -127 || e > 127) return `exponent ${e}`;
          if (e === -127 || e === 127) return undefined; // clamped to E8M0's range
          if (mode === 'floor') return Math.floor(Math.log2(a)) - f.emax === e || Math.abs(Math.log2(a) - Math.round(Math.log2(a))) < 1e-12 ? undefined : `floor exponent ${e} for ${a}`;
          return f.max * 2 ** e >= a && f.max * 2 ** (e - 1) < a ? undefined : `rceil exponent ${e} for ${a}`;
        },
      });
    }
  }
  const x = () => new Float32Array(32).fill(0.25);
  const junkCalls = [
    ['quantizeMx', () => P.quantizeMx(null, ELEMENTS.e4m3, 'floor')], ['quantizeMx', () => P.quantizeMx(x(), null, 'floor')], ['quantizeMx', () => P.quantizeMx(x(), ELEMENTS.e4m3, 'up')],
    ...[0, -32, 5, 1.5, NaN, 2 ** 53, '32'].map((b) => ['quantizeMx', () => P.quantizeMx(x(), ELEMENTS.e4m3, 'floor', b)]), ['quantizeMx', () => P.quantizeMx(new Float32Array(3), ELEMENTS.e2m1, 'floor', 1)],
    ['quantizeMx', () => P.quantizeMx(Float64Array.of(1e300, ...new Array(31).fill(0)), ELEMENTS.e4m3, 'floor')], ['dequantizeMx', () => P.dequantizeMx(null, ELEMENTS.e4m3, 32)],
    ['dequantizeMx', () => P.dequantizeMx({ data: new Uint8Array(32), scales: new Uint8Array(1) }, ELEMENTS.e4m3, 2 ** 40)],
    ['dequantizeMx', () => P.dequantizeMx({ data: new Uint8Array(31), scales: new Uint8Array(1) }, ELEMENTS.e4m3, 32)],
    ['dequantizeMx', () => P.dequantizeMx({ data: new Uint8Array(32), scales: new Uint8Array(1) }, ELEMENTS.e2m1, 32)], ['dequantizeMx', () => P.dequantizeMx({ data: [1, 2], scales: new Uint8Array(1) }, ELEMENTS.e4m3, 2, 2)],
    ...BAD_INTEGERS.map((n) => ['dequantizeMx', () => P.dequantizeMx({ data: new Uint8Array(32), scales: new Uint8Array(1) }, ELEMENTS.e4m3, n)]), ['quantizeNvfp4', () => P.quantizeNvfp4(null)],
    ['quantizeNvfp4', () => P.quantizeNvfp4(new Float32Array(15))], ['quantizeNvfp4', () => P.quantizeNvfp4(x(), 1e300)], ['quantizeNvfp4', () => P.quantizeNvfp4(x(), -1)], ['quantizeNvfp4', () => P.quantizeNvfp4(x(), NaN)],
    ['dequantizeNvfp4', () => P.dequantizeNvfp4(null, 16)], ['dequantizeNvfp4', () => P.dequantizeNvfp4({ data: new Uint8Array(8), scales: new Uint8Array(1), globalScale: NaN }, 16)],
    ['dequantizeNvfp4', () => P.dequantizeNvfp4({ data: new Uint8Array(8), scales: Uint8Array.of(0x90), globalScale: 1 }, 16)],
    ['dequantizeNvfp4', () => P.dequantizeNvfp4({ data: new Uint8Array(8), scales: new Uint8Array(1), globalScale: 1 }, 2 ** 40)],
    ...[0, -1, NaN, Infinity, 1e-400, 1e300, '1', null].map((a) => ['mxExponent', () => P.mxExponent(ELEMENTS.e4m3, a, 'rceil')]), ['mxExponent', () => P.mxExponent(null, 1, 'floor')],
    ['mxExponent', () => P.mxExponent(ELEMENTS.e4m3, 1, 'round')],
  ];
  junkCalls.forEach(([entry, f], k) => out.push({ name: `precision.${entry}: junk #${k}`, entry: `precision.${entry}`, expect: 'error', run: f }));
}

function layoutCases(rng, out) {
  for (let i = 0; i < 48; i++) {
    const format = FAKE_QUANT_FORMATS[i % FAKE_QUANT_FORMATS.length];
    const direction = rng.pick(['rowwise', 'columnwise']);
    const b = blockOf(format) ?? 1;
    const along = b * rng.int(1, format.startsWith('fp8-block') ? 1 : 3);
    const across = format === 'fp8-block128x128' ? 128 : rng.int(1, 5);
    const [rows, cols] = direction === 'rowwise' ? [across, along] : [along, across];
    const seed = rng.int(0, 2 ** 31);
    const f64 = rng.bool(0.3);
    out.push({
      name: `precision.quantize2d: ${format} ${direction} ${rows} × ${cols}${f64 ? ' (Float64Array)' : ''} #${i}`,
      entry: ['precision.quantize2d', 'precision.dequantize2d'],
      expect: 'ok',
      run: () => {
        const x = values(makeRng(seed), rows * cols, { as: f64 ? 'f64' : 'f32' });
        const q = P.quantize2d(x, rows, cols, { format, direction });
        return { x, q, d: P.dequantize2d(q) };
      },
      check: ({ x, q, d }) => {
        const [R, C] = direction === 'rowwise' ? [rows, cols] : [cols, rows];
        const at = (i) => (direction === 'rowwise' ? i : (i % cols) * rows + Math.floor(i / cols)); // x's element i in the stored matrix
        if (format.startsWith('fp8-block')) {
          const tile = format === 'fp8-block128x128' ? 128 : 1;
          const scaleAt = (i) => { const s = at(i); return q.scales[Math.floor(Math.floor(s / C) / tile) * (C / 128) + Math.floor((s % C) / 128)]; };
          return compare(x, d, ELEMENTS.e4m3, scaleAt) || undefined;
        }
        const stored = Float64Array.from({ length: R * C }, (_, s) => (direction === 'rowwise' ? x[s] : x[(s % rows) * cols + Math.floor(s / rows)]));
        const flat = { format, scaleMode: null, length: R * C, blockSize: blockOf(format) ?? R * C, data: q.data, scales: q.scales, globalScale: q.globalScale };
        const dFlat = P.dequantize(flat);
        for (let i = 0; i < x.length; i++) if (!Object.is(d[i], dFlat[at(i)]) && !(Number.isNaN(d[i]) && Number.isNaN(dFlat[at(i)]))) return `[${i}] ${d[i]} vs the flat decode ${dFlat[at(i)]}`;
        return roundTrip(stored, flat, dFlat) || undefined;
      },
    });
  }
  for (let i = 0; i < 16; i++) {
    const [rows, cols] = [rng.int(1, 300), rng.int(1, 12)];
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.tileScales128x4: ${rows} × ${cols} round trip #${i}`,
      entry: ['precision.tileScales128x4', 'precision.untileScales128x4', 'precision.tiledScaleIndex128x4'],
      expect: 'ok',
      run: () => {
        const r = makeRng(seed);
        const s = Uint8Array.from({ length: rows * cols }, () => r.int(0, 255));
        const t = P.tileScales128x4(s, rows, cols);
        const idx = new Set();
        for (let k = 0; k < Math.min(rows * cols, 200); k++) idx.add(P.tiledScaleIndex128x4(Math.floor(k / cols), k % cols, cols));
        return { s, t, back: P.untileScales128x4(t, rows, cols), idx: [...idx], n: Math.min(rows * cols, 200) };
      },
      check: ({ s, t, back, idx, n }) => (t.length !== Math.ceil(rows / 128) * Math.ceil(cols / 4) * 512 ? `tiled length ${t.length}` : back.join() !== s.join() ? 'untile(tile(s)) is not s' : idx.length !== n || idx.some((k) => k < 0 || k >= t.length) ? 'tiled indices collide or fall outside' : undefined),
    });
  }
  for (let i = 0; i < 16; i++) {
    const format = i % 2 ? 'fp8-block1x128' : 'fp8-block128x128';
    const R = rng.int(1, 300);
    const K = 128 * rng.int(1, 6);
    const rowBlocks = format === 'fp8-block1x128' ? R : Math.ceil(R / 128);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.gemmBlockScales: ${format} ${R} × ${K} round trip #${i}`,
      entry: ['precision.gemmBlockScales', 'precision.plainBlockScales'],
      expect: 'ok',
      run: () => { const r = makeRng(seed); const s = Float32Array.from({ length: rowBlocks * (K / 128) }, () => r.float(0, 4)); return { s, back: P.plainBlockScales(format, P.gemmBlockScales(format, s, R, K), R, K) }; },
      check: ({ s, back }) => (back.join() === s.join() ? undefined : 'plainBlockScales(gemmBlockScales(s)) is not s'),
    });
  }
  const junkCalls = [
    ['quantize2d', () => P.quantize2d(null, 1, 32, { format: 'fp8-e4m3' })], ['quantize2d', () => P.quantize2d([1, 2], 1, 2, { format: 'fp8-e4m3' })], ['quantize2d', () => P.quantize2d(new Float32Array(32), 1, 32, null)],
    ['quantize2d', () => P.quantize2d(new Float32Array(32), 1, 32, { format: 'fp16' })], ['quantize2d', () => P.quantize2d(new Float32Array(32), 1, 32, { format: 'fp8-e4m3', direction: 'diagonal' })],
    ['quantize2d', () => P.quantize2d(new Float32Array(32), 1, 32, { format: 'fp8-e4m3', directon: 'rowwise' })], ['quantize2d', () => P.quantize2d(new Float32Array(128), 1, 128, { format: 'fp8-block1x128', amax: 1 })],
    ['quantize2d', () => P.quantize2d(new Float32Array(128), 1, 128, { format: 'fp8-block128x128' })], ['quantize2d', () => P.quantize2d(new Float32Array(64), 2, 32, { format: 'mxfp4', direction: 'columnwise' })],
    ...BAD_INTEGERS.map((n) => ['quantize2d', () => P.quantize2d(new Float32Array(32), n, 32, { format: 'fp8-e4m3' })]), ['dequantize2d', () => P.dequantize2d(null)],
    ['dequantize2d', () => P.dequantize2d({ format: 'fp8-block1x128', direction: 'rowwise', rows: 1e5, cols: 1e5, data: new Uint8Array(1), scales: new Float32Array(1), globalScale: null })],
    ['dequantize2d', () => P.dequantize2d({ format: 'fp8-block1x128', direction: 'rowwise', rows: 1, cols: 128, data: new Uint8Array(128), scales: Float32Array.of(NaN), globalScale: null })],
    ['dequantize2d', () => P.dequantize2d({ format: 'mxfp8-e4m3', direction: 'rowwise', rows: 2, cols: 16, data: new Uint8Array(32), scales: new Uint8Array(1), globalScale: null })],
    ['dequantize2d', () => P.dequantize2d({ format: 'fp8-e4m3', direction: 'sideways', rows: 1, cols: 8, data: new Uint8Array(8), scales: new Uint8Array(0), globalScale: 1 })],
    ['dequantize2d', () => P.dequantize2d({ format: 'fp8-e4m3', direction: 'rowwise', rows: 2 ** 40, cols: 8, data: new Uint8Array(8), scales: new Uint8Array(0), globalScale: 1 })],
    ['tileScales128x4', () => P.tileScales128x4(null, 1, 1)], ['tileScales128x4', () => P.tileScales128x4([1], 1, 1)], ['tileScales128x4', () => P.tileScales128x4(new Uint8Array(4), 2, 3)],
    ['untileScales128x4', () => P.untileScales128x4(null, 1, 1)], ['untileScales128x4', () => P.untileScales128x4(new Uint8Array(512), 1e9, 0.5)], ['untileScales128x4', () => P.untileScales128x4(new Uint8Array(100), 1, 1)],
    ...[['a', 0, 4], [0, 4, 4], [-1, 0, 4], [0, 0, 0], [0.5, 0, 4], [null, null, null]].map(([r, c, n]) => ['tiledScaleIndex128x4', () => P.tiledScaleIndex128x4(r, c, n)]),
    ['gemmBlockScales', () => P.gemmBlockScales('fp8-block1x128', null, 1, 128)], ['gemmBlockScales', () => P.gemmBlockScales('fp8-e4m3', new Float32Array(1), 1, 128)],
    ['gemmBlockScales', () => P.gemmBlockScales('fp8-block1x128', new Float32Array(1), 1, 100)], ['gemmBlockScales', () => P.gemmBlockScales('fp8-block1x128', new Float32Array(2), 2 ** 40, 128)],
    ['plainBlockScales', () => P.plainBlockScales('fp8-block128x128', new Float32Array(3), 1, 128)], ['plainBlockScales', () => P.plainBlockScales(null, new Float32Array(4), 1, 128)],
  ];
  junkCalls.forEach(([entry, f], k) => out.push({ name: `precision.${entry}: junk #${k}`, entry: `precision.${entry}`, expect: 'error', run: f }));
}

function amaxCases(rng, out) {
  for (let i = 0; i < 20; i++) {
    const length = rng.int(1, 20);
    const element = rng.pick(['e4m3', 'e5m2']);
    const steps = rng.int(1, 30);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.AmaxHistory: ${length} long, ${element}, ${steps} steps #${i}`,
      entry: ['precision.AmaxHistory', 'precision.AmaxHistory#push', 'precision.AmaxHistory#scale', 'precision.AmaxHistory#quantize', 'precision.AmaxHistory#dequantize'],
      expect: 'ok',
      run: () => {
        const r = makeRng(seed);
        const h = new P.AmaxHistory(length, ELEMENTS[element]);
        let last;
        for (let s = 0; s < steps; s++) {
          const x = values(r, 32, { specials: false });
          const scale = h.scale();
          const q = h.quantize(x);
          last = { x, q, d: h.dequantize(q), scale };
        }
        return { ...last, values: [...h.values] };
      },
      check: ({ x, q, d, scale, values: vs }) => (vs.length > length ? `${vs.length} amaxes kept` : q.scale !== scale || !(scale > 0) || !Number.isFinite(scale) ? `scale ${q.scale}` : compare(x, d, ELEMENTS[element], () => q.scale) || undefined),
    });
  }
  const junkCalls = [
    ...[0, -1, 1.5, 1e300, 65537, '4', null].map((n) => () => new P.AmaxHistory(n)), ...[null, {}, { ...ELEMENTS.e4m3 }, 'e4m3'].map((e) => () => new P.AmaxHistory(4, e)),
    ...[NaN, Infinity, -1, 1e300, 4e38, '1', null].map((a) => () => new P.AmaxHistory(4).push(a)), () => new P.AmaxHistory(4).quantize(null), () => new P.AmaxHistory(4).quantize(Float64Array.of(1, 1e300)),
    () => new P.AmaxHistory(4).quantize(['1']), () => new P.AmaxHistory(4).dequantize(null), () => new P.AmaxHistory(4).dequantize({ data: [1, 2], scale: 1 }),
    () => new P.AmaxHistory(4).dequantize({ data: new Uint8Array(2), scale: 0 }), () => new P.AmaxHistory(4).dequantize({ data: new Uint8Array(2), scale: NaN }),
  ];
  junkCalls.forEach((f, k) => out.push({ name: `precision.AmaxHistory: junk #${k}`, entry: 'precision.AmaxHistory', expect: 'error', run: f }));
}

const GEMM_LAYOUT = (f) => (isMx(f) || f === 'nvfp4' ? 'tiled128x4' : f.startsWith('fp8-block') ? 'gemm' : null);
const host = (t) => (t ? Array.from(new Uint8Array(t.toHost().buffer, t.toHost().byteOffset, t.toHost().byteLength)) : null);

function tensorCases(rng, out) {
  for (let i = 0; i < 48; i++) {
    const format = FAKE_QUANT_FORMATS[i % FAKE_QUANT_FORMATS.length];
    const direction = rng.pick(['rowwise', 'columnwise', 'both']);
    const b = blockOf(format);
    const big = format === 'fp8-block128x128';
    const cols = big ? 128 : (b ?? 8) * rng.int(1, b && b >= 32 ? 2 : 4);
    const rows = big ? 128 : (direction === 'rowwise' ? 1 : b ?? 32) * rng.int(1, 2) * (b === 128 ? 1 : 2);
    const dtype = rng.pick(['f32', 'bf16', 'f16']);
    const layout = GEMM_LAYOUT(format) && rng.bool() ? GEMM_LAYOUT(format) : 'plain';
    const amax = hasTensorScale(format) && rng.bool(0.3) ? rng.float(0.1, 10) : undefined;
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.quantizeTensor: ${format} ${direction} ${layout} ${rows} × ${cols} ${dtype}${amax ? ` amax ${amax.toFixed(2)}` : ''} #${i}`,
      entry: ['precision.quantizeTensor', 'precision.dequantizeTensor'],
      expect: 'ok',
      run: () =>
        scope(() => {
          const r = makeRng(seed);
          const v = dtype === 'f16' ? Float32Array.from({ length: rows * cols }, () => r.normals(1)[0] * 2 ** r.int(-12, 12)) : values(r, rows * cols, { specials: false });
          const t = dtype === 'f32' ? Tensor.from(v, [rows, cols]) : Tensor.from(Uint16Array.from(v, (x) => (dtype === 'bf16' ? f32ToBf16Bits(x) : f32ToF16Bits(x))), [rows, cols], dtype);
          const vals = dtype === 'f32' ? v : Float32Array.from(t.toHost(), (h) => (dtype === 'bf16' ? bf16BitsToF32(h) : f16BitsToF32(h)));
          const q = P.quantizeTensor(t, { format, direction, scaleLayout: layout, ...(amax !== undefined ? { amax } : {}) });
          const res = [];
          for (const d of direction === 'both' ? ['rowwise', 'columnwise'] : [direction]) {
            const ref = P.quantize2d(vals, rows, cols, { format, direction: d, ...(amax !== undefined ? { amax } : {}) });
            res.push({ d, codes: host(q[d].data), ref: Array.from(ref.data), got: Array.from(P.dequantizeTensor(q, { direction: d }).toHost()), want: Array.from(P.dequantize2d(ref)) });
          }
          q.dispose();
          return res;
        }),
      check: (res) => {
        for (const r of res) {
          if (r.codes.join() !== r.ref.join()) return `${r.d} codes differ from quantize2d's`;
          const k = r.got.findIndex((g, j) => !Object.is(g, r.want[j]) && !(Number.isNaN(g) && Number.isNaN(r.want[j])));
          if (k >= 0) return `${r.d} [${k}]: ${r.got[k]} vs dequantize2d ${r.want[k]}`;
        }
        return undefined;
      },
    });
  }
  const bad = [
    ['options null', (x) => P.quantizeTensor(x, null)], ['unknown key', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', directon: 'both' })], ['format fp16', (x) => P.quantizeTensor(x, { format: 'fp16' })],
    ['amax 1e300', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', amax: 1e300 })], ['amax NaN', (x) => P.quantizeTensor(x, { format: 'nvfp4', amax: NaN })],
    ['amax for MX', (x) => P.quantizeTensor(x, { format: 'mxfp8-e4m3', amax: 1 })], ['direction up', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', direction: 'up' })],
    ['layout gemm for MX', (x) => P.quantizeTensor(x, { format: 'mxfp8-e4m3', scaleLayout: 'gemm' })], ['out junk', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', out: 5 })],
    ['out unknown part', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', out: { rowise: {} } })],
    ['out of a direction not asked', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', out: { columnwise: { data: Tensor.empty([32, 64], 'f8e4m3') } } })],
    ['out of the wrong dtype', (x) => P.quantizeTensor(x, { format: 'fp8-e4m3', out: { rowwise: { data: Tensor.empty([64, 32], 'f8e5m2') } } })],
    ['out globalScale for MX', (x) => P.quantizeTensor(x, { format: 'mxfp8-e4m3', out: { globalScale: Tensor.empty([1], 'f32') } })], ['x junk', () => P.quantizeTensor({ shape: [64, 32], dtype: 'f32' }, { format: 'fp8-e4m3' })],
    ['x i32', () => P.quantizeTensor(Tensor.from(new Int32Array(64), [2, 32], 'i32'), { format: 'fp8-e4m3' })], ['x scalar', () => P.quantizeTensor(Tensor.from([1], [], 'f32'), { format: 'fp8-e4m3' })],
    ['cols not a multiple of 8', () => P.quantizeTensor(Tensor.empty([4, 12], 'f32'), { format: 'fp8-e4m3' })],
    ['x disposed', () => { const t = Tensor.empty([2, 32], 'f32'); t.dispose(); return P.quantizeTensor(t, { format: 'mxfp4' }); }],
    ['dequantize options junk', (x) => P.dequantizeTensor(P.quantizeTensor(x, { format: 'mxfp4' }), null)], ['dequantize unknown key', (x) => P.dequantizeTensor(P.quantizeTensor(x, { format: 'mxfp4' }), { dtpe: 'f32' })],
    ['dequantize dtype i32', (x) => P.dequantizeTensor(P.quantizeTensor(x, { format: 'mxfp4' }), { dtype: 'i32' })],
    ['dequantize a missing part', (x) => P.dequantizeTensor(P.quantizeTensor(x, { format: 'mxfp4' }), { direction: 'columnwise' })],
    ['dequantize rows lie', (x) => P.dequantizeTensor({ ...P.quantizeTensor(x, { format: 'nvfp4' }), rows: 128 })],
    ['dequantize rows 2^40', (x) => P.dequantizeTensor({ ...P.quantizeTensor(x, { format: 'fp8-e5m2' }), rows: 2 ** 40 })],
    ['dequantize scales swapped out', (x) => { const q = P.quantizeTensor(x, { format: 'mxfp8-e4m3' }); return P.dequantizeTensor({ ...q, rowwise: { data: q.rowwise.data, scales: Tensor.empty([1], 'e8m0') } }); }],
    ['dequantize no globalScale', (x) => P.dequantizeTensor({ ...P.quantizeTensor(x, { format: 'fp8-e4m3' }), globalScale: null })], ['dequantize junk', () => P.dequantizeTensor({ format: 'fp8-e4m3' })],
    ['dequantize null', () => P.dequantizeTensor(null)],
  ];
  for (const [what, f] of bad) out.push({ name: `precision.quantizeTensor: ${what}`, entry: ['precision.quantizeTensor', 'precision.dequantizeTensor'], expect: 'error', run: () => scope(() => f(Tensor.from(new Float32Array(64 * 32).fill(0.5), [64, 32]))) });
}

function matmulCases(rng, out) {
  const pairs = [['fp8-e4m3', 'fp8-e4m3', 16], ['fp8-e5m2', 'fp8-e4m3', 16], ['fp8-block1x128', 'fp8-block1x128', 128], ['fp8-block1x128', 'fp8-block128x128', 128], ['mxfp8-e4m3', 'mxfp8-e5m2', 32], ['nvfp4', 'nvfp4', 16]];
  for (let i = 0; i < 30; i++) {
    const [fa, fb, unit] = pairs[i % pairs.length];
    const K = unit * (unit === 128 ? 1 : rng.int(1, 3));
    const M = rng.int(1, 6) * (fa === 'fp8-e5m2' ? 32 : 1);
    const N = fb === 'fp8-block128x128' ? 128 : rng.int(1, 6);
    const outDtype = rng.pick(['bf16', 'f32']);
    const layout = GEMM_LAYOUT(fa) && rng.bool() ? GEMM_LAYOUT(fa) : 'plain';
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `precision.scaledMatmul: ${fa} × ${fb}, ${M} × ${N} × ${K}, ${layout}, ${outDtype} #${i}`,
      entry: 'precision.scaledMatmul',
      expect: 'ok',
      run: () =>
        scope(() => {
          const r = makeRng(seed);
          const [a, b] = [[fa, M], [fb, N]].map(([f, rows]) => P.quantizeTensor(Tensor.from(values(r, rows * K, { specials: false }), [rows, K]), { format: f, scaleLayout: layout }));
          const d = P.scaledMatmul(a, b, { outDtype });
          const [A, B] = [a, b].map((q) => P.dequantizeTensor(q).toHost());
          const got = outDtype === 'f32' ? Array.from(d.toHost()) : Array.from(d.toHost(), bf16BitsToF32);
          return { got, A, B, shape: d.shape };
        }),
      check: ({ got, A, B, shape }) => {
        if (shape.join() !== `${M},${N}`) return `shape ${shape}`;
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let s = 0;
            let mag = 0;
            for (let k = 0; k < K; k++) (s += A[m * K + k] * B[n * K + k]), (mag += Math.abs(A[m * K + k] * B[n * K + k]));
            const tol = Math.abs(s) * (outDtype === 'f32' ? 2 ** -23 : 2 ** -8) + mag * 2 ** -20 + 2 ** -133; // + the subnormal step (f32 and bf16 share the exponent range)
            const g = got[m * N + n];
            if (!(Math.abs(g - s) <= tol) && !(Math.abs(s) > 1e38 && !Number.isFinite(g))) return `d[${m}, ${n}] = ${g}, want ${s}`;
          }
        return undefined;
      },
    });
  }
  const q = (f, rows, K, o = {}) => P.quantizeTensor(Tensor.from(new Float32Array(rows * K).fill(0.5), [rows, K]), { format: f, ...o });
  const bad = [
    ['pair tensorwise × MX', () => P.scaledMatmul(q('fp8-e4m3', 4, 32), q('mxfp8-e4m3', 4, 32))], ['both e5m2', () => P.scaledMatmul(q('fp8-e5m2', 32, 16), q('fp8-e5m2', 32, 16))],
    ['K differs', () => P.scaledMatmul(q('fp8-e4m3', 4, 16), q('fp8-e4m3', 4, 32))], ['MXFP4', () => P.scaledMatmul(q('mxfp4', 4, 32), q('mxfp4', 4, 32))],
    ['columnwise only', () => P.scaledMatmul(q('fp8-e4m3', 32, 16, { direction: 'columnwise' }), q('fp8-e4m3', 4, 16))],
    ['layouts differ', () => P.scaledMatmul(q('mxfp8-e4m3', 4, 32), q('mxfp8-e4m3', 4, 32, { scaleLayout: 'tiled128x4' }))], ['options null', () => P.scaledMatmul(q('fp8-e4m3', 4, 16), q('fp8-e4m3', 4, 16), null)],
    ['unknown option', () => P.scaledMatmul(q('fp8-e4m3', 4, 16), q('fp8-e4m3', 4, 16), { transB: true })], ['outDtype f16', () => P.scaledMatmul(q('fp8-e4m3', 4, 16), q('fp8-e4m3', 4, 16), { outDtype: 'f16' })],
    ['fastAccum "yes"', () => P.scaledMatmul(q('fp8-e4m3', 4, 16), q('fp8-e4m3', 4, 16), { fastAccum: 'yes' })], ['fastAccum with blocks', () => P.scaledMatmul(q('mxfp8-e4m3', 4, 32), q('mxfp8-e4m3', 4, 32), { fastAccum: true })],
    ['junk operands', () => P.scaledMatmul(null, {})], ['disposed operand', () => { const a = q('fp8-e4m3', 4, 16); a.dispose(); return P.scaledMatmul(a, q('fp8-e4m3', 4, 16)); }],
    ['2^17 × 2^17 × 16 on the CPU', () => {
      const op = (rows) => ({ format: 'fp8-e4m3', scaleMode: null, scaleLayout: 'plain', rows, cols: 16, rowwise: { data: Tensor.empty([rows, 16], 'f8e4m3'), scales: null }, columnwise: null, globalScale: Tensor.from([1], [1]), amax: null, dispose() {} });
      return P.scaledMatmul(op(2 ** 17), op(2 ** 17));
    }],
  ];
  for (const [what, f] of bad) out.push({ name: `precision.scaledMatmul: ${what}`, entry: 'precision.scaledMatmul', expect: 'error', run: () => scope(f) });
}

function helperCases(rng, out) {
  const layouts = ['plain', 'gemm'];
  for (let i = 0; i < 24; i++) {
    const scaling = SCALINGS[i % SCALINGS.length];
    const layout = rng.pick(layouts);
    const R = rng.int(1, 300);
    const K = (scaling === 'mx32' ? 32 : scaling === 'nv16' ? 16 : scaling.startsWith('block') ? 128 : 16) * rng.int(1, 5);
    out.push({
      name: `precision.scaleShape: ${scaling} ${layout} ${R} × ${K}`,
      entry: ['precision.scaleShape', 'precision.scaleIndex', 'precision.isMicroScaling', 'precision.microBlock'],
      expect: 'ok',
      run: () => {
        const shape = P.scaleShape(scaling, layout, R, K);
        const at = P.scaleIndex(scaling, layout, R, K);
        const size = shape.reduce((a, b) => a * b, 1);
        const seen = new Set();
        for (let r = 0; r < Math.min(R, 40); r++) for (let k = 0; k < K; k += P.isMicroScaling(scaling) ? P.microBlock(scaling) : 16) seen.add(at(r, k));
        return { size, idx: [...seen] };
      },
      check: ({ size, idx }) => (idx.some((k) => !Number.isInteger(k) || k < 0 || k >= size) ? `an index outside the ${size} scales` : undefined),
    });
  }
  for (const a of SCALINGS) for (const b of SCALINGS) out.push({ name: `precision.scalingPairAllowed: (${a}, ${b})`, entry: 'precision.scalingPairAllowed', expect: 'ok', run: () => P.scalingPairAllowed(a, b), check: (v) => (typeof v === 'boolean' && (a === b && ['tensor', 'row', 'mx32', 'nv16', 'block1x128'].includes(a) ? v : true) ? undefined : `(${a}, ${b}) → ${v}`) });
  for (let i = 0; i < 20; i++) {
    const x = Math.fround(rng.normals(1)[0] * 2 ** rng.int(-130, 127));
    out.push({ name: `precision.roundToBf16: ${x}`, entry: 'precision.roundToBf16', expect: 'ok', run: () => P.roundToBf16(x), check: (v) => (Object.is(v, bf16BitsToF32(f32ToBf16Bits(x))) ? undefined : `${v}, core rounds to ${bf16BitsToF32(f32ToBf16Bits(x))}`) });
  }
  for (const f of P.QUANTIZE_FORMATS) {
    out.push({ name: `precision.scalingOf: ${f}`, entry: 'precision.scalingOf', expect: 'ok', run: () => P.scalingOf(f), check: (s) => (SCALINGS.includes(s) ? undefined : `scaling ${s}`) });
    for (const d of P.QUANTIZE_DIRECTIONS) {
      out.push({ name: `precision.quantizeOutputs: ${f} ${d}`, entry: 'precision.quantizeOutputs', expect: 'ok', run: () => P.quantizeOutputs(f, d), check: (o) => (Object.values(o).every((v) => v === null || Number.isInteger(v)) ? undefined : show(o)) });
      const [rows, cols] = [128 * rng.int(1, 2), 128 * rng.int(1, 2)];
      out.push({ name: `precision.checkQuantize: ${f} ${d} ${rows} × ${cols}`, entry: 'precision.checkQuantize', expect: 'ok', run: () => P.checkQuantize('quantize', { shape: [rows, cols], dtype: 'bf16' }, { format: f, direction: d }), check: (v) => (v.join() === `${rows},${cols}` ? undefined : `gave ${v}`) });
    }
  }
  for (const f of FAKE_QUANT_FORMATS) out.push({ name: `precision.fakeQuantBlocking: ${f}`, entry: 'precision.fakeQuantBlocking', expect: 'ok', run: () => P.fakeQuantBlocking(f), check: (b) => (b.block === blockOf(f) ? undefined : `block ${b.block}`) });
  for (let i = 0; i < 16; i++) {
    const [s, fa, fb, K] = rng.pick([['tensor', 'f8e4m3', 'f8e5m2', 16], ['mx32', 'f8e4m3', 'f8e4m3', 64], ['block1x128', 'f8e4m3', 'f8e4m3', 128]]);
    const [M, N] = [rng.int(1, 200), rng.int(1, 200)];
    const layout = rng.pick(layouts);
    const outDtype = rng.pick(['bf16', 'f32']);
    const cc = rng.pick(['9.0', '10.0', null]);
    const inTypes = [{ shape: [M, K], dtype: fa }, { shape: P.scaleShape(s, layout, M, K), dtype: s === 'mx32' ? 'e8m0' : 'f32' }, { shape: [N, K], dtype: fb }, { shape: P.scaleShape(s, layout, N, K), dtype: s === 'mx32' ? 'e8m0' : 'f32' }];
    out.push({
      name: `precision.checkScaledMatmul: ${s} ${M} × ${N} × ${K} ${layout}`,
      entry: ['precision.checkScaledMatmul', 'precision.scaledGemmLimits', 'precision.mx8Sm90Limits'],
      expect: 'ok',
      run: () => { const n = P.checkScaledMatmul('scaled_matmul', inTypes, { aScaling: s, bScaling: s, scaleLayout: layout, outDtype, fastAccum: false }); return [n, P.scaledGemmLimits(n), P.mx8Sm90Limits(n, cc)]; },
      check: ([n, a, b]) => (n.M !== M || n.N !== N || n.K !== K ? `dims ${show(n)}` : [a, b].every((v) => v === true || typeof v === 'string') ? undefined : `limits ${a}, ${b}`),
    });
  }
  for (const d of ['cpu', undefined, 'cuda:0', 'cuda', 'cuda:3']) out.push({ name: `precision.computeCapabilityOf: ${show(d)}`, entry: 'precision.computeCapabilityOf', expect: 'ok', run: () => P.computeCapabilityOf(d), check: (v) => (v === null || /^\d+\.\d+$/.test(v) ? undefined : `gave ${v}`) });
  const junkCalls = [
    ...[[null, 'plain', 1, 1], ['tensor', 'tiled', 1, 1], ['mx32', 'plain', 0, 32], ['row', 'gemm', 1.5, 16], ['tensor', 'plain', 1, NaN]].map((a) => ['scaleShape', () => P.scaleShape(...a)]),
    ...[[null, 'plain', 1, 1], ['mx32', 'gemm', -1, 32]].map((a) => ['scaleIndex', () => P.scaleIndex(...a)]), ...['tensor', null, 'mx16'].map((v) => ['microBlock', () => P.microBlock(v)]),
    ...['1', null, 1n, Symbol('x')].map((v) => ['roundToBf16', () => P.roundToBf16(v)]), ...['fp16', 'nvfp4', null].map((v) => ['scalingOf', () => P.scalingOf(v)]),
    ...[['fp8-e4m3', 'diagonal'], ['mxfp8-e4m3', 'both'], [null, null]].map(([f, d]) => ['quantizeOutputs', () => P.quantizeOutputs(f, d)]), ...['fp16', '', null, 7].map((f) => ['fakeQuantBlocking', () => P.fakeQuantBlocking(f)]),
    ['checkQuantize', () => P.checkQuantize(null, null, null)], ['checkQuantize', () => P.checkQuantize('q', { shape: [2, 'x'], dtype: 'f32' }, { format: 'fp8-e4m3', direction: 'rowwise' })],
    ['checkQuantize', () => P.checkQuantize('q', { shape: [100, 128], dtype: 'f32' }, { format: 'fp8-block128x128', direction: 'rowwise' })], ['checkScaledMatmul', () => P.checkScaledMatmul(null, null, null)],
    ['checkScaledMatmul', () => P.checkScaledMatmul('s', [null, 1, 2, 3], {})],
    ...[[{ nodes: [], values: [] }], [{ nodes: [{ op: 'gelu' }], values: [], params: {} }], [{ nodes: [{ op: 'swiglu', inputs: [0, 1] }], values: [], params: {} }]].map((a) => ['fuseScaledGroupedEpilogues', () => P.fuseScaledGroupedEpilogues(...a)]),
    ['fuseScaledGroupedEpilogues', () => P.fuseScaledGroupedEpilogues(tinyStep(), 'probe')],
    ['checkScaledMatmul', () => P.checkScaledMatmul('s', [{ shape: [4, 16], dtype: 'f8e5m2' }, { shape: [1], dtype: 'f32' }, { shape: [4, 16], dtype: 'f8e5m2' }, { shape: [1], dtype: 'f32' }], { aScaling: 'tensor', bScaling: 'tensor', scaleLayout: 'plain', outDtype: 'bf16' })],
    ...[null, {}, { M: 1, N: 1, K: 1 }, { M: -1, N: 1, K: 16, aFormat: 'e4m3', bFormat: 'e4m3', aScaling: 'tensor', bScaling: 'tensor', layout: 'gemm', outDtype: 'bf16', fastAccum: false }].map((n) => ['scaledGemmLimits', () => P.scaledGemmLimits(n)]),
    ['mx8Sm90Limits', () => P.mx8Sm90Limits({}, null)], ...[5, {}, null].map((d) => ['computeCapabilityOf', () => P.computeCapabilityOf(d)]),
  ];
  junkCalls.forEach(([entry, f], k) => out.push({ name: `precision.${entry}: junk #${k}`, entry: `precision.${entry}`, expect: 'error', run: f }));
}

function policyCases(rng, out) {
  const recipes = Object.keys(RECIPES);
  for (let i = 0; i < 20; i++) {
    const o = { recipe: recipes[i % recipes.length], keepFirstLast: rng.bool(), minWeightElements: rng.pick([0, 1024, 1 << 14]), numerics: rng.bool(), native: rng.pick(['auto', false]), fuseEpilogues: rng.bool(), scaleMode: rng.pick(['floor', 'rceil']), rules: rng.bool() ? [{ match: rng.pick(['blocks.0', /mlp/]), recipe: rng.pick(recipes) }] : [] };
    const first = rng.bool();
    out.push({
      name: `precision.PrecisionPolicy: ${o.recipe}${o.rules.length ? ' with a rule' : ''}${o.numerics ? ', numerics' : ''} on the tiny GPT #${i}`,
      entry: ['precision.PrecisionPolicy', 'precision.PrecisionPolicy#plan', 'precision.PrecisionPolicy#run', 'precision.PrecisionPolicy#clone', 'precision.PrecisionPolicy#addRule', 'precision.PrecisionPolicy.table', 'precision.PrecisionPolicy.numericsTable', 'precision.PrecisionPolicy.numerics', 'precision.support'],
      expect: 'ok',
      timeoutMs: 20_000,
      run: () => {
        const p = new P.PrecisionPolicy(o).clone({}).addRule({ match: 'zzz', recipe: 'bf16' }, { first });
        const planned = p.plan(tinyStep());
        const g = p.run(tinyStep(), { device: 'cpu' });
        const fakeOutputs = Object.fromEntries(p.lastNumerics.map((n) => [n.name, Float32Array.of(1, 0, 0, 0, -3, -1)]));
        return { planned, plan: p.lastPlan, nodes: g.nodes.length, table: P.PrecisionPolicy.table(p.lastPlan, '9.0'), numerics: P.PrecisionPolicy.numericsTable(fakeOutputs), rows: P.PrecisionPolicy.numerics(fakeOutputs), numericsLayers: p.lastNumerics.map((n) => n.layer), runs: recipes.map((r) => P.support(r, '10.0')) };
      },
      check: (v) => (v.plan.length !== v.planned.length || v.plan.some((d) => !recipes.includes(d.recipe)) ? `plan ${show(v.plan)}` : !v.table.includes('layer') || v.rows.length !== new Set(v.numericsLayers).size || typeof v.numerics !== 'string' ? 'tables' : v.runs.some((x) => x !== 'native' && x !== 'emulated') ? `support ${v.runs}` : undefined),
    });
  }
  for (const node of [0, 1, 2]) {
    out.push({
      name: `precision.planNativeGemm: matmul ${node} of the tiny GPT, fp8-tensorwise`,
      entry: ['precision.planNativeGemm', 'precision.operandFormat', 'precision.hasNativeRewrite'],
      expect: 'ok',
      run: () => {
        const g = tinyStep();
        const n = g.nodes.filter((m) => m.op === 'matmul')[node];
        const producers = new Map(g.nodes.flatMap((m) => m.outputs.map((o) => [o, m])));
        const roles = { heads: new Set(), blockOf: new Map(), blocks: 0, paramOf: () => null };
        const r = RECIPES['fp8-tensorwise'];
        return [P.hasNativeRewrite('fp8-tensorwise'), P.operandFormat(g, n.inputs[0], r, roles, producers, () => false), P.planNativeGemm(g, n, r, roles, producers, () => false, null)];
      },
      check: ([has, f, plan]) => (has !== true || !FAKE_QUANT_FORMATS.includes(f) ? `${has}, ${f}` : typeof plan === 'string' || (plan && plan.M > 0) ? undefined : `plan ${show(plan)}`),
    });
  }
  const bad = [
    ...['fp16', 'fp8', 'FP8-tensorwise', 'f32', 'mxfp4', 'int8', '', null, 5].map((r) => [`recipe ${show(r)}`, () => new P.PrecisionPolicy({ recipe: r })]),
    ...[{ keepFirstlast: false }, { precision: 'bf16' }, { minWeightElements: 1e300 }, { minWeightElements: -1 }, { minWeightElements: 1.5 }, { keepFirstLast: 'yes' }, { numerics: 1 }, { native: 'always' }, { fuseEpilogues: 'no' }, { scaleMode: 'ceil' }, { rules: 'all' }, { rules: [{ match: 5, recipe: 'bf16' }] }, { rules: [{ match: 'a', recipe: 'fp16' }] }, { rules: [{ match: 'a', recipe: 'bf16', recpe: 'x' }] }].map((o) => [`options ${show(o)}`, () => new P.PrecisionPolicy({ recipe: 'mxfp8', ...o })]),
    ...[null, 'mxfp8', [], 5].map((o) => [`options ${show(o)}`, () => new P.PrecisionPolicy(o)]), ['plan(null)', () => new P.PrecisionPolicy({ recipe: 'bf16' }).plan(null)],
    ['run({})', () => new P.PrecisionPolicy({ recipe: 'bf16' }).run({})], ['plan of a graph with a junk node', () => new P.PrecisionPolicy({ recipe: 'mxfp8' }).plan({ nodes: [{ phase: 'forward', op: 'matmul' }], values: [], params: {} })], ['run with a junk context', () => new P.PrecisionPolicy({ recipe: 'bf16' }).run(tinyStep(), { device: 5 })],
    ['clone(5)', () => new P.PrecisionPolicy({ recipe: 'bf16' }).clone(5)], ['clone to fp16', () => new P.PrecisionPolicy({ recipe: 'bf16' }).clone({ recipe: 'fp16' })],
    ['addRule junk', () => new P.PrecisionPolicy({ recipe: 'bf16' }).addRule(null)], ['addRule options junk', () => new P.PrecisionPolicy({ recipe: 'bf16' }).addRule({ match: 'a', recipe: 'bf16' }, { frist: true })],
    ['table(null)', () => P.PrecisionPolicy.table(null)], ['table([5])', () => P.PrecisionPolicy.table([5])], ['numerics(null)', () => P.PrecisionPolicy.numerics(null)],
    ['numerics of the wrong length', () => P.PrecisionPolicy.numerics({ 'numerics/a/0/a': [1, 2] })], ['numericsTable([null])', () => P.PrecisionPolicy.numericsTable([null])],
    ...[['fp16', '9.0'], ['bf16', 9], ['nvfp4', 'nine'], [null, null]].map(([r, cc]) => [`support(${show(r)}, ${show(cc)})`, () => P.support(r, cc)]),
    ...['fp16', null, 'FP8-blockwise'].map((r) => [`hasNativeRewrite(${show(r)})`, () => P.hasNativeRewrite(r)]), ['planNativeGemm junk', () => P.planNativeGemm(null, null, null, null, null, null, null)],
    ['planNativeGemm of a node not in the graph', () => P.planNativeGemm(tinyStep(), { op: 'matmul', inputs: [0, 1], outputs: [2], attrs: {} }, RECIPES['fp8-tensorwise'], { paramOf: () => null }, new Map(), () => false, null)],
    ['operandFormat junk', () => P.operandFormat(tinyStep(), 1e9, RECIPES.mxfp8, { paramOf: () => null }, new Map(), () => false)],
  ];
  bad.forEach(([what, f]) => out.push({ name: `precision.PrecisionPolicy: ${what}`, entry: ['precision.PrecisionPolicy', 'precision.support', 'precision.hasNativeRewrite', 'precision.planNativeGemm', 'precision.operandFormat'], expect: 'error', run: f }));
}

function fallbackCases(rng, out) {
  for (let i = 0; i < 18; i++) {
    const window = rng.int(2, 8);
    const badAt = rng.int(window + 1, window + 10);
    const kind = rng.pick(['NaN loss', 'spike', 'Infinity grad_norm', 'none']);
    const numerics = rng.bool(0.7);
    out.push({
      name: `precision.FallbackController: window ${window}, ${kind} at step ${badAt} #${i}`,
      entry: ['precision.FallbackController', 'precision.FallbackController#observe', 'precision.FallbackController#replay', 'precision.FallbackController#rewind', 'precision.checkFallbackOptions'],
      expect: 'ok',
      timeoutMs: 20_000,
      run: () => {
        const p = new P.PrecisionPolicy({ recipe: 'nvfp4', keepFirstLast: false, minWeightElements: 0, numerics });
        p.run(tinyStep());
        const c = new P.FallbackController(p, P.checkFallbackOptions({ window }));
        let decision = null;
        for (let s = 1; s <= badAt && !decision; s++) {
          const outputs = Object.fromEntries(p.lastNumerics.map((n) => [n.name, Float32Array.of(1 + 0.1 * (s % 3), 0, 0, 0, -4, -1)]));
          let loss = 3 - s / 100;
          if (s === badAt && kind === 'NaN loss') loss = NaN;
          if (s === badAt && kind === 'spike') loss = 100;
          if (s === badAt && kind === 'Infinity grad_norm') outputs.grad_norm = Float32Array.of(Infinity);
          decision = c.observe(s, loss, outputs);
        }
        c.rewind(badAt - 1);
        const again = new P.FallbackController(p.clone(), {});
        again.replay(c.history);
        return { decision, history: c.history, replayed: again.history.length };
      },
      check: ({ decision, history, replayed }) => {
        if (kind === 'none') return decision === null && !history.length ? undefined : `a fallback on a healthy run: ${show(decision)}`;
        if (!decision || !decision.events.length) return `no fallback after ${kind}`;
        if (decision.events.some((e) => P.DEMOTE[e.from] !== e.to)) return `demotions ${show(decision.events)}`;
        return replayed === history.length ? undefined : `replayed ${replayed} of ${history.length}`;
      },
    });
  }
  const ctl = () => new P.FallbackController(new P.PrecisionPolicy({ recipe: 'mxfp8' }));
  const bad = [
    ...[null, 5, 'x', [], { windw: 3 }, { toString: 3 }, { window: 0 }, { window: 1.5 }, { window: 1e300 }, { spikeFactor: 1 }, { spikeFactor: NaN }, { amaxJump: Infinity }, { snapshotEvery: 'sometimes' }].map((o) => [`checkFallbackOptions(${show(o)})`, () => P.checkFallbackOptions(o)]),
    ...[null, {}, 'policy'].map((p) => [`new (${show(p)})`, () => new P.FallbackController(p)]),
    ...[['x', 1, {}], [1.5, 1, {}], [-1, 1, {}], [1, '1', {}], [1, null, {}], [1, 1, null], [1, 1, { 'numerics/a/0/a': 'abc' }], [1, 1, { grad_norm: [] }]].map(([s, l, o]) => [`observe(${show(s)}, ${show(l)}, ${show(o)})`, () => ctl().observe(s, l, o)]),
    ...[null, [null], [{ step: 1, layer: 'a', from: 'fp16', to: 'bf16', reason: '' }], [{ step: -1, layer: 'a', from: 'mxfp8', to: 'bf16', reason: '' }], [{ layer: 5 }]].map((h) => [`replay(${show(h)})`, () => ctl().replay(h)]),
    ...['x', 1.5, NaN, -2, null].map((s) => [`rewind(${show(s)})`, () => ctl().rewind(s)]),
  ];
  bad.forEach(([what, f]) => out.push({ name: `precision.FallbackController: ${what}`, entry: ['precision.FallbackController', 'precision.checkFallbackOptions'], expect: 'error', run: f }));
}

export function cases(rng) {
  const out = [];
  for (const add of [quantizeCases, dequantizeCases, elementCases, blockCases, layoutCases, amaxCases, tensorCases, matmulCases, helperCases, policyCases, fallbackCases]) add(rng, out);
  return out;
}
