/**
 * What the eager Tensor calls (quantizeTensor, dequantizeTensor, scaledMatmul) share on a GPU: a
 * tensor as a native argument, and their scratch — one buffer per device, grown as needed. Every
 * eager call runs on the legacy default stream, so calls that reuse the buffer are ordered; a
 * compiled step's kernels get workspaces from its own plan instead. A buffer is replaced only after
 * the device has finished with it (the caching allocator has no per-stream pools, so its block may
 * go to another stream).
 */
import { Tensor } from '@deepwell/core';
import type { DevArg } from '@deepwell/kernels-native';

/** A device tensor's whole buffer as a native argument. */
export const devArg = (t: Tensor): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes: t.buffer.bytes });

const scratch = new Map<string, Tensor>();

/** `bytes` of the device's eager scratch (null for none). */
export function eagerScratch(device: string, bytes: number): DevArg | null {
  if (bytes === 0) return null;
  let t = scratch.get(device);
  if (!t || t.buffer.bytes < bytes) {
    if (t) {
      t.backend.synchronize();
      t.dispose();
    }
    t = Tensor.empty([bytes], 'u8', { device });
    scratch.set(device, t);
  }
  return { ...devArg(t), bytes };
}
