/**
 * How the op set's CUDA kernels are registered. The ops are defined here in ir, so ir registers
 * their CUDA candidates (DESIGN: the package that defines an op registers all of its kernels); the
 * kernels themselves are native entry points of @deepwell/kernels-native, an optional peer: without
 * it, or without a GPU, every CUDA candidate says why it does not fit and the CPU reference serves.
 *
 * A CUDA kernel call gets each tensor as (allocation base, byte offset, bytes) and the stream
 * handle; native code checks each range against the allocation it falls in.
 */
import { createRequire } from 'node:module';
import { registry, type DTypeName } from '@deepwell/core';
import type { KernelParams } from '../op.js';

export interface DevArg {
  base: number;
  offset: number;
  bytes: number;
}

export interface CudaCall extends KernelParams {
  stream: number;
  inputs: DevArg[];
  outputs: DevArg[];
}

/** Storage dtype codes of native/common/dtype.h. */
export const DTYPE_CODE: Partial<Record<DTypeName, number>> = { f32: 0, bf16: 1, f16: 2, i32: 3 };
export const FLOAT_STORAGE: readonly DTypeName[] = ['f32', 'bf16', 'f16'];

/** The (base, offset) pair a native entry point takes for a tensor. */
export const at = (a: DevArg): [number, number] => [a.base, a.offset];

// The native entry points, typed loosely: each family file documents its own signatures.
export type NativeOps = Record<string, (...args: number[]) => unknown>;

const require = createRequire(import.meta.url);
let cached: { ops: NativeOps | null; why: string } | null = null;

/** The addon's entry points when @deepwell/kernels-native is installed and a GPU is usable. */
export function nativeOps(): { ops: NativeOps | null; why: string } {
  if (cached) return cached;
  try {
    const kn = require('@deepwell/kernels-native') as typeof import('@deepwell/kernels-native');
    const status = kn.cudaStatus();
    cached = status.available ? { ops: kn.loadNative() as unknown as NativeOps, why: '' } : { ops: null, why: `CUDA is unavailable: ${status.reason}` };
  } catch (e) {
    cached = { ops: null, why: `@deepwell/kernels-native is not installed (${(e as Error).message.split('\n')[0]})` };
  }
  return cached;
}

export interface CudaKernel {
  op: string;
  name: string;
  priority?: number;
  /** Native entry points the kernel calls; one the loaded addon lacks makes it decline. */
  needs?: readonly string[];
  /** Beyond "on a CUDA device with the addon loaded": what this kernel accepts. */
  supports(p: KernelParams): true | string;
  run(call: CudaCall, ops: NativeOps): void;
}

/** Register a CUDA candidate for an op in core's registry. */
export function registerCuda(k: CudaKernel): void {
  registry.register<CudaCall, void>({
    op: k.op,
    backend: 'cuda',
    name: k.name,
    priority: k.priority ?? 100,
    supports: (p) => {
      if (!p.device.startsWith('cuda')) return `runs on CUDA, not ${p.device}`;
      const n = nativeOps();
      if (!n.ops) return n.why;
      const missing = k.needs?.find((e) => typeof n.ops![e] !== 'function');
      if (missing !== undefined) return `the loaded @deepwell/kernels-native has no '${missing}' entry point (rebuild it)`;
      return k.supports(p);
    },
    run: (call) => k.run(call, nativeOps().ops!),
  });
}

/** supports() helper: every float tensor in one of the float storage dtypes, indices i32. */
export function floatStorage(p: KernelParams): true | string {
  for (const t of [...p.inTypes, ...p.outTypes]) {
    if (t.dtype !== 'i32' && !FLOAT_STORAGE.includes(t.dtype)) return `no CUDA kernel for ${t.dtype} storage`;
  }
  return true;
}
