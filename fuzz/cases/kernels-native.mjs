// The native boundary: random argument vectors into every entry point of the addon's ABI table, as
// flat vectors straight into the raw addon, so the one checked reader (native/common/abi_reader.h) is
// what stands between them and the device. Every vector mixes in-range values with junk, absurd
// sizes, wrong counts and wrong kinds. What must come back is an error carrying a DeepwellError code
// (or a result, for a vector that happens to be valid), never a crash, and never a device left broken.
//
// With a GPU (the H200 run), some device arguments are real: small live allocations with offsets and
// sizes around and beyond their ends, and a real stream; each case frees what it made, synchronises
// the device (a kernel that ran out of bounds shows up here) and checks the allocator's bytes in use
// came back to where they were. Without a GPU (CI) every vector still goes through the reader.
import { createRequire } from 'node:module';
import { DeepwellError } from '@deepwell/core';
import { ENTRY_POINTS, countHashMismatches, cudaStatus, fillHashHost, fromNative, nativePath, smokeHash, tryLoadNative } from '@deepwell/kernels-native';
import { BAD_INTEGERS, WRONG_TYPES, show } from '../lib.mjs';

const CODES = new Set(['INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH', 'DOUBLE_FREE', 'OUT_OF_MEMORY', 'CUDA_UNAVAILABLE', 'CUDA_ERROR', 'LIBRARY_UNAVAILABLE']);
const SKIP = new Set(['nop']); // nop takes nothing and is left raw on purpose (it measures a bare call)

let rawAddon;
function raw() {
  if (rawAddon === undefined) {
    rawAddon = null;
    if (tryLoadNative()) rawAddon = createRequire(import.meta.url)(nativePath());
  }
  return rawAddon;
}
const gpu = () => cudaStatus().available;

// An argument value drawn for a kind. `live` holds real device pointers/streams in a GPU case.
function draw(rng, arg, live) {
  const r = rng.next();
  const junkNumber = () => rng.pick([-1, -0.5, 0.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64, 1e300, '1', null, undefined, {}, [], true]);
  if (r < 0.12) return { one: junkNumber() };
  switch (arg.kind) {
    case 'u64': {
      const max = arg.max ?? 2 ** 53 - 1;
      return { one: rng.pick([0, 1, rng.int(0, 4096), rng.int(0, Math.min(max, 2 ** 31)), max, max + 1, 2 ** 40, 2 ** 53 - 1, 65537, 3]) };
    }
    case 'i32':
      return { one: rng.pick([0, 1, -1, -100, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, rng.int(-1000, 1000)]) };
    case 'f64':
      return { one: rng.pick([0, 1, -1, 1e-300, 1e300, rng.float(-10, 10)]) };
    case 'flag':
    case 'bool':
      return { one: rng.pick([0, 1, 2, true, false]) };
    case 'stream':
    case 'event':
      return { one: live.stream && rng.bool(0.6) ? live.stream : rng.pick([0, 1, 12345, 2 ** 40]) };
    case 'dtype':
    case 'fdtype':
    case 'enum':
      return { one: rng.pick([0, 1, 2, 3, 4, 7, 8, 255, -1]) };
    case 'tensor':
    case 'workspace': {
      const buf = live.buffers.length && rng.bool(0.7) ? rng.pick(live.buffers) : null;
      const base = buf ? buf.ptr : rng.pick([0, 1, 4096, 2 ** 40, 2 ** 52]);
      const offset = buf ? rng.pick([0, 0, 16, buf.bytes - 4, buf.bytes, buf.bytes + 64, 2 ** 40]) : rng.pick([0, 8]);
      const values = [base, offset];
      if (arg.kind === 'workspace') values.push(rng.pick([0, 256, buf ? buf.bytes : 1024, 2 ** 40]));
      return { many: values };
    }
    case 'view':
      return { one: rng.pick([new Uint8Array(rng.int(0, 64)), new Float32Array(rng.int(1, 16)), new Int32Array(4).fill(rng.int(-5, 5)), new ArrayBuffer(8), [1, 2]]) };
    case 'string':
      return { one: rng.pick(['', 'cublasLt', 'nccl', '../../etc/passwd', 'x'.repeat(5000), 'libm.so.6']) };
    case 'string[]':
      return { one: rng.pick([[], ['libdoesnotexist.so'], [''], ['libm.so.6'], [1, 2]]) };
    default:
      return { one: junkNumber() };
  }
}

