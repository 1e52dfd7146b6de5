/**
 * Token shards: the formats GPT-2-style training data comes in.
 *   - llm.c: a header of 256 int32 (little-endian) — magic 20240520, version 1, token count — then
 *     that many uint16 tokens.
 *   - raw: headerless uint16 tokens (nanoGPT's train.bin / val.bin).
 * A shard is read whole into memory (a GPT-2 shard of 100M tokens is 200 MB). Every read checks the
 * file against its format and says what is wrong: a truncated file, a foreign one, a token count
 * that disagrees with the size, a token outside the vocabulary.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { DeepwellError } from '@deepwell/core';

export const LLMC_MAGIC = 20240520;
export const LLMC_VERSION = 1;
const HEADER_BYTES = 256 * 4;

export type ShardFormat = 'llmc' | 'raw';

export interface Shard {
  /** Where it came from (a path, or a description of an in-memory source). */
  name: string;
  tokens: Uint16Array;
}

function invalid(path: string, why: string): never {
  throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a valid token shard: ${why}`);
}

/** Read a shard; `format` defaults to llm.c when the file starts with its magic number, else raw. */
export function readShard(path: string, options: { format?: ShardFormat; vocab?: number } = {}): Shard {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read token shard ${path}: ${(e as Error).message}`, { cause: e });
  }
  const looksLlmc = buf.length >= 4 && buf.readInt32LE(0) === LLMC_MAGIC;
  const format = options.format ?? (looksLlmc ? 'llmc' : 'raw');
  let body: Buffer;
  if (format === 'llmc') {
    if (buf.length < HEADER_BYTES) invalid(path, `${buf.length} bytes is shorter than the llm.c header (${HEADER_BYTES} bytes)`);
    const magic = buf.readInt32LE(0);
    if (magic !== LLMC_MAGIC) invalid(path, `expected the llm.c magic number ${LLMC_MAGIC} but found ${magic} (a foreign file, or a raw shard: pass format 'raw')`);
    const version = buf.readInt32LE(4);
    if (version !== LLMC_VERSION) invalid(path, `expected llm.c token-shard version ${LLMC_VERSION} (uint16 tokens) but found ${version}`);
    const count = buf.readInt32LE(8);
    const want = HEADER_BYTES + 2 * count;
    if (count <= 0 || buf.length !== want) invalid(path, `its header says ${count} tokens (${want} bytes in all) but the file has ${buf.length} bytes${buf.length < want ? ' (truncated?)' : ''}`);
    body = buf.subarray(HEADER_BYTES);
  } else {
    if (buf.length % 2 !== 0) invalid(path, `a raw uint16 shard has an even number of bytes, this one ${buf.length} (truncated?)`);
    if (buf.length === 0) invalid(path, 'it is empty');
    body = buf;
  }
  const tokens = new Uint16Array(body.length / 2);
  for (let i = 0; i < tokens.length; i++) tokens[i] = body.readUInt16LE(2 * i);
  if (options.vocab !== undefined) {
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i]! >= options.vocab) invalid(path, `token ${i} is ${tokens[i]}, outside the vocabulary of ${options.vocab}`);
    }
  }
  return { name: path, tokens };
}

/** Write an llm.c token shard (atomically: temporary file, fsync, rename). */
export function writeShard(path: string, tokens: ArrayLike<number>, format: ShardFormat = 'llmc'): void {
  const body = Buffer.alloc(2 * tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t > 65535) throw new DeepwellError('INVALID_ARGUMENT', `Expected uint16 tokens but token ${i} is ${t}`);
    body.writeUInt16LE(t, 2 * i);
  }
  const parts = [body];
  if (format === 'llmc') {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeInt32LE(LLMC_MAGIC, 0);
    header.writeInt32LE(LLMC_VERSION, 4);
    header.writeInt32LE(tokens.length, 8);
    parts.unshift(header);
  }
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  for (const p of parts) writeSync(fd, p);
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}
