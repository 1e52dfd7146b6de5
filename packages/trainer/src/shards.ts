/**
 * Token shards: the formats GPT-2-style training data comes in.
 *   - 'llmc' (the default): a header of 256 int32 (little-endian) — magic 20240520, version 1,
 *     token count, the rest zero — then that many uint16 tokens. Shards written here also carry a
 *     CRC-32 of the tokens in the header's reserved ints 3 and 4 (a marker, then the checksum; llm.c
 *     reads only ints 0–2), so a damaged token is found too; a shard without one (llm.c's own) is
 *     checked by everything else.
 *   - 'raw': headerless uint16 tokens (nanoGPT's train.bin / val.bin). Never guessed: a file is
 *     read as raw only when `format: 'raw'` asks for it (any bytes of even length are "raw tokens",
 *     so a guess would take a damaged llm.c file, a PNG or a text for data).
 * A shard is read whole into memory (a GPT-2 shard of 100M tokens is 200 MB). Every read checks the
 * file against its format and says what is wrong: a truncated file, a foreign one, a token count
 * that disagrees with the size, a damaged header or checksum, a token outside the vocabulary.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { crc32 } from './crc32.js';
import { DeepwellError, checkInteger, checkKeys, checkOneOf, describe, invalid as expected } from '@deepwell/core';

export const LLMC_MAGIC = 20240520;
export const LLMC_VERSION = 1;
const HEADER_INTS = 256;
const HEADER_BYTES = HEADER_INTS * 4;
/** Header int 3 of a shard whose int 4 is the CRC-32 of its tokens ("DWCK"). */
const CRC_MARKER = 0x4b435744;
/** The most tokens a shard may hold: llm.c's count is an int32. */
const MAX_TOKENS = 2 ** 31 - 1;

export type ShardFormat = 'llmc' | 'raw';
export const SHARD_FORMATS: readonly ShardFormat[] = ['llmc', 'raw'];

export interface Shard {
  /** Where it came from (a path, or a description of an in-memory source). */
  name: string;
  tokens: Uint16Array;
}

export interface ReadShardOptions {
  /** 'llmc' (default) or 'raw' (headerless uint16 tokens, only when asked for). */
  format?: ShardFormat;
  /** When given, every token is checked to be below it (an integer in [1, 65536]). */
  vocab?: number;
}

