// Token shards, the loader, safetensors and the schedule, on files in a fresh temporary directory.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LLMC_MAGIC, Progress, TokenLoader, readSafetensors, readShard, warmupCosine, writeSafetensors, writeShard, type Shard } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-trainer-'));
const randTokens = (n: number, vocab = 50257) => Uint16Array.from({ length: n }, () => Math.floor(Math.random() * vocab));

describe('token shards', () => {
  it('reads what it writes, in the llm.c and the raw format', () => {
    const tokens = randTokens(1000 + Math.floor(Math.random() * 100));
    for (const format of ['llmc', 'raw'] as const) {
      const path = join(dir, `s.${format}.bin`);
      writeShard(path, tokens, format);
      const bytes = readFileSync(path);
      expect(bytes.length).toBe(2 * tokens.length + (format === 'llmc' ? 1024 : 0));
      if (format === 'llmc') expect([bytes.readInt32LE(0), bytes.readInt32LE(4), bytes.readInt32LE(8)]).toEqual([LLMC_MAGIC, 1, tokens.length]);
      expect(Array.from(readShard(path, format === 'raw' ? { format: 'raw' } : {}).tokens)).toEqual(Array.from(tokens));
    }
  });

  it('says what is wrong with a truncated, foreign or mislabelled shard', () => {
    const path = join(dir, 'good.bin');
    writeShard(path, randTokens(100, 50));
    const good = readFileSync(path);
    const bad = (name: string, bytes: Buffer) => {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      return p;
    };
    expect(errorOf(() => readShard(bad('trunc.bin', good.subarray(0, good.length - 7)))).message).toMatch(/header says 100 tokens .*truncated/);
    expect(errorOf(() => readShard(bad('short.bin', good.subarray(0, 100)), { format: 'llmc' })).message).toMatch(/shorter than the llm.c header/);
    const foreign = Buffer.from(good);
    foreign.writeInt32LE(12345, 0);
    expect(errorOf(() => readShard(bad('foreign.bin', foreign), { format: 'llmc' })).message).toMatch(/magic number 20240520 but found 12345/);
    const v2 = Buffer.from(good);
    v2.writeInt32LE(2, 4);
    expect(errorOf(() => readShard(bad('v2.bin', v2))).message).toMatch(/version 1 .* found 2/);
    expect(errorOf(() => readShard(bad('odd.bin', Buffer.alloc(7)), { format: 'raw' })).message).toMatch(/even number of bytes/);
    expect(errorOf(() => readShard(path, { vocab: 10 })).message).toMatch(/outside the vocabulary of 10/);
    expect(errorOf(() => readShard(join(dir, 'missing.bin'))).message).toMatch(/Could not read token shard/);
  });
});

describe('TokenLoader', () => {
  const T = 8;
  const shards: Shard[] = [0, 1, 2].map((k) => ({ name: `mem${k}`, tokens: Uint16Array.from({ length: 10 * T + 1 + k * 3 }, (_, i) => (k * 1000 + i) % 65536) }));
  const samples = 30; // 10 per shard
  const startsOf = (l: TokenLoader, batches: number) => Array.from({ length: batches }, () => l.next()).flatMap(({ tokens, targets }) => {
    const out: number[] = [];
    for (let b = 0; b < tokens.length / T; b++) {
      for (let t = 0; t < T; t++) expect(targets[b * T + t]).toBe(tokens[b * T + t]! + 1); // next-token targets
      out.push(tokens[b * T]!);
    }
    return out;
  });

  it('visits every sample once per epoch, shuffled reproducibly by the seed', () => {
    const a = startsOf(new TokenLoader({ shards, batchSize: 5, seqLen: T, seed: 7 }), samples / 5);
    expect(new Set(a).size).toBe(samples);
    expect(startsOf(new TokenLoader({ shards, batchSize: 5, seqLen: T, seed: 7 }), samples / 5)).toEqual(a);
    expect(startsOf(new TokenLoader({ shards, batchSize: 5, seqLen: T, seed: 8 }), samples / 5)).not.toEqual(a);
    const plain = startsOf(new TokenLoader({ shards, batchSize: 5, seqLen: T, shuffle: false }), samples / 5);
    expect(plain.slice(0, 3)).toEqual([0, T, 2 * T]);
  });

  it('splits an epoch between ranks without overlap', () => {
    const ranks = [0, 1, 2].map((rank) => startsOf(new TokenLoader({ shards, batchSize: 2, seqLen: T, seed: 3, rank, worldSize: 3 }), samples / 6));
    const all = ranks.flat();
    expect(new Set(all).size).toBe(samples);
  });

  it('continues exactly from a saved position, across shard and epoch boundaries', () => {
    const a = new TokenLoader({ shards, batchSize: 4, seqLen: T, seed: 11 });
    startsOf(a, 5 + Math.floor(Math.random() * 5));
    const state = a.state;
    const rest = startsOf(a, 12);
    const b = new TokenLoader({ shards, batchSize: 4, seqLen: T, seed: 11 });
    b.restore(state);
    expect(startsOf(b, 12)).toEqual(rest);
  });

  it('rejects bad options and a shard too short for one sample', () => {
    expect(errorOf(() => new TokenLoader({ shards: [], batchSize: 1, seqLen: T })).message).toMatch(/at least one shard/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 0, seqLen: T })).message).toMatch(/positive integer for batchSize/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 1, seqLen: T, rank: 3, worldSize: 3 })).message).toMatch(/rank in \[0, 2\]/);
    expect(errorOf(() => new TokenLoader({ shards: [{ name: 'tiny', tokens: new Uint16Array(T) }], batchSize: 1, seqLen: T }).next()).message).toMatch(/at least 9 tokens .* shard tiny/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 1, seqLen: T }).restore({ epoch: 0, shard: 5, sample: 0 })).message).toMatch(/within 3 shards/);
  });
});

