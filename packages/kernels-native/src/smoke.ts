/**
 * Launchers for the runtime's smoke-test kernels (native/runtime/smoke.cu) and the reference of
 * fillHash. They carry no op semantics: @deepwell/probe's smoke test and this package's own tests
 * use them to prove that a kernel ran on the device and wrote every element.
 */
import { checkInteger, invalid } from '@deepwell/core';
import { CudaBuffer, Stream } from './cuda.js';
import { loadNative } from './loader.js';

/** JS reference of native/runtime/smoke.cu's mix(): must stay the same function. */
export function smokeHash(seed: number, i: number): number {
  if (!Number.isInteger(seed) || !Number.isInteger(i)) invalid('integers', 'smokeHash seed and index', [seed, i]);
  return mix(seed, i);
}

/** smokeHash for all of `into` on the host: into[i] = smokeHash(seed, i). Checks once, not per element. */
export function fillHashHost(into: Uint32Array, seed: number): Uint32Array {
  if (!(into instanceof Uint32Array)) invalid('a Uint32Array', 'fillHashHost into', into);
  checkInteger(seed, 'fillHashHost seed', 0, 2 ** 32 - 1);
  for (let i = 0; i < into.length; i++) into[i] = mix(seed, i);
  return into;
}

/** How many elements of `data` differ from smokeHash(seed, i): a fill's check, without a per-element check. */
export function countHashMismatches(data: Uint32Array, seed: number): number {
  if (!(data instanceof Uint32Array)) invalid('a Uint32Array', 'countHashMismatches data', data);
  checkInteger(seed, 'countHashMismatches seed', 0, 2 ** 32 - 1);
  let bad = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== mix(seed, i)) bad++;
  return bad;
}

// The hash itself, unchecked: integers by construction in the loops above.
function mix(seed: number, i: number): number {
  let x = (seed ^ Math.imul(i, 0x9e3779b9)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Queue the fill kernel: u32[i] = smokeHash(seed, i) for i < n. */
export function fillHash(buffer: CudaBuffer, n: number, seed: number, stream?: Stream, offset = 0): void {
  checkSmokeArgs(buffer, stream, offset, 'fillHash');
  checkInteger(n, 'element count', 0, Math.floor((buffer.bytes - offset) / 4));
  checkInteger(seed, 'seed', 0, 2 ** 32 - 1);
  loadNative().fillHash(buffer.ptr, offset, n, seed, stream?.handle ?? 0);
}

function checkSmokeArgs(buffer: CudaBuffer, stream: Stream | undefined, offset: number, fn: string): void {
  if (!(buffer instanceof CudaBuffer)) invalid('a CudaBuffer', `${fn} buffer`, buffer, 'DEVICE_MISMATCH');
  if (stream !== undefined && !(stream instanceof Stream)) invalid('a Stream (or nothing)', `${fn} stream`, stream);
  checkInteger(offset, `${fn} byte offset`, 0, buffer.bytes);
  if (offset % 4 !== 0) invalid('a byte offset that is a multiple of 4', `${fn} offset`, offset);
}

/** Queue the add kernel: u32[i] += value for i < n (wrapping). */
export function addU32(buffer: CudaBuffer, n: number, value: number, stream?: Stream, offset = 0): void {
  checkSmokeArgs(buffer, stream, offset, 'addU32');
  checkInteger(n, 'element count', 0, Math.floor((buffer.bytes - offset) / 4));
  checkInteger(value, 'value', 0, 2 ** 32 - 1);
  loadNative().addU32(buffer.ptr, offset, n, value, stream?.handle ?? 0);
}
