// @deepwell/core: every public export with valid random input (checked: data round-trips bit for
// bit, sizes add up, conversions round to nearest) and with bad input of every family — i32 data
// that is not an exact i32 (it was truncated and wrapped), lengths that do not match the shape (a
// RangeError after allocating), huge shapes, junk options and unknown keys, junk into the
// conversions, backends, buffers, the registry, the checks and DeepwellError itself.
import {
  CpuBackend,
  CpuBuffer,
  DTYPES,
  DTYPE_NAMES,
  DeepwellError,
  KernelRegistry,
  Tensor,
  bf16BitsToF32,
  byteSize,
  checkFunction,
  checkInteger,
  checkKeys,
  checkNumber,
  checkOneOf,
  checkRange,
  checkShape,
  cpuBackend,
  describe,
  dtypeFromSafetensors,
  dtypeInfo,
  editDistance,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  getBackend,
  hasBackend,
  hostLength,
  invalid,
  keep,
  leakStats,
  listBackends,
  packNibbles,
  parseDevice,
  registerBackend,
  scope,
  unpackNibbles,
  unregisterBackend,
} from '@deepwell/core';
import { BAD_INTEGERS, BAD_SHAPES, NON_FINITE, WRONG_TYPES, junk, makeRng, show } from '../lib.mjs';

const F32_MAX = 3.4028234663852886e38;
const CODES = ['INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH', 'DEVICE_MISMATCH', 'DISPOSED', 'DOUBLE_FREE', 'OUT_OF_MEMORY', 'NO_BACKEND', 'NO_KERNEL', 'CUDA_UNAVAILABLE', 'CUDA_ERROR', 'NATIVE_LOAD_FAILED', 'LIBRARY_UNAVAILABLE', 'ABORTED', 'TIMEOUT', 'PEER_FAILED', 'INTERNAL'];

/** A random shape of rank 0..4 with at most ~`max` elements (dims 0..9, mostly >= 1). */
function shapeOf(r, max = 256) {
  const rank = r.int(0, 4);
  const s = [];
  for (let i = 0; i < rank; i++) s.push(r.bool(0.08) ? 0 : r.int(1, 9));
  while (s.reduce((a, b) => a * b, 1) > max) s.pop();
  return s;
}
const numel = (s) => s.reduce((a, b) => a * b, 1);

/** A host array of `dtype` holding random storage for `n` elements. */
function hostData(r, dtype, n) {
  const len = hostLength(dtype, n);
  const Ctor = DTYPES[dtype].hostArray;
  if (dtype === 'i64') return BigInt64Array.from({ length: len }, () => BigInt(r.int(-(2 ** 31), 2 ** 31)) * BigInt(r.int(-(2 ** 20), 2 ** 20)));
  if (dtype === 'f32') return Float32Array.from({ length: len }, () => (r.bool(0.05) ? r.pick([NaN, Infinity, -Infinity, -0, 0]) : r.normals(1)[0] * 2 ** r.int(-60, 60)));
  if (dtype === 'i32') return Int32Array.from({ length: len }, () => r.int(-(2 ** 31), 2 ** 31 - 1));
  const bits = Ctor.BYTES_PER_ELEMENT * 8;
  return Ctor.from({ length: len }, () => r.int(0, 2 ** bits - 1));
}

/** Byte-exact equality of two array views (NaN payloads included). */
function sameBytes(a, b) {
  if (a.byteLength !== b.byteLength) return `byte lengths ${a.byteLength} and ${b.byteLength}`;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `byte ${i}: ${x[i]} vs ${y[i]}`;
  return undefined;
}

/** Run fn, dispose what it made (scope), and fail loudly if the CPU backend's bytes in use changed. */
function noLeak(fn) {
  const before = cpuBackend.memoryStats().inUse;
  let out;
  try {
    out = scope(fn);
  } finally {
    const after = cpuBackend.memoryStats().inUse;
    if (after !== before) throw new Error(`the CPU backend holds ${after - before} more bytes after the call (allocated before checking?)`);
  }
  return out;
}

/** A DeepwellError thrown by fn whose message must contain `needle` (else a plain Error: untyped). */
function errorNaming(fn, needle) {
  try {
    fn();
  } catch (e) {
    if (DeepwellError.is(e) && !e.message.includes(needle)) throw new Error(`the error does not name ${needle}: ${e.message}`);
    throw e;
  }
}

