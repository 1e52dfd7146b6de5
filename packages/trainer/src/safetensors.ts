/**
 * The safetensors file format (as specified by Hugging Face's `safetensors`): an 8-byte
 * little-endian header length N, N bytes of JSON — for each tensor {dtype, shape, data_offsets:
 * [begin, end]} relative to the data section, and an optional "__metadata__" map of strings — then
 * the tensors' bytes, little-endian, in the order of their offsets. Written by hand: the format is a
 * page of spec, and what we need around it (atomic writes, validation with clear errors) no
 * maintained npm package offers (the `safetensors` package is a 0.0.1 placeholder).
 *
 * writeSafetensors writes atomically: a temporary file beside the target, fsync, rename over the
 * target, fsync of the directory. A crash at any point leaves either the old file or the new one;
 * a write that fails removes its temporary file.
 *
 * Integrity: every file written here carries, in the metadata key `deepwell.crc32`, a CRC-32 per
 * tensor (over its name, dtype and shape, then its bytes) and one over the rest of the metadata
 * (`__metadata__`), as a JSON map of 8 hex digits. Reading verifies them when present (other
 * programs' files have none; other readers ignore the key). CRC-32 is node's zlib one (about
 * 5 GB/s here, against 1.5 GB/s for sha256: measured on a 256 MiB buffer), with a table-driven
 * copy for Node versions before 20.15; it catches any burst of up to 32 flipped bits.
 *
 * Reading checks the header against the spec before it copies anything: a JSON object, each tensor
 * a known dtype, a shape of non-negative integers, offsets that agree with them, no name twice,
 * and offsets that tile the data section exactly (no gaps, overlaps or trailing bytes).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { crc32 } from './crc32.js';
import { DeepwellError, checkShape, describe, editDistance, invalid } from '@deepwell/core';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I32' | 'U16' | 'I64' | 'U8';
const BYTES: Record<SafeDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I32: 4, U16: 2, I64: 8, U8: 1 };
const DTYPES = Object.keys(BYTES) as SafeDType[];

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** The raw little-endian bytes (a typed array of the dtype's width, or bytes). */
  data: ArrayBufferView;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  /** The string metadata (without `deepwell.crc32`, which reading has verified). */
  metadata: Record<string, string>;
}

/** The metadata key of the checksums (a JSON map: tensor name or `__metadata__` → 8 hex digits). */
export const CHECKSUM_KEY = 'deepwell.crc32';
/** The largest header read (the reference implementation's limit, 100 MB). */
const MAX_HEADER = 100_000_000;

/**
 * A metadata entry that is the checksum key damaged: a key within 3 edits of it, or a value shaped
 * like the checksums (a flipped bit in the key's name must not turn a file into one without
 * checksums). Reserved on write for the same reason.
 */
const likeChecksums = (k: string, v: string) => k !== CHECKSUM_KEY && (editDistance(k, CHECKSUM_KEY) <= 3 || v.startsWith('{"__metadata__":"'));

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
const plainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
/** A tensor's checksum: its name, dtype and shape, then its bytes. */
function tensorCrc(name: string, dtype: string, shape: readonly number[], bytes: Uint8Array): string {
  return hex(crc32(bytes, crc32(Buffer.from(JSON.stringify([name, dtype, shape]), 'utf8'))));
}
/** The metadata's checksum: its entries (the checksum key left out) sorted by key. */
function metadataCrc(metadata: Record<string, string>): string {
  const entries = Object.entries(metadata).filter(([k]) => k !== CHECKSUM_KEY).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return hex(crc32(Buffer.from(JSON.stringify(entries), 'utf8')));
}

/** A path argument: a non-empty string (a number would be a file descriptor to node's fs). */
export function checkPath(path: unknown, what: string): string {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) invalid('a file path (a non-empty string)', what, path);
  return path;
}

/**
 * For crash tests only: `midWrite` is called after the header and the first tensor are written to
 * the temporary file (a test kills the process there), `beforeRename` after the fsync.
 */
export const writeHooks: { midWrite?: (tmp: string) => void; beforeRename?: (tmp: string) => void } = {};