function invalid(path: string, why: string): never {
  throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a valid token shard: ${why}`);
}

/** `options` of readShard (or a loader) checked: the format's name, the vocabulary. */
export function checkShardOptions(options: unknown, what: string): { format: ShardFormat; vocab: number | undefined } {
  if (options === undefined) return { format: 'llmc', vocab: undefined };
  checkKeys(options, ['format', 'vocab'], what);
  const o = options as ReadShardOptions;
  const format = o.format === undefined ? 'llmc' : checkOneOf(o.format, SHARD_FORMATS, `${what} format`);
  const vocab = o.vocab === undefined ? undefined : checkInteger(o.vocab, `${what} vocab`, 1, 65536);
  return { format, vocab };
}

/** The first token at or above `vocab`, as an error naming `name`. */
export function checkVocab(tokens: Uint16Array, vocab: number | undefined, name: string): void {
  if (vocab === undefined || vocab >= 65536) return;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i]! >= vocab) invalid(name, `token ${i} is ${tokens[i]}, outside the vocabulary of ${vocab}`);
  }
}

/**
 * Read a shard: llm.c's format unless `format: 'raw'` asks for headerless tokens. Refused with the
 * reason: a file that is not there, too short, without the magic, of another version, whose count
 * disagrees with its size, whose reserved header ints are not zero, whose checksum does not match,
 * or with a token at or above `vocab`.
 */
export function readShard(path: string, options: ReadShardOptions = {}): Shard {
  if (typeof path !== 'string' || path.length === 0) expected('a file path (a non-empty string)', 'readShard path', path);
  const { format, vocab } = checkShardOptions(options, 'readShard');
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read token shard ${path}: ${(e as Error).message}`, { cause: e });
  }
  const looksLlmc = buf.length >= 4 && buf.readInt32LE(0) === LLMC_MAGIC;
  let body: Buffer;
  if (format === 'llmc') {
    if (buf.length < HEADER_BYTES) invalid(path, `${buf.length} bytes is shorter than the llm.c header (${HEADER_BYTES} bytes)${looksLlmc ? ' (truncated?)' : ''}`);
    const magic = buf.readInt32LE(0);
    if (magic !== LLMC_MAGIC) invalid(path, `expected the llm.c magic number ${LLMC_MAGIC} but found ${magic} (a damaged or foreign file; a headerless uint16 shard needs format 'raw')`);
    const version = buf.readInt32LE(4);
    if (version !== LLMC_VERSION) invalid(path, `expected llm.c token-shard version ${LLMC_VERSION} (uint16 tokens) but found ${version}`);
    const count = buf.readInt32LE(8);
    const want = HEADER_BYTES + 2 * count;
    if (count <= 0 || buf.length !== want) invalid(path, `its header says ${count} tokens (${want} bytes in all) but the file has ${buf.length} bytes${buf.length < want ? ' (truncated?)' : ''}`);
    body = buf.subarray(HEADER_BYTES);
    const marker = buf.readInt32LE(12);
    const crc = buf.readUInt32LE(16);
    if (marker !== 0 && marker !== CRC_MARKER) invalid(path, `its header's int 3 is ${marker}, neither 0 (llm.c) nor the checksum marker (a damaged header)`);
    if (marker === 0 && crc !== 0) invalid(path, `its header's int 4 is ${crc} without the checksum marker (a damaged header)`);
    for (let i = 5; i < HEADER_INTS; i++) {
      if (buf.readInt32LE(4 * i) !== 0) invalid(path, `its header's reserved int ${i} is ${buf.readInt32LE(4 * i)}, not 0 (a damaged header)`);
    }
    if (marker === CRC_MARKER) {
      const actual = crc32(body);
      if (actual !== crc) invalid(path, `the tokens' CRC-32 is ${actual.toString(16).padStart(8, '0')} but the header records ${crc.toString(16).padStart(8, '0')} (damaged tokens)`);
    }
  } else {
    if (buf.length === 0) invalid(path, 'it is empty');
    if (buf.length % 2 !== 0) invalid(path, `a raw uint16 shard has an even number of bytes, this one ${buf.length} (truncated?)`);
    if (looksLlmc && buf.length >= 8 && buf.readInt32LE(4) === LLMC_VERSION) invalid(path, "it starts with the llm.c header (magic 20240520, version 1): read it with format 'llmc' (raw would take the header for 512 tokens)");
    body = buf;
  }
  const tokens = new Uint16Array(body.length / 2);
  for (let i = 0; i < tokens.length; i++) tokens[i] = body.readUInt16LE(2 * i);
  checkVocab(tokens, vocab, path);
  return { name: path, tokens };
}

/** Write a token shard, llm.c's format (with the tokens' CRC-32) or raw, atomically (temporary file, fsync, rename). */
export function writeShard(path: string, tokens: ArrayLike<number>, format: ShardFormat = 'llmc'): void {
  if (typeof path !== 'string' || path.length === 0) expected('a file path (a non-empty string)', 'writeShard path', path);
  if (!Array.isArray(tokens) && !(ArrayBuffer.isView(tokens) && !(tokens instanceof DataView))) expected('an array or typed array of uint16 tokens', 'writeShard tokens', tokens);
  checkOneOf(format, SHARD_FORMATS, 'writeShard format');
  const n = (tokens as ArrayLike<number>).length;
  if (n === 0 || n > MAX_TOKENS) throw new DeepwellError('INVALID_ARGUMENT', `Expected 1 to ${MAX_TOKENS} tokens for writeShard but received ${describe(tokens)} (${n} tokens)`);
  const body = Buffer.alloc(2 * n);
  for (let i = 0; i < n; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t > 65535) throw new DeepwellError('INVALID_ARGUMENT', `Expected uint16 tokens but token ${i} is ${describe(t)}`);
    body.writeUInt16LE(t, 2 * i);
  }
  const parts = [body];
  if (format === 'llmc') {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeInt32LE(LLMC_MAGIC, 0);
    header.writeInt32LE(LLMC_VERSION, 4);
    header.writeInt32LE(n, 8);
    header.writeInt32LE(CRC_MARKER, 12);
    header.writeUInt32LE(crc32(body), 16);
    parts.unshift(header);
  }
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (const p of parts) writeSync(fd, p);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // the temporary file could not be removed either: the error below says what failed
    }
    throw new DeepwellError('INVALID_ARGUMENT', `Could not write token shard ${path}: ${(e as Error).message}`, { cause: e });
  }
}
