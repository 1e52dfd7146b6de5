// The fuzz suite's shared pieces: a seeded generator, families of bad values, and the Case type.
//
// A case module (cases/<package>.mjs) exports `cases(rng, ctx)` returning Case objects. The list is
// built twice (once by the parent to count it, once by each worker to run its share), so building it
// must be pure: use only `rng` (never Math.random, Date, or the file system); do the work inside
// `run`. `ctx.dir` is a scratch folder of the worker, for cases that write files.
//
// A Case:
//   name     unique, readable: 'core.Tensor.from: i32 data NaN'
//   entry    the public entry point(s) it reaches, 'pkg.Export' or 'pkg.Class#method' (for coverage)
//   expect   'error'  : the input is invalid; only a thrown DeepwellError is right
//            'ok'     : the input is valid; it must be accepted (and pass `check`)
//            'either' : edge input that may be refused (typed) or accepted (then `check` must pass)
//   run      () => value | Promise<value>
//   check    optional (value) => string | undefined: a string says what is wrong with an accepted result
//   timeoutMs optional, default 10 000
//
// Outcomes: 'typed' (DeepwellError thrown), 'accepted', 'untyped' (anything else thrown), 'silent'
// (invalid input accepted, or an accepted result failing its check), 'refused' (a valid input refused),
// 'hang' (past the time limit), 'crash' (the worker process died in the case).

/** mulberry32: small, fast, seedable. */
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng = {
    seed,
    /** uniform in [0, 1) */
    next,
    /** integer in [lo, hi] */
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    /** uniform in [lo, hi) */
    float: (lo = 0, hi = 1) => lo + next() * (hi - lo),
    bool: (p = 0.5) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    /** n standard normals (Box-Muller), as a plain array */
    normals: (n) => Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next())),
    /** a Float32Array of n normals */
    f32: (n, scale = 1) => Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next())),
    /** a fresh generator split off this one (so one case's draws do not shift another's) */
    fork: () => makeRng(Math.floor(next() * 4294967296)),
  };
  return rng;
}

/** Numbers that no count, size or index may be. */
export const BAD_INTEGERS = Object.freeze([-1, -0.5, 0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e300, -(2 ** 31)]);
/** Numbers no rate, scale or coefficient may be. */
export const NON_FINITE = Object.freeze([NaN, Infinity, -Infinity]);
/** Values of the wrong type for almost any argument. */
export const WRONG_TYPES = Object.freeze([null, undefined, '3', '', true, false, 1n, Symbol('x'), {}, [], [[]], () => 1, new Date(0), new Map(), new Uint8Array(3), Object.create(null)]);
/** Shapes that are not shapes. */
export const BAD_SHAPES = Object.freeze([[-1], [1.5], [NaN], [Infinity], [2 ** 31, 2 ** 31], [2 ** 53], ['2'], [null], [[2]], 'abc', null, 5, {}, [1, -2, 3], [2 ** 26, 2 ** 26]]);

/** Any junk value (a bad integer, a non-finite number or a wrong type). */
export function junk(rng) {
  const r = rng.next();
  if (r < 0.35) return rng.pick(BAD_INTEGERS);
  if (r < 0.45) return rng.pick(NON_FINITE);
  return rng.pick(WRONG_TYPES);
}

/** A copy of `bytes` damaged one of several ways: bit flips, truncation, extension, zeroing a span, shuffling a span. */
export function damage(bytes, rng) {
  const b = Uint8Array.from(bytes);
  const kind = rng.int(0, 4);
  if (b.length === 0) return { kind: 'extended', bytes: Uint8Array.of(rng.int(0, 255)) };
  if (kind === 0) {
    const n = rng.int(1, 4);
    for (let i = 0; i < n; i++) b[rng.int(0, b.length - 1)] ^= 1 << rng.int(0, 7);
    return { kind: 'bit flips', bytes: b };
  }
  if (kind === 1) return { kind: 'truncated', bytes: b.subarray(0, rng.int(0, b.length - 1)) };
  if (kind === 2) {
    const extra = Uint8Array.from({ length: rng.int(1, 64) }, () => rng.int(0, 255));
    const out = new Uint8Array(b.length + extra.length);
    out.set(b);
    out.set(extra, b.length);
    return { kind: 'extended', bytes: out };
  }
  const start = rng.int(0, b.length - 1);
  const end = Math.min(b.length, start + rng.int(1, 64));
  if (kind === 3) {
    b.fill(0, start, end);
    return { kind: 'zeroed span', bytes: b };
  }
  for (let i = end - 1; i > start; i--) {
    const j = rng.int(start, i);
    [b[i], b[j]] = [b[j], b[i]];
  }
  return { kind: 'shuffled span', bytes: b };
}

/** For `check`: the first non-finite element of an array-like, as a message, or undefined. */
export function nonFinite(values, what = 'result') {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(Number(values[i]))) return `${what}[${i}] is ${values[i]}`;
  return undefined;
}

/** A short text for a value in a case name. */
export function show(v) {
  if (typeof v === 'symbol') return v.toString();
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'fn';
  if (v instanceof Date) return 'Date';
  if (v instanceof Map) return 'Map';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.length})`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
  } catch {
    return Object.prototype.toString.call(v);
  }
}