/** The tensors argument checked: [name, tensor] pairs with their byte lengths. */
function checkTensors(tensors: unknown): [string, SafeTensor, number][] {
  if (!(tensors instanceof Map) && !plainObject(tensors)) invalid('a Map or an object of tensors { dtype, shape, data }', 'writeSafetensors tensors', tensors);
  const entries = tensors instanceof Map ? [...(tensors as Map<unknown, unknown>)] : Object.entries(tensors);
  return entries.map(([name, t]) => {
    if (typeof name !== 'string') invalid('a string tensor name', 'writeSafetensors tensors', name);
    if (name === '__metadata__') invalid("a tensor name other than '__metadata__'", 'writeSafetensors tensors', name);
    const what = `tensor '${name}'`;
    if (!plainObject(t)) invalid('a tensor { dtype, shape, data }', what, t);
    if (typeof t.dtype !== 'string' || !DTYPES.includes(t.dtype as SafeDType)) invalid(`a safetensors dtype (${DTYPES.join(', ')})`, `the dtype of ${what}`, t.dtype, 'INVALID_DTYPE');
    const shape = checkShape(t.shape, `the shape of ${what}`);
    const dtype = t.dtype as SafeDType;
    const bytes = numel(shape) * BYTES[dtype];
    if (!Number.isSafeInteger(bytes)) invalid('a shape of fewer than 2^53 bytes', `the shape of ${what}`, t.shape);
    if (!ArrayBuffer.isView(t.data)) invalid('a typed array or bytes', `the data of ${what}`, t.data);
    const data = t.data as ArrayBufferView;
    if (data.byteLength !== bytes) {
      throw new DeepwellError('SHAPE_MISMATCH', `Expected ${bytes} bytes (${dtype}[${shape.join(', ')}]) for tensor '${name}' but received ${data.byteLength}`);
    }
    return [name, { dtype, shape: [...shape], data }, bytes] as [string, SafeTensor, number];
  });
}

export function writeSafetensors(path: string, tensors: Map<string, SafeTensor> | Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  checkPath(path, 'the safetensors path');
  const entries = checkTensors(tensors);
  if (!plainObject(metadata)) invalid('an object of strings', 'safetensors metadata', metadata);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') invalid('a string', `safetensors metadata '${k}'`, v);
  }
  const near = Object.entries(metadata).find(([k, v]) => likeChecksums(k, v));
  if (near) invalid(`metadata keys more than 3 edits from '${CHECKSUM_KEY}' with values not shaped like its checksums (reserved: a damaged checksum key must be told from a key of the caller's)`, 'safetensors metadata', near[0]);
  if (metadata[CHECKSUM_KEY] !== undefined) invalid(`metadata without '${CHECKSUM_KEY}' (the checksums are written by writeSafetensors)`, 'safetensors metadata', metadata[CHECKSUM_KEY]);
  const sums: Record<string, string> = { __metadata__: metadataCrc(metadata) };
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t, bytes] of entries) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    sums[name] = tensorCrc(name, t.dtype, t.shape, bytesOf(t.data));
    offset += bytes;
  }
  // The metadata goes first (JSON keeps insertion order; readers do not care).
  const full = { __metadata__: { ...metadata, [CHECKSUM_KEY]: JSON.stringify(sums) }, ...header };
  // The header is padded with spaces to a multiple of 8 bytes, so the data section is aligned.
  let json = Buffer.from(JSON.stringify(full), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));

  const tmp = tempPathFor(path);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    writeSync(fd, len);
    writeSync(fd, json);
    entries.forEach(([, t], k) => {
      const b = bytesOf(t.data);
      for (let done = 0; done < b.length; ) done += writeSync(fd!, b, done, b.length - done);
      if (k === 0) writeHooks.midWrite?.(tmp);
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    writeHooks.beforeRename?.(tmp);
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // already failing: the write's error is the one to report
      }
    }
    rmSync(tmp, { force: true });
    if (DeepwellError.is(e)) throw e;
    throw new DeepwellError('INVALID_ARGUMENT', `Could not write ${path}: ${(e as Error).message} (nothing was written; the temporary file was removed)`, { cause: e });
  }
  syncDirectory(path);
}

/** fsync of the directory after the rename (best effort where the platform cannot: Windows, some filesystems). */
function syncDirectory(path: string): void {
  let dir: number;
  try {
    dir = openSync(dirname(path), 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EISDIR' && code !== 'EBADF' && code !== 'ENOTSUP') {
      throw new DeepwellError('INVALID_ARGUMENT', `Wrote ${path} but could not sync its directory: ${(e as Error).message}`, { cause: e });
    }
  } finally {
    closeSync(dir);
  }
}

/** Where writeSafetensors puts `path`'s bytes before the rename (hidden, per process). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
}

/**
 * The first key that appears twice in one object of a JSON text (JSON.parse keeps the last one
 * silently), or null. `text` must be valid JSON.
 */