function tensorCases(rng, out) {
  // Valid random round trips, every dtype.
  for (let i = 0; i < 160; i++) {
    const dtype = DTYPE_NAMES[i % DTYPE_NAMES.length];
    let shape = shapeOf(rng);
    if (dtype === 'f4e2m1' && numel(shape) % 2) shape = [...shape, 2];
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `core.Tensor.from: ${dtype}[${shape}] round trip #${i}`,
      entry: ['core.Tensor.from', 'core.Tensor#toHost', 'core.Tensor#dispose'],
      expect: 'ok',
      run: () => {
        const data = hostData(makeRng(seed), dtype, numel(shape));
        const t = Tensor.from(data, shape, dtype);
        const got = { data, host: t.toHost(), shape: t.shape, numel: t.numel, bytes: t.bytes, dtype: t.dtype, device: t.device, text: t.toString() };
        t.dispose();
        t.dispose(); // a second dispose is a no-op
        return { ...got, disposed: t.disposed };
      },
      check: (v) =>
        sameBytes(v.host, v.data) ??
        (v.shape.join() !== shape.join() ? `shape ${v.shape}` : v.numel !== numel(shape) ? `numel ${v.numel}` : v.bytes !== byteSize(dtype, numel(shape)) ? `bytes ${v.bytes}` : v.dtype !== dtype || v.device !== 'cpu' ? `${v.dtype} on ${v.device}` : !v.disposed ? 'not disposed' : !v.text.includes(dtype) ? `toString ${v.text}` : undefined),
    });
  }
  // Plain arrays: f32 (rounded as float32 rounds) and i32 (exact over the whole range).
  for (let i = 0; i < 70; i++) {
    const dtype = i % 2 ? 'i32' : 'f32';
    const shape = shapeOf(rng, 64);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `core.Tensor.from: plain ${dtype} array [${shape}] #${i}`,
      entry: 'core.Tensor.from',
      expect: 'ok',
      run: () => {
        const r = makeRng(seed);
        const n = numel(shape);
        const data = dtype === 'i32' ? Array.from({ length: n }, () => r.pick([r.int(-(2 ** 31), 2 ** 31 - 1), 2 ** 31 - 1, -(2 ** 31), 0, -0])) : Array.from({ length: n }, () => (r.bool(0.1) ? r.pick([NaN, Infinity, -Infinity, F32_MAX, -F32_MAX, 1e-46]) : r.float(-1e6, 1e6)));
        return noLeak(() => ({ data, host: Array.from(Tensor.from(data, shape, dtype).toHost()) }));
      },
      check: ({ data, host }) => {
        for (let k = 0; k < data.length; k++) {
          const want = dtype === 'i32' ? data[k] | 0 : Math.fround(data[k]);
          if (!Object.is(host[k], want) && !(Number.isNaN(want) && Number.isNaN(host[k]))) return `[${k}] ${data[k]} stored as ${host[k]}`;
        }
        return undefined;
      },
    });
  }
  // i32 data that is not an exact i32: refused, naming the index (it was truncated and wrapped).
  const notI32 = [1.7, -0.5, NaN, Infinity, -Infinity, 3e9, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, 1e300, '5', null, undefined, true, 1n, {}, [], Symbol('x')];
  for (let i = 0; i < 90; i++) {
    const bad = notI32[i % notI32.length];
    const n = rng.int(1, 12);
    const at = rng.int(0, n - 1);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `core.Tensor.from: i32 data with ${show(bad)} at [${at}] of ${n}`,
      entry: 'core.Tensor.from',
      expect: 'error',
      run: () => {
        const r = makeRng(seed);
        const data = Array.from({ length: n }, () => r.int(-1000, 1000));
        data[at] = bad;
        return noLeak(() => errorNaming(() => Tensor.from(data, [n], 'i32'), `[${at}]`));
      },
    });
  }
  // f32 plain arrays with non-numbers or finite values beyond float32 (they became Infinity).
  for (let i = 0; i < 30; i++) {
    const bad = rng.pick(['1', null, undefined, true, 1n, {}, [], 1e39, -4e38, 1e300, -Number.MAX_VALUE]);
    const n = rng.int(1, 10);
    const at = rng.int(0, n - 1);
    out.push({
      name: `core.Tensor.from: f32 plain data with ${show(bad)} at [${at}]`,
      entry: 'core.Tensor.from',
      expect: 'error',
      run: () => {
        const data = Array.from({ length: n }, (_, k) => k * 0.5);
        data[at] = bad;
        return noLeak(() => errorNaming(() => Tensor.from(data, [n]), `[${at}]`));
      },
    });
  }
  // Lengths that do not match the shape: SHAPE_MISMATCH before anything is allocated.
  for (let i = 0; i < 90; i++) {
    const dtype = rng.pick(['f32', 'i32', 'bf16', 'u8', 'f8e4m3', 'i64', 'f4e2m1']);
    const shape = [rng.int(1, 8), rng.int(1, 8), 2];
    const want = hostLength(dtype, numel(shape));
    const len = Math.max(0, want + rng.pick([-want, -3, -1, 1, 2, 17, want]));
    const plain = (dtype === 'f32' || dtype === 'i32') && rng.bool();
    out.push({
      name: `core.Tensor.from: ${len} ${plain ? 'numbers' : 'elements'} for ${dtype}[${shape}]`,
      entry: 'core.Tensor.from',
      expect: 'error',
      run: () => noLeak(() => Tensor.from(plain ? Array.from({ length: len }, (_, k) => k) : dtype === 'i64' ? new BigInt64Array(len) : new DTYPES[dtype].hostArray(len), shape, dtype)),
    });
  }
  // Huge shapes with small data: refused by the size check, never attempted.
  for (let i = 0; i < 40; i++) {
    const shape = rng.pick([[2 ** 30, 2 ** 10], [2 ** 26, 2 ** 26], [2 ** 53], [2 ** 40], [65536, 65536, 4], [2 ** 31]]);
    const dtype = rng.pick(['f32', 'u8', 'bf16']);
    out.push({
      name: `core.Tensor.from: ${dtype}[${shape}] from 4 elements`,
      entry: 'core.Tensor.from',
      expect: 'error',
      run: () => noLeak(() => Tensor.from(dtype === 'f32' ? [1, 2, 3, 4] : new DTYPES[dtype].hostArray(4), shape, dtype)),
    });
  }
  for (let i = 0; i < 20; i++) {
    const shape = rng.pick([[2 ** 40], [2 ** 26, 2 ** 26], [2 ** 31, 2 ** 31], [2 ** 53]]);
    out.push({ name: `core.Tensor.empty: f32[${shape}]`, entry: 'core.Tensor.empty', expect: 'error', run: () => noLeak(() => Tensor.empty(shape, 'f32')) });
  }
  // Bad shapes, dtypes, data types and options.
  for (const [k, shape] of BAD_SHAPES.entries()) {
    out.push({ name: `core.Tensor.empty: shape ${show(shape)}`, entry: 'core.Tensor.empty', expect: 'error', run: () => noLeak(() => Tensor.empty(shape, 'f32')) });
    out.push({ name: `core.Tensor.from: shape ${show(shape)} #${k}`, entry: 'core.Tensor.from', expect: 'error', run: () => noLeak(() => Tensor.from([1, 2], shape)) });
  }
  for (const dtype of ['float32', 'F32', 'fp16', 'int32', 'bool', '', 'f8', 'e4m3', ...WRONG_TYPES]) {
    out.push({ name: `core.Tensor.empty: dtype ${show(dtype)}`, entry: 'core.Tensor.empty', expect: 'error', run: () => noLeak(() => Tensor.empty([2], dtype)) });
  }
  const wrongData = [['f32', () => new Float64Array(4)], ['f32', () => new Int32Array(4)], ['bf16', () => new Float32Array(4)], ['bf16', () => [1, 2, 3, 4]], ['i64', () => [1, 2, 3, 4]], ['u8', () => new Int8Array(4)], ['f16', () => new Uint8Array(8)], ['i32', () => new Uint32Array(4)], ['f32', () => 'abcd'], ['f32', () => null], ['f32', () => ({ length: 4 })], ['f4e2m1', () => [1, 2]]];
  for (const [dtype, make] of wrongData) out.push({ name: `core.Tensor.from: ${show(make())} as ${dtype}[4]`, entry: 'core.Tensor.from', expect: 'error', run: () => noLeak(() => Tensor.from(make(), [4], dtype)) });
  const badOptions = [null, 'cpu', 5, [], () => 1, { devic: 'cpu' }, { device: 'gpu' }, { device: 'cuda:-1' }, { device: 'cuda:01' }, { device: 5 }, { device: null }, { dtype: 'f32' }, { device: 'cpu', extra: 1 }, { device: 'cuda:99999' }];
  for (const [k, o] of badOptions.entries()) {
    out.push({ name: `core.Tensor.from: options ${show(o)}`, entry: 'core.Tensor.from', expect: 'error', run: () => noLeak(() => Tensor.from([1], [1], 'f32', o)) });
    out.push({ name: `core.Tensor.empty: options ${show(o)} #${k}`, entry: 'core.Tensor.empty', expect: 'error', run: () => noLeak(() => Tensor.empty([1], 'f32', o)) });
  }
  for (const o of [{}, { device: 'cpu' }, undefined, { device: undefined }]) {
    out.push({ name: `core.Tensor.empty: options ${show(o)}`, entry: 'core.Tensor.empty', expect: 'ok', run: () => noLeak(() => Tensor.empty([3], 'f32', o).numel), check: (n) => (n === 3 ? undefined : `numel ${n}`) });
  }
  out.push({ name: 'core.Tensor: the constructor is private', entry: 'core.Tensor', expect: 'error', run: () => new Tensor([1], 'f32', 'cpu', cpuBackend, { device: 'cpu', bytes: 4 }) });
  // Methods: to, toHost, buffer and use after dispose.
  for (let i = 0; i < 30; i++) {
    const dtype = rng.pick(['f32', 'bf16', 'u16', 'i32', 'f8e5m2']);
    const shape = shapeOf(rng, 64);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `core.Tensor#to: ${dtype}[${shape}] to the CPU #${i}`,
      entry: ['core.Tensor#to', 'core.Tensor#toHost'],
      expect: 'ok',
      run: () =>
        noLeak(() => {
          const data = hostData(makeRng(seed), dtype, numel(shape));
          const t = Tensor.from(data, shape, dtype);
          const u = t.to('cpu');
          return { same: u !== t, problem: sameBytes(u.toHost(), data) };
        }),
      check: (v) => (!v.same ? 'to() returned the same tensor' : v.problem),
    });
  }
  for (const device of [...WRONG_TYPES.slice(0, 10), 'gpu', 'cuda:x', 'CPU', 'cuda:7', 'cuda:0']) {
    out.push({ name: `core.Tensor#to: device ${show(device)}`, entry: 'core.Tensor#to', expect: 'error', run: () => noLeak(() => Tensor.from([1, 2], [2]).to(device)) });
  }
  for (const use of ['toHost', 'to', 'buffer', 'bytes-then-toHost']) {
    out.push({
      name: `core.Tensor#dispose: ${use} after dispose`,
      entry: 'core.Tensor#dispose',
      expect: 'error',
      run: () => {
        const t = Tensor.from([1, 2, 3], [3]);
        t.dispose();
        if (use === 'toHost' || use === 'bytes-then-toHost') return (void t.bytes, t.toHost());
        if (use === 'to') return t.to('cpu');
        return t.buffer;
      },
    });
  }
}

