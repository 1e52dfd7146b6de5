/**
 * How a package registers CUDA kernels for the ops it defines (DESIGN: the package that defines an
 * op registers all of its kernels). This package owns the calling convention, so no ops package
 * loads the addon or knows its wire format:
 *
 * - `registerCuda(kernel)` adds a 'cuda' candidate to core's registry. It declines, with the reason,
 *   when the device is not CUDA, the addon did not load, no GPU is usable, or the addon lacks an
 *   entry point the kernel `needs`; otherwise the kernel's own `supports` decides.
 * - A kernel's `run(call, entries)` gets each tensor as a DevArg and the typed entry points
 *   (abi.gen.ts, generated from the one ABI table), and `call.workspace`: the scratch the kernel
 *   declared with `workspace(params)`, which the compiled step's memory plan places in its arena
 *   (eager calls get a temporary buffer), so no kernel keeps scratch of its own.
 */
import { invalid, registry, type DTypeName } from '@deepwell/core';
import { DTYPE_CODE } from './abi.gen.js';
import type { NativeEntries } from './abi.gen.js';
import type { DevArg } from './abi-types.js';
import { cudaStatus } from './cuda.js';
import { tryLoadNative } from './loader.js';

/** A value's type as an ops package describes it (structurally @deepwell/ir's ValueType). */
export interface TensorType {
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
}

/** What a kernel is selected on (structurally @deepwell/ir's KernelParams). */
export interface CudaParams {
  op: string;
  device: string;
  inTypes: readonly TensorType[];
  outTypes: readonly TensorType[];
  attrs: Readonly<Record<string, unknown>>;
}

export interface CudaCall<P extends CudaParams = CudaParams> {
  op: string;
  device: string;
  inTypes: P['inTypes'];
  outTypes: P['outTypes'];
  attrs: P['attrs'];
  stream: number;
  inputs: DevArg[];
  outputs: DevArg[];
  /** The scratch this call declared (`workspace(params)` bytes), or null when it declared none. */
  workspace: DevArg | null;
  /** false inside a captured or profiled step: do not synchronise to report bad indices. */
  checkIndices?: boolean;
}

export interface CudaKernel<P extends CudaParams = CudaParams> {
  op: string;
  name: string;
  priority?: number;
  /** Entry points the kernel calls; one the loaded addon lacks makes it decline. */
  needs?: readonly (keyof NativeEntries)[];
  /** Beyond "on a CUDA device with the addon loaded": what this kernel accepts. */
  supports(p: P): true | string;
  /** Device scratch one call needs, in bytes (default 0); the plan gives it as call.workspace. */
  workspace?(p: P): number;
  run(call: CudaCall<P>, entries: NativeEntries): void;
}

let cached: { entries: NativeEntries | null; why: string } | null = null;

/** The typed entry points when the addon loaded and a GPU is usable; else null and why not. */
export function nativeEntries(): { entries: NativeEntries | null; why: string } {
  if (cached) return cached;
  const status = cudaStatus();
  if (!status.available) cached = { entries: null, why: `CUDA is unavailable: ${status.reason}` };
  else cached = { entries: tryLoadNative(), why: '' };
  return cached;
}

/** Register a CUDA candidate for an op in core's registry. */
export function registerCuda<P extends CudaParams = CudaParams>(k: CudaKernel<P>): void {
  if (typeof k !== 'object' || k === null || typeof k.op !== 'string' || typeof k.name !== 'string' || typeof k.run !== 'function')
    invalid('a CUDA kernel { op, name, run, supports? }', 'registerCuda', k);
  registry.register<CudaCall<P>, void>({
    op: k.op,
    backend: 'cuda',
    name: k.name,
    priority: k.priority ?? 100,
    supports: (p) => {
      if (!p.device.startsWith('cuda')) return `runs on CUDA, not ${p.device}`;
      const n = nativeEntries();
      if (!n.entries) return n.why;
      const missing = k.needs?.find((e) => typeof n.entries![e] !== 'function');
      if (missing !== undefined) return `the loaded @deepwell/kernels-native has no '${String(missing)}' entry point (rebuild it)`;
      return k.supports(p as unknown as P);
    },
    workspace: (p) => k.workspace?.(p as unknown as P) ?? 0,
    run: (call) => k.run(call, nativeEntries().entries!),
  });
}

/** The float storage dtypes CUDA kernels compute on. */
export const FLOAT_STORAGE: readonly DTypeName[] = ['f32', 'bf16', 'f16'];

/** The storage dtype code of a tensor type (DTYPE_CODE of the ABI table). */
export function dtypeCode(t: TensorType): number {
  const c = (DTYPE_CODE as Readonly<Record<string, number>>)[(t as TensorType | undefined)?.dtype as string];
  if (c === undefined || !Object.hasOwn(DTYPE_CODE, t.dtype)) invalid(`a tensor type of dtype ${Object.keys(DTYPE_CODE).join(', ')}`, 'dtypeCode', t, 'INVALID_DTYPE');
  return c;
}

/** supports() helper: every float tensor in one of the float storage dtypes, indices i32. */
export function floatStorage(p: CudaParams): true | string {
  if (typeof p !== 'object' || p === null || !Array.isArray(p.inTypes) || !Array.isArray(p.outTypes)) invalid('kernel parameters with inTypes and outTypes', 'floatStorage', p);
  for (const t of [...p.inTypes, ...p.outTypes]) {
    if (t.dtype !== 'i32' && !FLOAT_STORAGE.includes(t.dtype)) return `no CUDA kernel for ${t.dtype} storage`;
  }
  return true;
}