export function duplicateKey(text: string): string | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const str = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): string | null => {
    ws();
    const c = text[i];
    if (c === '"') {
      str();
      return null;
    }
    if (c === '{' || c === '[') {
      i++;
      const keys = c === '{' ? new Set<string>() : null;
      ws();
      if (text[i] === (c === '{' ? '}' : ']')) {
        i++;
        return null;
      }
      for (;;) {
        ws();
        if (keys) {
          const k = str();
          if (keys.has(k)) return k;
          keys.add(k);
          ws();
          i++; // ':'
        }
        const dup = value();
        if (dup !== null) return dup;
        ws();
        if (text[i++] !== ',') return null; // '}' or ']'
      }
    }
    while (i < text.length && !',]} \n\r\t'.includes(text[i]!)) i++; // a number, true, false or null
    return null;
  };
  return value();
}

export function readSafetensors(path: string): SafetensorsFile {
  checkPath(path, 'the safetensors path');
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const { tensors, metadata } = parseSafetensors(buf, path);
  return { tensors, metadata };
}

/** A safetensors file's bytes checked and split into tensors (copies) and metadata; `path` names it in errors. */
export function parseSafetensors(buf: Uint8Array, path: string): SafetensorsFile & { checksummed: boolean } {
  const bad = (why: string, code: 'INVALID_ARGUMENT' | 'INVALID_DTYPE' | 'SHAPE_MISMATCH' = 'INVALID_ARGUMENT'): never => {
    throw new DeepwellError(code, `${path} is not a valid safetensors file: ${why}`, { details: { path } });
  };
  if (buf.length < 8) bad(`it has ${buf.length} bytes, fewer than the 8-byte header length`);
  const n64 = Buffer.from(buf.buffer, buf.byteOffset, 8).readBigUInt64LE(0);
  if (n64 > BigInt(buf.length - 8)) bad(`its header claims ${n64} bytes but the file has ${buf.length - 8} after the length`);
  const n = Number(n64);
  if (n > MAX_HEADER) bad(`its header has ${n} bytes, more than the format's limit of ${MAX_HEADER}`);
  let text: string;
  let header: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n));
    header = JSON.parse(text);
  } catch (e) {
    return bad(`its header is not JSON text (${(e as Error).message})`);
  }
  if (!plainObject(header)) return bad(`its header is ${describe(header)}, not a JSON object`);
  const dup = duplicateKey(text);
  if (dup !== null) bad(`its header names '${dup}' twice`);
  const data = buf.subarray(8 + n);
  let metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number; dtype: SafeDType; shape: number[] }[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!plainObject(v)) bad(`its __metadata__ is ${describe(v)}, not an object of strings`);
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) if (typeof s !== 'string') bad(`its metadata '${k}' is ${describe(s)}, not a string`);
      metadata = { ...(v as Record<string, string>) };
      continue;
    }
    if (!plainObject(v)) bad(`tensor '${name}' is ${describe(v)}, not { dtype, shape, data_offsets }`);
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t.dtype !== 'string' || !DTYPES.includes(t.dtype as SafeDType)) bad(`tensor '${name}' has dtype ${describe(t.dtype)}, which Deepwell does not read (${DTYPES.join(', ')})`, 'INVALID_DTYPE');
    const dtype = t.dtype as SafeDType;
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`tensor '${name}' has shape ${describe(shape)}, not an array of non-negative integers`);
    const want = numel(shape as number[]) * BYTES[dtype];
    if (!Number.isSafeInteger(want)) bad(`tensor '${name}' has shape [${(shape as number[]).join(', ')}], of more than 2^53 bytes`);
    const offs = t.data_offsets;
    const [b, e] = Array.isArray(offs) ? (offs as unknown[]) : [];
    if (!Array.isArray(offs) || offs.length !== 2 || !Number.isSafeInteger(b) || !Number.isSafeInteger(e) || (b as number) < 0 || (e as number) < (b as number)) {
      bad(`tensor '${name}' has data_offsets ${describe(offs)}, not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = [b as number, e as number];
    if (end - begin !== want) bad(`tensor '${name}' (${dtype}[${(shape as number[]).join(', ')}]) has offsets [${begin}, ${end}] for ${want} bytes`, 'SHAPE_MISMATCH');
    if (end > data.length) bad(`tensor '${name}' (${dtype}[${(shape as number[]).join(', ')}]) has offsets [${begin}, ${end}] beyond a data section of ${data.length} bytes`);
    spans.push({ name, begin, end, dtype, shape: [...(shape as number[])] });
  }
  // The spec: the offsets tile the data section, in order, without gaps, overlaps or trailing bytes.
  const sorted = [...spans].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = 0;
  for (const s of sorted) {
    if (s.begin !== at) bad(`tensor '${s.name}' has offsets [${s.begin}, ${s.end}] where the data section's next byte is ${at} (${s.begin < at ? 'it overlaps another tensor' : 'a gap before it'}); the offsets must tile the data section`);
    at = s.end;
  }
  if (at !== data.length) bad(`its tensors' offsets end at byte ${at} of a data section of ${data.length} bytes (the offsets must tile the data section)`);
  verifyChecksums(metadata, spans, data, bad);
  const checksummed = metadata[CHECKSUM_KEY] !== undefined;
  delete metadata[CHECKSUM_KEY];
  const tensors = new Map<string, SafeTensor>();
  for (const s of spans) {
    // Copy into an aligned buffer of its own (the file's data section need not be aligned for a view).
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data: new Uint8Array(data.subarray(s.begin, s.end)) });
  }
  return { tensors, metadata, checksummed };
}