function scopeCases(rng, out) {
  for (let i = 0; i < 24; i++) {
    const made = rng.int(1, 6);
    const kept = rng.int(0, made - 1);
    const how = rng.pick(['return', 'array', 'object', 'keep']);
    out.push({
      name: `core.scope: ${made} tensors, one kept by ${how} #${i}`,
      entry: ['core.scope', 'core.keep'],
      expect: 'ok',
      run: () => {
        const before = cpuBackend.memoryStats().inUse;
        let all = [];
        const result = scope(() => {
          all = Array.from({ length: made }, (_, k) => Tensor.from([k, k + 1], [2]));
          const t = all[kept];
          if (how === 'keep') return (keep(t), null);
          return how === 'return' ? t : how === 'array' ? [t] : { t };
        });
        const alive = all.map((t) => !t.disposed);
        all[kept].dispose();
        return { alive, result: result === null ? null : 'x', back: cpuBackend.memoryStats().inUse === before };
      },
      check: (v) => (v.alive.filter(Boolean).length !== 1 || !v.alive[kept] ? `alive ${v.alive}` : !v.back ? 'bytes left in use' : undefined),
    });
  }
  for (const fn of [5, null, undefined, 'fn', {}, [], Symbol('s'), 1n]) out.push({ name: `core.scope: ${show(fn)}`, entry: 'core.scope', expect: 'error', run: () => scope(fn) });
  out.push({ name: 'core.scope: an async function', entry: 'core.scope', expect: 'error', run: () => scope(async () => Tensor.from([1], [1])) });
  out.push({ name: 'core.scope: fn throws a DeepwellError, the tensors made are freed', entry: 'core.scope', expect: 'error', run: () => noLeak(() => scope(() => (Tensor.from([1], [1]), invalid('x', 'y', 1)))) });
  for (const t of [5, null, undefined, {}, [], 'tensor', cpuBackend]) out.push({ name: `core.keep: ${show(t)}`, entry: 'core.keep', expect: 'error', run: () => keep(t) });
  for (let i = 0; i < 3; i++) out.push({ name: `core.leakStats #${i}`, entry: 'core.leakStats', expect: 'ok', run: () => leakStats(), check: (s) => (Number.isInteger(s.collectedWithoutDispose) ? undefined : `leakStats ${show(s)}`) });
}