// The flat vector for an entry point's arguments, as the generated binding would pass them.
function vector(rng, args, live, lengths = {}) {
  const out = [];
  for (const arg of args) {
    if (arg.kind === 'u64[]' || arg.kind === 'tensor[]') {
      const n = lengths[arg.len] ?? rng.int(0, 4);
      for (let i = 0; i < n; i++) {
        const v = draw(rng, { ...arg, kind: arg.kind === 'u64[]' ? 'u64' : 'tensor', max: 64 }, live);
        out.push(...(v.many ?? [v.one]));
      }
      continue;
    }
    if (arg.kind === 'group') {
      const n = lengths[arg.len] ?? 1;
      for (let i = 0; i < Math.min(n, 8); i++) out.push(...vector(rng, arg.args, live, lengths));
      continue;
    }
    const v = draw(rng, arg, live);
    if (arg.kind === 'u64' && rng.bool(0.8) && typeof v.one === 'number') lengths[arg.name] = Math.min(v.one, 8);
    out.push(...(v.many ?? [v.one]));
  }
  // Whole-vector damage: a missing argument, an extra one, or none at all.
  const d = rng.next();
  if (d < 0.08 && out.length) out.pop();
  else if (d < 0.14) out.push(rng.pick([0, 'extra', null]));
  else if (d < 0.17) out.length = 0;
  return out;
}

function nativeCase(rng, entry, i) {
  const seed = rng.int(0, 2 ** 31);
  const sizes = [rng.pick([64, 256, 4096]), rng.pick([16, 1024])];
  return {
    name: `kernels-native raw ${entry.name} #${i}`,
    entry: ['kernels-native.tryLoadNative', 'kernels-native.ENTRY_POINTS'],
    expect: 'either',
    check: (v) => (v?.problems ? `the device was left unusable or leaking: ${v.problems.join('; ')}` : undefined),
    run: async () => {
      const addon = raw();
      if (!addon) return { skipped: 'no native addon' };
      const fn = addon[entry.name];
      if (typeof fn !== 'function') throw new Error(`the addon has no entry point ${entry.name}`);
      const { makeRng } = await import('../lib.mjs');
      const r = makeRng(seed);
      const onGpu = gpu();
      const live = { buffers: [], stream: 0 };
      const before = onGpu ? addon.memoryStats(0).inUse : 0;
      if (onGpu) {
        for (const bytes of sizes) live.buffers.push({ ptr: addon.alloc(0, bytes), bytes });
        live.stream = addon.streamCreate(0);
      }
      const args = vector(r, entry.args, live);
      let result;
      let error;
      try {
        result = entry.name === 'allocFault' ? (fn(...args), addon.allocFault(0)) : fn(...args);
      } catch (e) {
        error = e;
      }
      const problems = [];
      if (onGpu) {
        // Each step on its own: one that fails must not keep the rest from cleaning up.
        const tidy = (what, f) => {
          try {
            f();
          } catch (e) {
            problems.push(`${what}: ${e?.message ?? e}`);
          }
        };
        const quiet = (f) => {
          try {
            f();
          } catch {
            // expected to fail when there is nothing to undo
          }
        };
        addon.allocFault(0);
        // A capture the vector began is the caller's to end (a capture left open blocks every
        // allocation in the process): end it and drop its graph.
        quiet(() => addon.graphDestroy(addon.captureEnd(live.stream).graph));
        // What a valid vector allocated or created is the case's to give back.
        if (entry.name === 'alloc' && typeof result === 'number') tidy('free', () => addon.free(result));
        if (entry.name === 'streamCreate' && typeof result === 'number') tidy('streamDestroy', () => addon.streamDestroy(result));
        if (entry.name === 'eventCreate' && typeof result === 'number') tidy('eventDestroy', () => addon.eventDestroy(result));
        if (entry.name === 'captureEnd' && result && typeof result.graph === 'number') tidy('graphDestroy', () => addon.graphDestroy(result.graph));
        if (entry.name === 'hostAlloc' && result instanceof ArrayBuffer) tidy('hostFree', () => addon.hostFree(result));
        quiet(() => addon.streamSynchronize(live.stream)); // the stream may be gone (streamDestroy)
        tidy('deviceSynchronize (a kernel that ran wild fails here)', () => addon.deviceSynchronize(0));
        for (const b of live.buffers) quiet(() => addon.free(b.ptr)); // a vector may have freed one
        quiet(() => addon.streamDestroy(live.stream));
        const after = addon.memoryStats(0).inUse;
        if (after !== before) problems.push(`bytes in use ${before} before, ${after} after`);
      }
      if (problems.length) return { problems, args };
      if (error !== undefined) {
        if (DeepwellError.is(error)) throw error;
        if (!CODES.has(error?.code)) throw new TypeError(`${entry.name}(${args.map(show).join(', ')}) threw without a DeepwellError code: ${String(error?.message ?? error)}`);
        throw fromNative(error);
      }
      return { result, args };
    },
  };
}

