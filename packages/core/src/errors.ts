/**
 * DeepwellError: the one error class every Deepwell package throws.
 *
 * A typed `code` lets callers branch without parsing messages; `cause` keeps what went wrong
 * underneath (a native failure, a CUDA error name). Native code never throws this class itself:
 * it fails with a code and a message, and the JS wrapper turns that into a DeepwellError so the
 * JS stack of the call that failed is kept.
 */

export type DeepwellErrorCode =
  | 'INVALID_ARGUMENT' // an option or argument of the wrong type, range or shape
  | 'INVALID_DTYPE' // an unknown dtype name, or a dtype the operation cannot take
  | 'SHAPE_MISMATCH' // sizes that do not agree
  | 'DEVICE_MISMATCH' // tensors on devices that cannot meet
  | 'DISPOSED' // use of a tensor or handle after dispose()
  | 'DOUBLE_FREE' // a buffer freed twice, or a pointer the allocator never handed out
  | 'OUT_OF_MEMORY' // the device (or host) could not satisfy an allocation
  | 'NO_BACKEND' // no backend is registered for the device asked for
  | 'NO_KERNEL' // no registered kernel supports the call
  | 'CUDA_UNAVAILABLE' // no GPU, no driver, or the native addon is missing
  | 'CUDA_ERROR' // the CUDA runtime reported an error
  | 'NATIVE_LOAD_FAILED' // the native addon could not be loaded
  | 'LIBRARY_UNAVAILABLE' // a vendor library (cuBLASLt, NCCL, NVML) was not found
  | 'ABORTED' // the caller cancelled the work (an AbortSignal), e.g. Trainer.fitAsync
  | 'TIMEOUT' // a wait ran past its limit (a distributed rendezvous, a peer that never came)
  | 'PEER_FAILED' // another process of a distributed job failed or went away
  | 'INTERNAL'; // a bug in Deepwell: please report it

const BRAND = Symbol.for('deepwell.error');

const CODES: ReadonlySet<string> = new Set<DeepwellErrorCode>([
  'INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH', 'DEVICE_MISMATCH', 'DISPOSED', 'DOUBLE_FREE', 'OUT_OF_MEMORY',
  'NO_BACKEND', 'NO_KERNEL', 'CUDA_UNAVAILABLE', 'CUDA_ERROR', 'NATIVE_LOAD_FAILED', 'LIBRARY_UNAVAILABLE', 'ABORTED', 'TIMEOUT', 'PEER_FAILED', 'INTERNAL',
]);

export interface DeepwellErrorOptions {
  cause?: unknown;
  /** Extra machine-readable facts (a CUDA error name, a node name, the sizes involved). */
  details?: Record<string, unknown>;
}

export class DeepwellError extends Error {
  readonly code: DeepwellErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  /**
   * An unknown code, a message that is not a string or options that are not an object are a bug in
   * the caller: the constructor throws an INVALID_ARGUMENT DeepwellError naming it.
   */
  constructor(code: DeepwellErrorCode, message: string, options: DeepwellErrorOptions | null = {}) {
    const o = options ?? {};
    const bad = !CODES.has(code as string)
      ? ['one of the DeepwellError codes (INVALID_ARGUMENT, SHAPE_MISMATCH, …)', 'code', code]
      : typeof message !== 'string'
        ? ['a string', 'message', message]
        : typeof o !== 'object' || (o.details !== undefined && (typeof o.details !== 'object' || o.details === null))
          ? ['an options object ({ cause?, details?: object })', 'options', options]
          : null;
    super(bad ? `Expected ${bad[0]} for a DeepwellError's ${bad[1]} but received ${describe(bad[2])}` : message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'DeepwellError';
    this.code = bad ? 'INVALID_ARGUMENT' : code;
    this.details = Object.freeze({ ...(bad ? {} : (o.details ?? {})) });
    Object.defineProperty(this, BRAND, { value: true });
    // Thrown, not returned: `new DeepwellError(junk)` must not hand back an error with a junk code.
    if (bad) throw this;
  }

  /** True for a DeepwellError from any copy of this package (ESM and CJS copies included). */
  static is(value: unknown): value is DeepwellError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** Short, readable description of a received value for "Expected X for Y but received Z". */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol') return value.toString();
  if (Array.isArray(value)) return value.length <= 8 ? `[${value.map(describe).join(', ')}]` : `an array of ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as { length?: number }).length ?? value.byteLength})`;
  if (typeof value === 'function') return 'a function';
  return `an object (${value.constructor?.name ?? 'Object'})`;
}

/** Throw INVALID_ARGUMENT (or another code) worded "Expected X for Y but received Z". */
export function invalid(expected: string, what: string, received: unknown, code: DeepwellErrorCode = 'INVALID_ARGUMENT'): never {
  const text = (v: unknown) => (typeof v === 'string' ? v : describe(v)); // a Symbol would not interpolate
  throw new DeepwellError(code, `Expected ${text(expected)} for ${text(what)} but received ${describe(received)}`, {
    details: { expected, what },
  });
}