function dtypeCases(rng, out) {
  for (const name of DTYPE_NAMES) {
    out.push({ name: `core.dtypeInfo: ${name}`, entry: 'core.dtypeInfo', expect: 'ok', run: () => dtypeInfo(name), check: (d) => (d.name === name ? undefined : `name ${d.name}`) });
    out.push({ name: `core.dtypeFromSafetensors: ${DTYPES[name].safetensors}`, entry: 'core.dtypeFromSafetensors', expect: 'ok', run: () => dtypeFromSafetensors(DTYPES[name].safetensors), check: (d) => (d.name === name ? undefined : `gave ${d.name}`) });
  }
  for (const bad of ['float32', 'F32', 'f64', '', 'BF16', ' f32', 'toString', '__proto__', ...WRONG_TYPES]) {
    out.push({ name: `core.dtypeInfo: ${show(bad)}`, entry: 'core.dtypeInfo', expect: 'error', run: () => dtypeInfo(bad) });
  }
  for (const bad of ['f32', 'F64', 'F8_E4M3FNUZ', 'float', '', 'toString', ...WRONG_TYPES]) {
    out.push({ name: `core.dtypeFromSafetensors: ${show(bad)}`, entry: 'core.dtypeFromSafetensors', expect: 'error', run: () => dtypeFromSafetensors(bad) });
  }
  for (let i = 0; i < 50; i++) {
    const dtype = rng.pick(DTYPE_NAMES);
    const n = 2 * rng.int(0, 2 ** rng.int(0, 40));
    const bits = DTYPES[dtype].bits;
    out.push({ name: `core.byteSize: ${n} × ${dtype}`, entry: ['core.byteSize', 'core.hostLength'], expect: 'ok', run: () => [byteSize(dtype, n), hostLength(dtype, n)], check: ([b, h]) => (b !== (n * bits) / 8 ? `byteSize ${b}` : h !== b / DTYPES[dtype].hostArray.BYTES_PER_ELEMENT ? `hostLength ${h}` : undefined) });
  }
  for (let i = 0; i < 40; i++) {
    const [dtype, n] = rng.bool(0.3) ? ['f4e2m1', 2 * rng.int(0, 100) + 1] : [rng.pick(DTYPE_NAMES), rng.pick(BAD_INTEGERS.filter((v) => !Number.isSafeInteger(v) || v < 0).concat(WRONG_TYPES.slice(0, 6)))];
    const f = i % 2 ? byteSize : hostLength;
    out.push({ name: `core.${f.name}: ${show(n)} × ${dtype}`, entry: `core.${f.name}`, expect: 'error', run: () => f(dtype, n) });
  }
  // 16-bit conversions: round to nearest on random floats, exact on every representable value.
  const nearest = (x, toBits, fromBits) => {
    const h = toBits(x);
    const y = fromBits(h);
    if (Number.isNaN(x)) return Number.isNaN(y) ? undefined : `NaN became ${y}`;
    // Past the largest finite value plus half a step, IEEE rounding overflows to ±Infinity.
    const top = fromBits(0x7bff) === 65504 && toBits === f32ToF16Bits ? 65520 : 2 ** 128 * (1 - 2 ** -9);
    if (!Number.isFinite(y)) return Math.abs(x) >= top && Math.sign(y) === Math.sign(x) ? undefined : `${x} → ${y}`;
    for (const n of [h - 1, h + 1]) {
      if (n < 0 || n > 0xffff || (n & 0x8000) !== (h & 0x8000)) continue;
      const z = fromBits(n);
      if (Number.isFinite(z) && Math.abs(z - x) < Math.abs(y - x)) return `${x} → ${y}, but ${z} is nearer`;
    }
    return undefined;
  };
  for (let i = 0; i < 60; i++) {
    const seed = rng.int(0, 2 ** 31);
    const [to, from, name] = i % 2 ? [f32ToBf16Bits, bf16BitsToF32, 'bf16'] : [f32ToF16Bits, f16BitsToF32, 'f16'];
    out.push({
      name: `core.${to.name}: 64 random floats to ${name} and back #${i}`,
      entry: [`core.${to.name}`, `core.${from.name}`],
      expect: 'ok',
      run: () => {
        const r = makeRng(seed);
        const f = new Float32Array(1);
        const u = new Uint32Array(f.buffer);
        const problems = [];
        for (let k = 0; k < 64; k++) {
          u[0] = Math.floor(r.next() * 2 ** 32) >>> 0;
          const x = k % 4 ? Math.fround(r.normals(1)[0] * 2 ** r.int(-30, 20)) : f[0];
          const p = nearest(x, to, from);
          if (p) problems.push(p);
          const bits = r.int(0, 0xffff);
          const v = from(bits);
          if (!Number.isNaN(v) && to(v) !== bits && !(v === 0 && (to(v) & 0x7fff) === 0)) problems.push(`bits ${bits} → ${v} → ${to(v)}`);
        }
        return problems;
      },
      check: (p) => p[0],
    });
  }
  for (const bad of [Symbol('x'), 1n, '1', null, undefined, {}, [], true]) {
    for (const f of [f32ToBf16Bits, f32ToF16Bits]) out.push({ name: `core.${f.name}: ${show(bad)}`, entry: `core.${f.name}`, expect: 'error', run: () => f(bad) });
  }
  for (const bad of [-1, 65536, 1.5, NaN, Infinity, 2 ** 40, '7', null, 1n, Symbol('b')]) {
    for (const f of [bf16BitsToF32, f16BitsToF32]) out.push({ name: `core.${f.name}: ${show(bad)}`, entry: `core.${f.name}`, expect: 'error', run: () => f(bad) });
  }
  // FP4 nibble packing.
  for (let i = 0; i < 40; i++) {
    const n = 2 * rng.int(0, 40);
    const seed = rng.int(0, 2 ** 31);
    const typed = rng.bool();
    out.push({
      name: `core.packNibbles: ${n} codes round trip (${typed ? 'Uint8Array' : 'array'}) #${i}`,
      entry: ['core.packNibbles', 'core.unpackNibbles'],
      expect: 'ok',
      run: () => {
        const r = makeRng(seed);
        const codes = Array.from({ length: n }, () => r.int(0, 15));
        const packed = packNibbles(typed ? Uint8Array.from(codes) : codes);
        return { codes, packed, back: Array.from(unpackNibbles(packed)) };
      },
      check: ({ codes, packed, back }) => (packed.length !== n / 2 ? `packed ${packed.length} bytes` : back.join() !== codes.join() ? 'codes differ after unpacking' : codes.length && packed[0] !== (codes[0] | (codes[1] << 4)) ? 'element 0 not in the low nibble' : undefined),
    });
  }
  for (const bad of [16, -1, 1.5, NaN, '3', null, undefined, Infinity, 255, Symbol('n')]) {
    out.push({ name: `core.packNibbles: code ${show(bad)}`, entry: 'core.packNibbles', expect: 'error', run: () => packNibbles([1, 2, bad, 3]) });
  }
  for (const bad of [[1, 2, 3], new Uint8Array(5), null, 5, 'ab', {}, new BigInt64Array(2), new DataView(new ArrayBuffer(2))]) {
    out.push({ name: `core.packNibbles: ${show(bad)}`, entry: 'core.packNibbles', expect: 'error', run: () => packNibbles(bad) });
  }
  for (const bad of [null, 5, [1, 2], 'ab', new Uint16Array(2), new Int8Array(2), {}]) out.push({ name: `core.unpackNibbles: ${show(bad)}`, entry: 'core.unpackNibbles', expect: 'error', run: () => unpackNibbles(bad) });
}

