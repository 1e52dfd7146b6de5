/**
 * The device smoke test: fill device memory with a hash of each index by a real kernel, read it
 * back, and compare every element with the same hash computed here. It proves a kernel ran on the
 * device and wrote every element (the buffer is poisoned first), and times itself with CUDA events.
 */
import { checkInteger } from '@deepwell/core';
import { CudaBuffer, Event, Stream, cudaBackend } from './cuda.js';
import { loadNative } from './loader.js';

/** JS reference of native/runtime/smoke.cu's mix(): must stay the same function. */
export function smokeHash(seed: number, i: number): number {
  let x = (seed ^ Math.imul(i, 0x9e3779b9)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Queue the fill kernel: u32[i] = smokeHash(seed, i) for i < n. */
export function fillHash(buffer: CudaBuffer, n: number, seed: number, stream?: Stream, offset = 0): void {
  checkInteger(n, 'element count', 0, Math.floor((buffer.bytes - offset) / 4));
  checkInteger(seed, 'seed', 0, 2 ** 32 - 1);
  loadNative().fillHash(buffer.ptr, offset, n, seed, stream?.handle ?? 0);
}

/** Queue the add kernel: u32[i] += value for i < n (wrapping). */
export function addU32(buffer: CudaBuffer, n: number, value: number, stream?: Stream, offset = 0): void {
  checkInteger(n, 'element count', 0, Math.floor((buffer.bytes - offset) / 4));
  checkInteger(value, 'value', 0, 2 ** 32 - 1);
  loadNative().addU32(buffer.ptr, offset, n, value, stream?.handle ?? 0);
}

export interface SmokeReport {
  device: string;
  elements: number;
  mismatches: number;
  kernelMs: number;
  /** Bytes written by the kernel over its time. */
  writeGBps: number;
}

export function runSmokeTest(device = 0, elements = 1 << 24): SmokeReport {
  checkInteger(elements, 'element count', 1, 2 ** 30);
  const backend = cudaBackend(device);
  const seed = (Math.random() * 2 ** 32) >>> 0;
  const buf = backend.alloc(elements * 4);
  const stream = new Stream(device);
  const start = new Event(device);
  const end = new Event(device);
  try {
    backend.memset(buf, 0xa5, buf.bytes, 0, stream); // poison: an unwritten element cannot match
    fillHash(buf, elements, seed, stream); // warm-up
    start.record(stream);
    fillHash(buf, elements, seed, stream);
    end.record(stream);
    end.synchronize();
    const kernelMs = end.elapsedSince(start);
    const host = new Uint32Array(elements);
    backend.read(buf, host);
    let mismatches = 0;
    for (let i = 0; i < elements; i++) if (host[i] !== smokeHash(seed, i)) mismatches++;
    return { device: backend.device, elements, mismatches, kernelMs, writeGBps: (elements * 4) / (kernelMs * 1e6) };
  } finally {
    start.dispose();
    end.dispose();
    stream.dispose();
    backend.free(buf);
  }
}
