/**
 * The safetensors file format (as specified by Hugging Face's `safetensors`): an 8-byte
 * little-endian header length N, N bytes of JSON — for each tensor {dtype, shape, data_offsets:
 * [begin, end]} relative to the data section, and an optional "__metadata__" map of strings — then
 * the tensors' bytes, little-endian, in the order of their offsets. Written by hand: the format is a
 * page of spec, and what we need around it (atomic writes, validation with clear errors) no
 * maintained npm package offers (the `safetensors` package is a 0.0.1 placeholder).
 *
 * writeSafetensors writes atomically: a temporary file beside the target, fsync, rename over the
 * target, fsync of the directory. A crash at any point leaves either the old file or the new one.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { DeepwellError } from '@deepwell/core';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'U16' | 'I64' | 'U8';
const BYTES: Record<SafeDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, U16: 2, I64: 8, U8: 1 };

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** The raw little-endian bytes (a typed array of the dtype's width, or bytes). */
  data: ArrayBufferView;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * For crash tests only: `midWrite` is called after the header and the first tensor are written to
 * the temporary file (a test kills the process there), `beforeRename` after the fsync.
 */
export const writeHooks: { midWrite?: (tmp: string) => void; beforeRename?: (tmp: string) => void } = {};

export function writeSafetensors(path: string, tensors: Map<string, SafeTensor> | Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new DeepwellError('INVALID_ARGUMENT', `Expected a string for safetensors metadata '${k}' but received ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new DeepwellError('INVALID_ARGUMENT', "Expected a tensor name other than '__metadata__'");
    const bytes = numel(t.shape) * BYTES[t.dtype];
    if (BYTES[t.dtype] === undefined) throw new DeepwellError('INVALID_DTYPE', `Expected a safetensors dtype (${Object.keys(BYTES).join(', ')}) for '${name}' but received ${String(t.dtype)}`);
    if (t.data.byteLength !== bytes) {
      throw new DeepwellError('SHAPE_MISMATCH', `Expected ${bytes} bytes (${t.dtype}[${t.shape.join(', ')}]) for tensor '${name}' but received ${t.data.byteLength}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // The header is padded with spaces to a multiple of 8 bytes, so the data section is aligned.
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));

  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, json);
    entries.forEach(([, t], k) => {
      writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      if (k === 0) writeHooks.midWrite?.(tmp);
    });
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw new DeepwellError('INVALID_ARGUMENT', `Could not write ${path}: ${(e as Error).message}`, { cause: e });
  }
  closeSync(fd);
  writeHooks.beforeRename?.(tmp);
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Where writeSafetensors puts `path`'s bytes before the rename (hidden, per process). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
}

export function readSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read checkpoint ${path}: ${(e as Error).message}`, { cause: e });
  }
  const bad = (why: string): never => {
    throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a valid safetensors file: ${why}`);
  };
  if (buf.length < 8) bad(`it has ${buf.length} bytes, fewer than the 8-byte header length`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) bad(`its header claims ${n} bytes but the file has ${buf.length - 8} after the length`);
  let header: Record<string, { dtype: SafeDType; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    return bad(`its header is not JSON (${(e as Error).message})`);
  }
  const data = buf.subarray(8 + n);
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const t = v as { dtype: SafeDType; shape: number[]; data_offsets: [number, number] };
    if (BYTES[t.dtype] === undefined) bad(`tensor '${name}' has dtype ${String(t.dtype)}, which Deepwell does not read`);
    const [b, e] = t.data_offsets ?? [];
    const want = numel(t.shape ?? []) * BYTES[t.dtype];
    if (!Number.isInteger(b) || !Number.isInteger(e) || e - b! !== want || e! > data.length) {
      bad(`tensor '${name}' (${t.dtype}[${(t.shape ?? []).join(', ')}]) has offsets [${b}, ${e}] for ${want} bytes in a data section of ${data.length}`);
    }
    // Copy into an aligned buffer of its own (the file's data section need not be aligned for a view).
    const bytes = new Uint8Array(want);
    bytes.set(data.subarray(b!, e!));
    tensors.set(name, { dtype: t.dtype, shape: t.shape, data: bytes });
  }
  return { tensors, metadata };
}

/** A tensor's bytes as f32 values (F32 only; other dtypes are an error naming the tensor). */
export function asFloat32(name: string, t: SafeTensor): Float32Array {
  if (t.dtype !== 'F32') throw new DeepwellError('INVALID_DTYPE', `Expected F32 for checkpoint tensor '${name}' but received ${t.dtype}`);
  return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
}