/** A minimal Backend over host memory, for registering under a spare 'cuda:N' name. */
function fakeBackend(device) {
  const inner = new CpuBackend();
  return {
    device,
    alloc: (b) => inner.alloc(b),
    free: (b) => inner.free(b),
    write: (d, s, o) => inner.write(d, s, o),
    read: (s, d, o) => inner.read(s, d, o),
    copy: (d, s, b, o1, o2) => inner.copy(d, s, b, o1, o2),
    synchronize: () => {},
    memoryStats: () => inner.memoryStats(),
  };
}

function backendCases(rng, out) {
  for (const d of ['cpu', 'cuda', 'cuda:0', 'cuda:1', 'cuda:9999', `cuda:${rng.int(0, 9999)}`]) {
    out.push({ name: `core.parseDevice: ${d}`, entry: 'core.parseDevice', expect: 'ok', run: () => parseDevice(d), check: (v) => (v === (d === 'cuda' ? 'cuda:0' : d) ? undefined : `gave ${v}`) });
  }
  for (const d of ['gpu', 'CPU', 'cuda:', 'cuda:-1', 'cuda:01', 'cuda:10000', 'cuda:1.5', 'cuda:0 ', ' cpu', 'cuda:1e3', 'mps', ...WRONG_TYPES]) {
    out.push({ name: `core.parseDevice: ${show(d)}`, entry: 'core.parseDevice', expect: 'error', run: () => parseDevice(d) });
    out.push({ name: `core.getBackend: ${show(d)}`, entry: 'core.getBackend', expect: 'error', run: () => getBackend(d) });
    out.push({ name: `core.hasBackend: ${show(d)}`, entry: 'core.hasBackend', expect: 'error', run: () => hasBackend(d) });
    out.push({ name: `core.unregisterBackend: ${show(d)}`, entry: 'core.unregisterBackend', expect: 'error', run: () => unregisterBackend(d) });
  }
  out.push({ name: 'core.getBackend: cpu', entry: ['core.getBackend', 'core.hasBackend', 'core.listBackends'], expect: 'ok', run: () => [getBackend('cpu') === cpuBackend, hasBackend('cpu'), listBackends().includes('cpu')], check: (v) => (v.every(Boolean) ? undefined : `cpu backend ${v}`) });
  for (let i = 0; i < 8; i++) {
    const d = `cuda:${rng.int(5000, 9999)}`;
    out.push({ name: `core.getBackend: unregistered ${d}`, entry: 'core.getBackend', expect: 'error', run: () => (hasBackend(d) ? invalid('an unregistered device', 'this case', d) : getBackend(d)) });
  }
  // Registering a real (fake) backend under a spare name, using it, and taking it away.
  for (let i = 0; i < 12; i++) {
    const d = `cuda:${rng.int(5000, 9999)}`;
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `core.registerBackend: a host backend as ${d}, a tensor through it #${i}`,
      entry: ['core.registerBackend', 'core.unregisterBackend', 'core.Tensor#to'],
      expect: 'ok',
      run: () => {
        registerBackend(fakeBackend(d));
        try {
          const data = hostData(makeRng(seed), 'f32', 6);
          return scope(() => {
            const t = Tensor.from(data, [2, 3], 'f32', { device: d });
            return { problem: sameBytes(t.to('cpu').toHost(), data), device: t.device };
          });
        } finally {
          unregisterBackend(d);
        }
      },
      check: (v) => v.problem ?? (v.device !== d ? `device ${v.device}` : undefined),
    });
  }
  const notBackends = [null, 5, 'cpu', {}, { device: 'cuda:3' }, { device: 'cuda:3', alloc: () => 0 }, { device: 'gpu', alloc() {}, free() {}, write() {}, read() {}, copy() {}, synchronize() {}, memoryStats() {} }, { ...fakeBackend('cuda:3'), copy: 5 }];
  for (const b of notBackends) out.push({ name: `core.registerBackend: ${show(b)}`, entry: 'core.registerBackend', expect: 'error', run: () => registerBackend(b) });
  // checkRange.
  for (let i = 0; i < 30; i++) {
    const size = rng.int(0, 4096);
    const off = rng.int(0, size);
    const n = rng.int(0, size - off);
    out.push({ name: `core.checkRange: ${n} at ${off} of ${size}`, entry: 'core.checkRange', expect: 'ok', run: () => checkRange('x', size, off, n) });
    const [o2, n2] = rng.bool() ? [off, size - off + rng.int(1, 100)] : [rng.pick(BAD_INTEGERS), n];
    out.push({ name: `core.checkRange: ${show(n2)} at ${show(o2)} of ${size}`, entry: 'core.checkRange', expect: 'error', run: () => checkRange('x', size, o2, n2) });
  }
  for (const [what, size] of [[5, 10], ['x', 'a'], ['x', NaN], ['x', -1], [null, 4]]) out.push({ name: `core.checkRange: what ${show(what)}, size ${show(size)}`, entry: 'core.checkRange', expect: 'error', run: () => checkRange(what, size, 0, 1) });
  // CpuBackend and CpuBuffer.
  for (let i = 0; i < 30; i++) {
    const bytes = rng.int(0, 2048);
    const seed = rng.int(0, 2 ** 31);
    out.push({
      name: `core.CpuBackend: alloc ${bytes}, write, copy, read, free #${i}`,
      entry: ['core.CpuBackend#alloc', 'core.CpuBackend#write', 'core.CpuBackend#copy', 'core.CpuBackend#read', 'core.CpuBackend#free', 'core.CpuBackend#memoryStats', 'core.CpuBackend#synchronize', 'core.CpuBackend#resetPeak', 'core.CpuBuffer'],
      expect: 'ok',
      run: () => {
        const b = new CpuBackend();
        const r = makeRng(seed);
        const src = Uint8Array.from({ length: bytes }, () => r.int(0, 255));
        const x = b.alloc(bytes);
        const y = b.alloc(bytes);
        b.write(x, src);
        b.copy(y, x, bytes);
        const back = new Uint8Array(bytes);
        b.read(y, back);
        b.synchronize();
        const peak = b.memoryStats().peak;
        b.free(x);
        b.free(y);
        b.resetPeak();
        return { problem: sameBytes(back, src), peak, stats: b.memoryStats(), isBuffer: x instanceof CpuBuffer };
      },
      check: (v) => v.problem ?? (v.peak !== 2 * bytes ? `peak ${v.peak}` : v.stats.inUse !== 0 || v.stats.allocations !== 0 || v.stats.peak !== 0 ? `stats ${show(v.stats)}` : !v.isBuffer ? 'not a CpuBuffer' : undefined),
    });
  }
  const misuse = [
    ['alloc junk', (b, bad) => b.alloc(bad)],
    ['alloc 2^40', (b) => b.alloc(2 ** 40)],
    ['double free', (b) => { const x = b.alloc(4); b.free(x); b.free(x); }],
    ['free of another backend\'s buffer', (b) => b.free(cpuBackend.alloc(4))],
    ['free of a CpuBuffer made directly', (b) => b.free(new CpuBuffer(8))],
    ['free junk', (b) => b.free({ device: 'cpu', bytes: 4 })],
    ['write past the end', (b) => b.write(b.alloc(4), new Uint8Array(8))],
    ['write at a bad offset', (b, bad) => b.write(b.alloc(8), new Uint8Array(2), bad)],
    ['write of junk', (b) => b.write(b.alloc(8), [1, 2])],
    ['read past the end', (b) => b.read(b.alloc(4), new Uint8Array(4), 1)],
    ['read into junk', (b) => b.read(b.alloc(4), 'abcd')],
    ['copy too many bytes', (b) => b.copy(b.alloc(4), b.alloc(8), 8)],
    ['copy a junk count', (b, bad) => b.copy(b.alloc(4), b.alloc(4), bad)],
    ['read after free', (b) => { const x = b.alloc(4); b.free(x); b.read(x, new Uint8Array(4)); }],
  ];
  for (let i = 0; i < 42; i++) {
    const [what, f] = misuse[i % misuse.length];
    const bad = rng.pick([-1, 0.5, NaN, Infinity, 2 ** 53, 2 ** 40, '3', null, {}, 1n, Symbol('o')]);
    out.push({ name: `core.CpuBackend: ${what} (${show(bad)}) #${i}`, entry: ['core.CpuBackend#alloc', 'core.CpuBackend#free', 'core.CpuBackend#write', 'core.CpuBackend#read', 'core.CpuBackend#copy'], expect: 'error', run: () => f(new CpuBackend(), bad) });
  }
  for (const n of [-1, 2 ** 60, 1.5, NaN, '3', null, Symbol('b'), 2 ** 34]) out.push({ name: `core.CpuBuffer: new (${show(n)})`, entry: 'core.CpuBuffer', expect: 'error', run: () => new CpuBuffer(n) });
  out.push({ name: 'core.CpuBuffer: data after release', entry: 'core.CpuBuffer', expect: 'error', run: () => { const b = new CpuBuffer(4); b.release(); return b.data; } });
}