export function cases(rng) {
  const out = [];
  for (const entry of ENTRY_POINTS) {
    if (SKIP.has(entry.name)) continue;
    for (let i = 0; i < 12; i++) out.push(nativeCase(rng, entry, i));
  }
  out.push(...hashCases(rng));
  return out;
}

// The smoke hash's host references (array forms, checked once): valid fills match smokeHash, a
// damaged fill is counted exactly, and bad arrays and seeds are typed errors.
function hashCases(rng) {
  const out = [];
  for (let i = 0; i < 10; i++) {
    const n = rng.int(0, 5000);
    const seed = rng.int(0, 2 ** 32 - 1);
    const flips = [...new Set(Array.from({ length: rng.int(0, 4) }, () => rng.int(0, Math.max(0, n - 1))))].filter((k) => k < n);
    const xor = rng.int(1, 2 ** 32 - 1);
    out.push({
      name: `kernels-native.fillHashHost/countHashMismatches: n ${n} seed ${seed} flips ${flips.length}`,
      entry: ['kernels-native.fillHashHost', 'kernels-native.countHashMismatches'],
      expect: 'ok',
      run: () => {
        const h = fillHashHost(new Uint32Array(n), seed);
        const clean = countHashMismatches(h, seed);
        for (const k of flips) h[k] = (h[k] ^ xor) >>> 0;
        return { h, clean, damaged: countHashMismatches(h, seed) };
      },
      check: ({ h, clean, damaged }) => {
        if (clean !== 0) return `a fresh fill has ${clean} mismatches`;
        if (damaged !== flips.length) return `counted ${damaged} mismatches for ${flips.length} flipped elements`;
        for (let k = 0; k < n; k += 97) if (!flips.includes(k) && h[k] !== smokeHash(seed, k)) return `element ${k} is not smokeHash`;
        return undefined;
      },
    });
  }
  for (const bad of [...WRONG_TYPES, new Int32Array(4), new Float32Array(2), [1, 2]]) {
    out.push({ name: `kernels-native.fillHashHost into ${show(bad)}`, entry: 'kernels-native.fillHashHost', expect: 'error', run: () => fillHashHost(bad, 1) });
    out.push({ name: `kernels-native.countHashMismatches data ${show(bad)}`, entry: 'kernels-native.countHashMismatches', expect: 'error', run: () => countHashMismatches(bad, 1) });
  }
  for (const bad of [...BAD_INTEGERS.filter((v) => !(Number.isInteger(v) && v >= 0 && v < 2 ** 32)), 2 ** 32, '7', null, undefined]) {
    const n = rng.int(0, 8);
    out.push({ name: `kernels-native.fillHashHost seed ${show(bad)}`, entry: 'kernels-native.fillHashHost', expect: 'error', run: () => fillHashHost(new Uint32Array(n), bad) });
    out.push({ name: `kernels-native.countHashMismatches seed ${show(bad)}`, entry: 'kernels-native.countHashMismatches', expect: 'error', run: () => countHashMismatches(new Uint32Array(3), bad) });
  }
  return out;
}