describe('safetensors', () => {
  it('round-trips tensors and metadata, and rejects damaged files', () => {
    const path = join(dir, 'x.safetensors');
    const a = Float32Array.from({ length: 12 }, () => Math.random() - 0.5);
    const b = Int32Array.from({ length: 5 }, () => Math.floor(Math.random() * 1e6));
    writeSafetensors(path, { a: { dtype: 'F32', shape: [3, 4], data: a }, b: { dtype: 'I32', shape: [5], data: b } }, { step: '7' });
    const f = readSafetensors(path);
    expect(f.metadata).toEqual({ step: '7' });
    expect(Array.from(new Float32Array(f.tensors.get('a')!.data.buffer))).toEqual(Array.from(a));
    expect(Array.from(new Int32Array(f.tensors.get('b')!.data.buffer))).toEqual(Array.from(b));
    const bytes = readFileSync(path);
    expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0); // the data section is 8-byte aligned
    const p2 = join(dir, 'trunc.safetensors');
    writeFileSync(p2, bytes.subarray(0, bytes.length - 4));
    expect(errorOf(() => readSafetensors(p2)).message).toMatch(/tensor 'b' .* offsets/);
    writeFileSync(p2, Buffer.from('not a safetensors file'));
    expect(errorOf(() => readSafetensors(p2)).message).toMatch(/not a valid safetensors file/);
    expect(errorOf(() => writeSafetensors(p2, { a: { dtype: 'F32', shape: [5], data: a } })).message).toMatch(/Expected 20 bytes/);
  });
});

describe('warmupCosine', () => {
  it('warms up linearly, then decays by a cosine to minLr', () => {
    const f = warmupCosine({ lr: 1e-3, warmup: 10, total: 110, minLr: 1e-4 });
    expect(f(1)).toBeCloseTo(1e-4, 12);
    expect(f(10)).toBeCloseTo(1e-3, 12);
    expect(f(60)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12);
    expect(f(110)).toBeCloseTo(1e-4, 12);
    expect(f(500)).toBeCloseTo(1e-4, 12);
    for (let s = 11; s < 110; s++) expect(f(s + 1)).toBeLessThan(f(s));
    expect(errorOf(() => warmupCosine({ lr: -1, total: 10 })).message).toMatch(/positive learning rate/);
    expect(errorOf(() => warmupCosine({ lr: 1, total: 10, warmup: 11 })).message).toMatch(/\[0, 10\] for warmup/);
  });
});

describe('Progress', () => {
  const sink = () => {
    const chunks: string[] = [];
    return { chunks, stream: { write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream };
  };
  const line = (step: number) => ({ step, total: 100, loss: 2 + Math.random(), lr: 1e-3, tokensPerSecond: 12345, mfu: 0.25, elapsed: step * 0.5 });

  it('redraws one bar with an ETA on a TTY', () => {
    const { chunks, stream } = sink();
    const p = new Progress(stream, 10, true);
    p.step(line(50));
    expect(chunks[0]).toMatch(/^\r\[#{12}\.{12}\] 50\/100 .*12,345 tok\/s {2}MFU 25\.0% {2}ETA 00:25\x1b\[K$/);
  });

  it('prints plain lines every n steps otherwise', () => {
    const { chunks, stream } = sink();
    const p = new Progress(stream, 10, false);
    for (let s = 1; s <= 25; s++) p.step(line(s));
    expect(chunks.length).toBe(3); // steps 1, 10, 20
    expect(chunks[1]).toMatch(/^step 10\/100 {2}loss [\d.]+ .* ETA 00:45\n$/);
    expect(chunks.join('')).not.toMatch(/\r/);
  });
});