function registryCases(rng, out) {
  const candidate = (op, name, priority, fits, extra = {}) => ({ op, backend: 'cpu', name, priority, supports: (p) => (fits(p) ? true : `not ${p?.n}`), run: (p) => p.n * 2, ...extra });
  for (let i = 0; i < 40; i++) {
    const k = rng.int(1, 5);
    const n = rng.int(0, 9);
    const prios = Array.from({ length: k }, () => rng.int(-1000, 1000));
    const limits = Array.from({ length: k }, () => rng.int(0, 9));
    out.push({
      name: `core.KernelRegistry: ${k} candidates, a call with n = ${n} #${i}`,
      entry: ['core.KernelRegistry#register', 'core.KernelRegistry#select', 'core.KernelRegistry#explain', 'core.KernelRegistry#dispatch', 'core.KernelRegistry#summary', 'core.KernelRegistry#resetSummary', 'core.KernelRegistry#candidates', 'core.KernelRegistry#ops', 'core.KernelRegistry#unregister'],
      expect: 'either',
      run: () => {
        const reg = new KernelRegistry();
        prios.forEach((p, j) => reg.register(candidate('double', `k${j}`, p, (q) => q.n <= limits[j], j === 0 ? { workspace: () => 16 } : {})));
        const e = reg.explain('double', { n });
        const got = { ops: reg.ops(), count: reg.candidates('double').length, selected: e.selected, text: e.text };
        got.result = reg.dispatch('double', { n }); // NO_KERNEL when none fits
        got.summary = reg.summary();
        reg.resetSummary();
        got.after = reg.summary().length;
        got.removed = reg.unregister('double', 'k0') && !reg.unregister('double', 'k0');
        return got;
      },
      check: (v) => {
        const fits = prios.map((p, j) => [p, j]).filter(([, j]) => n <= limits[j]).sort((a, b) => b[0] - a[0]);
        if (v.ops.join() !== 'double' || v.count !== k) return `ops ${v.ops}, ${v.count} candidates`;
        if (!fits.length) return `no kernel fits, yet dispatch returned ${v.result}`;
        if (v.result !== 2 * n) return `dispatch gave ${v.result}`;
        if (!v.text.includes(v.selected) || v.summary.length !== 1 || v.summary[0].calls !== 1 || v.after !== 0 || !v.removed) return `explain/summary: ${v.text} ${show(v.summary)}`;
        return prios[Number(v.selected.slice(1))] === fits[0][0] ? undefined : `selected ${v.selected}, not the highest-priority fit`;
      },
    });
  }
  const bad = [null, {}, { op: '', backend: 'cpu', name: 'a', priority: 0, supports: () => true, run: () => 0 }, { op: 'x', backend: 'cpu', name: 'a', priority: 0.5, supports: () => true, run: () => 0 }, { op: 'x', backend: 'cpu', name: 'a', priority: 1e9, supports: () => true, run: () => 0 }, { op: 'x', backend: 'cpu', name: 'a', priority: 0, supports: 'yes', run: () => 0 }, { op: 'x', backend: 'cpu', name: 'a', priority: 0, supports: () => true }, { op: 'x', backend: 'cpu', name: 'a', priority: 0, supports: () => true, run: () => 0, workspace: 16 }, { op: 5, backend: 'cpu', name: 'a', priority: 0, supports: () => true, run: () => 0 }, { op: 'x', backend: null, name: 'a', priority: NaN, supports: () => true, run: () => 0 }];
  for (const c of bad) out.push({ name: `core.KernelRegistry#register: ${show(c)}`, entry: 'core.KernelRegistry#register', expect: 'error', run: () => new KernelRegistry().register(c) });
  out.push({ name: 'core.KernelRegistry#register: the same name twice', entry: 'core.KernelRegistry#register', expect: 'error', run: () => { const r = new KernelRegistry(); r.register(candidate('x', 'a', 0, () => true)); r.register(candidate('x', 'a', 1, () => true)); } });
  for (const op of [Symbol('op'), 5, null, undefined, {}, 1n]) {
    for (const m of ['select', 'explain', 'dispatch', 'candidates', 'unregister']) out.push({ name: `core.KernelRegistry#${m}: op ${show(op)}`, entry: `core.KernelRegistry#${m}`, expect: 'error', run: () => new KernelRegistry()[m](op, {}) });
  }
  for (const params of [null, undefined, 5, 'x', { n: NaN }, Symbol('p')]) {
    out.push({
      name: `core.KernelRegistry#explain: supports() throwing on ${show(params)}`,
      entry: 'core.KernelRegistry#explain',
      expect: 'ok',
      run: () => { const r = new KernelRegistry(); r.register({ op: 'x', backend: 'cpu', name: 'a', priority: 0, supports: (p) => p.n.toFixed(), run: () => 0 }); return r.explain('x', params); },
      check: (e) => (e.selected === null && e.text.includes('a') ? undefined : `explain ${show(e)}`),
    });
    out.push({ name: `core.KernelRegistry#select: nothing fits ${show(params)}`, entry: 'core.KernelRegistry#select', expect: 'error', run: () => { const r = new KernelRegistry(); r.register(candidate('x', 'a', 0, () => false)); return r.select('x', params); } });
  }
}

