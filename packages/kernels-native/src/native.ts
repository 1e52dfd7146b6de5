/**
 * The native addon as TypeScript sees it: the typed entry points generated from the ABI table
 * (abi/table.mjs -> abi.gen.ts), and the wrapper that turns every native failure into a
 * DeepwellError thrown from the JS caller's stack.
 */
import { DeepwellError, describe, type DeepwellErrorCode } from '@deepwell/core';
import { bindEntries, type NativeEntries } from './abi.gen.js';

/** The addon: every entry point of the ABI table, typed, plus what the build recorded. */
export interface NativeAddon extends NativeEntries {
  build: { cudaArchs: string; cudartVersion: number; napiVersion: number };
}

const CODES = new Set<DeepwellErrorCode>([
  'INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH', 'DOUBLE_FREE', 'OUT_OF_MEMORY', 'CUDA_UNAVAILABLE', 'CUDA_ERROR', 'LIBRARY_UNAVAILABLE',
  // groupedBlockScaledGemm off Blackwell (NO_KERNEL), the NCCL communicator (TIMEOUT, PEER_FAILED,
  // INTERNAL): on the H200 (2026-12-05) NO_KERNEL arrived as INTERNAL before it was listed here.
  'NO_KERNEL', 'TIMEOUT', 'PEER_FAILED', 'INTERNAL',
]);

/** A native failure as a DeepwellError; anything unexpected becomes INTERNAL with the original as cause. */
export function fromNative(e: unknown): DeepwellError {
  if (DeepwellError.is(e)) return e;
  const err = e as { code?: string; message?: string; cudaError?: string; cudaErrorCode?: number };
  const code = CODES.has(err?.code as DeepwellErrorCode) ? (err.code as DeepwellErrorCode) : 'INTERNAL';
  const details: Record<string, unknown> = {};
  if (err?.cudaError) details.cudaError = err.cudaError;
  if (err?.cudaErrorCode !== undefined) details.cudaErrorCode = err.cudaErrorCode;
  const message = typeof err?.message === 'string' ? err.message : describe(e);
  return new DeepwellError(code, message, { cause: e, details });
}

/**
 * The raw addon bound to the typed entry points, each wrapped so a native failure is thrown as a
 * DeepwellError here. `nop` stays raw: it exists to measure the bare cost of a call.
 */
export function wrapAddon(raw: Record<string, unknown>): NativeAddon {
  const typed = bindEntries(raw as Record<string, (...a: unknown[]) => unknown>) as unknown as Record<string, (...a: unknown[]) => unknown>;
  const out: Record<string, unknown> = { build: raw.build };
  for (const [k, f] of Object.entries(typed)) {
    out[k] = (...a: unknown[]) => {
      try {
        return f(...a);
      } catch (e) {
        // A TypeError with no code comes from the generated binding reading an argument of the wrong
        // shape (a device argument that is not { base, offset }) before the native call.
        if (e instanceof TypeError && (e as { code?: unknown }).code === undefined)
          throw new DeepwellError('INVALID_ARGUMENT', `Expected the arguments of ${k} as its signature declares them: ${e.message}`, { cause: e });
        throw fromNative(e);
      }
    };
  }
  out.nop = raw.nop;
  return out as unknown as NativeAddon;
}