/** The checksums of `deepwell.crc32`, when the file has them, against the header and the bytes. */
function verifyChecksums(metadata: Record<string, string>, spans: { name: string; begin: number; end: number; dtype: string; shape: number[] }[], data: Uint8Array, bad: (why: string) => never): void {
  const near = Object.entries(metadata).find(([k, v]) => likeChecksums(k, v));
  if (near) bad(`its metadata key '${near[0]}' is where its checksums ('${CHECKSUM_KEY}') would be: it is damaged`);
  const raw = metadata[CHECKSUM_KEY];
  if (raw === undefined) return;
  let sums: unknown;
  try {
    sums = JSON.parse(raw);
  } catch {
    bad(`its checksums (metadata '${CHECKSUM_KEY}') are not JSON: it is damaged`);
  }
  if (!plainObject(sums) || !Object.values(sums).every((s) => typeof s === 'string' && /^[0-9a-f]{8}$/.test(s))) bad(`its checksums (metadata '${CHECKSUM_KEY}') are not a map of CRC-32s: it is damaged`);
  const map = sums as Record<string, string>;
  const names = new Set(spans.map((s) => s.name));
  const unknown = Object.keys(map).filter((k) => k !== '__metadata__' && !names.has(k));
  const missing = [...names].filter((k) => map[k] === undefined);
  if (unknown.length || missing.length || map.__metadata__ === undefined) {
    bad(`its checksums do not match its tensors (${missing.length ? `none for ${missing.slice(0, 3).join(', ')}` : unknown.length ? `checksums of tensors it lacks: ${unknown.slice(0, 3).join(', ')}` : 'none for the metadata'}): it is damaged`);
  }
  if (metadataCrc(metadata) !== map.__metadata__) bad('its metadata fails its checksum (CRC-32): it is damaged');
  for (const s of spans) {
    const got = tensorCrc(s.name, s.dtype, s.shape, data.subarray(s.begin, s.end));
    if (got !== map[s.name]) bad(`tensor '${s.name}' fails its checksum (CRC-32 ${got}, recorded ${map[s.name]}): its bytes or header are damaged`);
  }
}

/** A tensor's bytes as f32 values (F32 only; other dtypes are an error naming the tensor). */
export function asFloat32(name: string, t: SafeTensor): Float32Array {
  if (typeof name !== 'string') invalid('a tensor name', 'asFloat32', name);
  if (!plainObject(t) || !ArrayBuffer.isView(t.data)) invalid('a tensor { dtype, shape, data }', `asFloat32 '${name}'`, t);
  if (t.dtype !== 'F32') throw new DeepwellError('INVALID_DTYPE', `Expected F32 for checkpoint tensor '${name}' but received ${describe(t.dtype)}`);
  if (t.data.byteLength % 4 !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a multiple of 4 bytes for F32 tensor '${name}' but received ${t.data.byteLength}`);
  if (t.data.byteOffset % 4 !== 0) return new Float32Array(bytesOf(t.data).slice().buffer);
  return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
}

/** The index of the first NaN or ±Infinity of `a`, or -1 (one pass over the exponent bits). */
export function firstNonFinite(a: Float32Array): number {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) if ((u[i]! & 0x7f800000) === 0x7f800000) return i;
  return -1;
}