function checkCases(rng, out) {
  for (let i = 0; i < 40; i++) {
    const code = rng.pick(CODES);
    const details = rng.bool() ? { n: rng.int(0, 9) } : undefined;
    out.push({
      name: `core.DeepwellError: ${code} #${i}`,
      entry: ['core.DeepwellError', 'core.DeepwellError.is'],
      expect: 'ok',
      run: () => { const e = new DeepwellError(code, `m${i}`, { cause: i, details }); return { e, is: DeepwellError.is(e), not: DeepwellError.is(new Error('x')) || DeepwellError.is(null) }; },
      check: ({ e, is, not }) => (e.code !== code || e.message !== `m${i}` || e.cause !== i || !is || not || Object.isFrozen(e.details) !== true ? `error ${e.code} ${e.message}` : undefined),
    });
  }
  for (const [code, msg, opts] of [['BOGUS', 'x', {}], [5, 'x', {}], ['INTERNAL', 5, {}], ['INTERNAL', Symbol('m'), {}], ['INTERNAL', 'x', 5], ['INTERNAL', 'x', { details: 5 }], ['INTERNAL', 'x', { details: null }], [null, null, null], [undefined, undefined, undefined], ['invalid_argument', 'x', {}]]) {
    out.push({ name: `core.DeepwellError: new (${show(code)}, ${show(msg)}, ${show(opts)})`, entry: 'core.DeepwellError', expect: 'error', run: () => new DeepwellError(code, msg, opts) });
  }
  for (const v of [...WRONG_TYPES, ...BAD_INTEGERS, 'x'.repeat(100), Array(20).fill(1), new Float32Array(3), Object.create(null)]) {
    out.push({ name: `core.describe: ${show(v)}`, entry: 'core.describe', expect: 'ok', run: () => describe(v), check: (s) => (typeof s === 'string' && s.length > 0 && s.length < 120 ? undefined : `describe gave ${show(s)}`) });
  }
  for (let i = 0; i < 10; i++) {
    const v = junk(rng);
    out.push({ name: `core.invalid: received ${show(v)}`, entry: 'core.invalid', expect: 'error', run: () => invalid('X', 'Y', v) });
  }
  for (const [x, y, code] of [[Symbol('x'), 'y', undefined], ['x', Symbol('y'), undefined], [null, 5, undefined], ['x', 'y', 'BOGUS'], ['x', 'y', 'SHAPE_MISMATCH']]) {
    out.push({ name: `core.invalid: (${show(x)}, ${show(y)}, code ${show(code)})`, entry: 'core.invalid', expect: 'error', run: () => invalid(x, y, 1, code) });
  }
  // The shared checks: valid inputs pass through, bad ones are refused.
  for (let i = 0; i < 50; i++) {
    const min = rng.int(-100, 100);
    const max = min + rng.int(0, 1000);
    const good = rng.int(min, max);
    const bad = rng.pick([min - 1, max + 1, good + 0.5, NaN, Infinity, String(good), null, 1n * BigInt(good)]);
    out.push({ name: `core.checkInteger: ${good} in [${min}, ${max}]`, entry: 'core.checkInteger', expect: 'ok', run: () => checkInteger(good, 'v', min, max), check: (v) => (v === good ? undefined : `gave ${v}`) });
    out.push({ name: `core.checkInteger: ${show(bad)} in [${min}, ${max}]`, entry: 'core.checkInteger', expect: 'error', run: () => checkInteger(bad, 'v', min, max) });
    const x = rng.float(min, max);
    out.push({ name: `core.checkNumber: ${x} in [${min}, ${max}]`, entry: 'core.checkNumber', expect: 'ok', run: () => checkNumber(x, 'v', { min, max }), check: (v) => (v === x ? undefined : `gave ${v}`) });
    out.push({ name: `core.checkNumber: ${show(bad)} above ${max}`, entry: 'core.checkNumber', expect: 'error', run: () => checkNumber(typeof bad === 'number' && Number.isFinite(bad) ? Math.min(bad, max) : bad, 'v', { above: max }) });
  }
  for (const range of [null, 5, 'x', { min: '1' }, { max: null }, { above: 1n }]) out.push({ name: `core.checkNumber: range ${show(range)}`, entry: 'core.checkNumber', expect: 'error', run: () => checkNumber(1, 'v', range) });
  for (let i = 0; i < 20; i++) {
    const s = shapeOf(rng);
    out.push({ name: `core.checkShape: [${s}]`, entry: 'core.checkShape', expect: 'ok', run: () => checkShape(s), check: (v) => (v.join() === s.join() && Object.isFrozen(v) ? undefined : `gave ${v}`) });
  }
  for (const s of BAD_SHAPES.filter((b) => !(Array.isArray(b) && b.every(Number.isSafeInteger) && b.every((d) => d >= 0) && Number.isSafeInteger(numel(b))))) out.push({ name: `core.checkShape: ${show(s)}`, entry: 'core.checkShape', expect: 'error', run: () => checkShape(s) });
  const allowed = ['floor', 'rceil', 'none'];
  for (const v of allowed) out.push({ name: `core.checkOneOf: ${v}`, entry: 'core.checkOneOf', expect: 'ok', run: () => checkOneOf(v, allowed, 'mode'), check: (r) => (r === v ? undefined : `gave ${r}`) });
  for (const v of ['Floor', '', 'toString', ...WRONG_TYPES.slice(0, 8)]) out.push({ name: `core.checkOneOf: ${show(v)}`, entry: 'core.checkOneOf', expect: 'error', run: () => checkOneOf(v, allowed, 'mode') });
  for (const a of [null, 'abc', [1, 2], {}, [Symbol('x')]]) out.push({ name: `core.checkOneOf: allowed ${show(a)}`, entry: 'core.checkOneOf', expect: 'error', run: () => checkOneOf('a', a, 'x') });
  for (const f of [() => 1, function named() {}, class A {}, Math.max]) out.push({ name: `core.checkFunction: ${show(f)}`, entry: 'core.checkFunction', expect: 'ok', run: () => checkFunction(f, 'f') === f, check: (v) => (v ? undefined : 'not returned') });
  for (const f of WRONG_TYPES.filter((v) => typeof v !== 'function')) out.push({ name: `core.checkFunction: ${show(f)}`, entry: 'core.checkFunction', expect: 'error', run: () => checkFunction(f, 'f') });
  const known = ['lr', 'beta1', 'beta2', 'weightDecay', 'eps'];
  for (let i = 0; i < 25; i++) {
    const keys = known.filter(() => rng.bool());
    const obj = Object.fromEntries(keys.map((k) => [k, rng.float()]));
    out.push({ name: `core.checkKeys: { ${keys} }`, entry: 'core.checkKeys', expect: 'ok', run: () => checkKeys({ ...obj, unset: undefined }, known, 'AdamW') });
    const typo = rng.pick(['lr ', 'Lr', 'beta_1', 'weight_decay', 'epsilon', 'learningRate', 'toString', '__proto__x', 'b']);
    out.push({ name: `core.checkKeys: { ${typo} }`, entry: 'core.checkKeys', expect: 'error', run: () => checkKeys({ ...obj, [typo]: 1 }, known, 'AdamW', { aliases: { learningRate: 'lr' } }) });
  }
  for (const [o, k, opts] of [[null, known, {}], ['x', known, {}], [[], known, {}], [{ a: 1 }, null, {}], [{ a: 1 }, [1, 2], {}], [{ a: 1 }, known, null], [{ a: 1 }, 'a', {}]]) {
    out.push({ name: `core.checkKeys: (${show(o)}, ${show(k)}, ${show(opts)})`, entry: 'core.checkKeys', expect: 'error', run: () => checkKeys(o, k, 'x', opts) });
  }
  for (let i = 0; i < 25; i++) {
    const a = Array.from({ length: rng.int(0, 8) }, () => rng.pick(['a', 'b', 'c', 'x'])).join('');
    const b = Array.from({ length: rng.int(0, 8) }, () => rng.pick(['a', 'b', 'c', 'x'])).join('');
    out.push({ name: `core.editDistance: '${a}' / '${b}'`, entry: 'core.editDistance', expect: 'ok', run: () => [editDistance(a, b), editDistance(b, a), editDistance(a, a)], check: ([d, e, z]) => (d !== e || z !== 0 || d < Math.abs(a.length - b.length) || d > Math.max(a.length, b.length) ? `distances ${d}, ${e}, ${z}` : undefined) });
  }
  for (const [a, b] of [[null, 'a'], ['a', 5], [undefined, undefined], [['a'], 'a'], [Symbol('s'), 's']]) out.push({ name: `core.editDistance: (${show(a)}, ${show(b)})`, entry: 'core.editDistance', expect: 'error', run: () => editDistance(a, b) });
  for (const v of NON_FINITE) out.push({ name: `core.checkNumber: ${v}`, entry: 'core.checkNumber', expect: 'error', run: () => checkNumber(v, 'v') });
}

export function cases(rng) {
  const out = [];
  tensorCases(rng, out);
  scopeCases(rng, out);
  dtypeCases(rng, out);
  backendCases(rng, out);
  registryCases(rng, out);
  checkCases(rng, out);
  return out;
}
