// Issue 20, bad input into the trainer's data side: token shards (raw only when asked for, every
// format check on by default, damaged files refused or read exactly), the loader's options and a
// restored position that does not fit the data (refused, never looped over), schedules that go
// negative or NaN, and the loss curve (bounded ticks on any range, CSS colours only).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TokenLoader, constant, lossCurveSvg, readShard, warmupCosine, writeShard, type Shard } from '../src/index.js';
import { scheduledLr } from '../src/schedule.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-hostile-'));
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const randTokens = (n: number, vocab = 50257) => Uint16Array.from({ length: n }, () => int(0, vocab - 1));
let files = 0;
const file = (bytes: Uint8Array | string) => {
  const p = join(dir, `f${files++}.bin`);
  writeFileSync(p, bytes);
  return p;
};

describe('readShard refuses what is not an llm.c shard unless raw is asked for', () => {
  const tokens = randTokens(int(300, 700), 1000);
  const path = join(dir, 'good.bin');
  writeShard(path, tokens);
  const good = readFileSync(path);

  it('refuses a flipped bit in the magic, a truncated, PNG, text or zero-filled file', () => {
    const flipped = Buffer.from(good);
    flipped[int(0, 3)]! ^= 1 << int(0, 7);
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(randTokens(200).buffer)]);
    const bad = {
      flipped,
      truncated: good.subarray(0, int(1, good.length / 2 - 1) * 2), // always shorter than the file (int(2, 1000) * 2 could be all of it, which reads fine: the test failed now and then)
      png,
      text: Buffer.from('the quick brown fox jumps over the lazy dog, '.repeat(int(30, 60))),
      zeros: Buffer.alloc(2 * int(600, 1200)),
    };
    for (const [kind, bytes] of Object.entries(bad)) {
      const e = errorOf(() => readShard(file(bytes)));
      expect(e.code, kind).toBe('INVALID_ARGUMENT');
      expect(e.message, kind).toMatch(/is not a valid token shard: (.*magic number 20240520 but found|.*shorter than the llm.c header|its header says \d+ tokens .* \(truncated\?\))/);
    }
    // Raw must be asked for; then it reads the bytes as they are.
    expect(Array.from(readShard(file(bad.zeros), { format: 'raw' }).tokens)).toEqual(new Array(bad.zeros.length / 2).fill(0));
  });

  it('finds damaged tokens and header bytes through the checksum and the reserved ints', () => {
    const body = Buffer.from(good);
    const i = 1024 + int(0, 2 * tokens.length - 1);
    body[i]! ^= 1 << int(0, 7);
    expect(errorOf(() => readShard(file(body))).message).toMatch(/CRC-32 .*\(damaged tokens\)/);
    const header = Buffer.from(good);
    header[4 * int(5, 255) + int(0, 3)]! ^= 1 << int(0, 7);
    expect(errorOf(() => readShard(file(header))).message).toMatch(/reserved int \d+ is -?\d+, not 0/);
    // llm.c's own shards carry no checksum (ints 3 and 4 zero): read by every other check.
    const llmc = Buffer.from(good);
    llmc.fill(0, 12, 20);
    expect(Array.from(readShard(file(llmc)).tokens)).toEqual(Array.from(tokens));
  });

  it('refuses an llm.c file read as raw, unknown formats, non-integer vocab and non-string paths', () => {
    expect(errorOf(() => readShard(path, { format: 'raw' })).message).toMatch(/starts with the llm.c header/);
    expect(errorOf(() => readShard(path, { format: 'banana' as never })).message).toMatch(/^Expected one of 'llmc', 'raw' for readShard format but received "banana"/);
    for (const vocab of [NaN, Infinity, 1.5, 0, -3, 70000, '100']) {
      expect(errorOf(() => readShard(path, { vocab: vocab as number })).message, String(vocab)).toMatch(/for readShard vocab but received/);
    }
    const top = Math.max(...tokens);
    expect(errorOf(() => readShard(path, { vocab: top })).message).toMatch(new RegExp(`token \\d+ is ${top}, outside the vocabulary of ${top}`));
    expect(readShard(path, { vocab: top + 1 }).tokens.length).toBe(tokens.length);
    for (const p of [5, 0, null, Buffer.from(path), new URL(`file://${path}`)]) {
      expect(errorOf(() => readShard(p as never)).message).toMatch(/^Expected a file path \(a non-empty string\) for readShard path/);
    }
    expect(errorOf(() => readShard(path, { formt: 'raw' } as never)).message).toMatch(/did you mean format\?/);
    expect(errorOf(() => writeShard(join(dir, 'w.bin'), [])).message).toMatch(/Expected 1 to \d+ tokens/);
    expect(errorOf(() => writeShard(join(dir, 'w.bin'), 5 as never)).message).toMatch(/array or typed array of uint16 tokens/);
  });
});

describe('TokenLoader checks its options, its shards and a restored position', () => {
  const T = int(4, 12);
  const shards: Shard[] = [0, 1].map((k) => ({ name: `mem${k}`, tokens: randTokens(int(20, 40) * T + 1, 50) }));

  it('checks in-memory shards against vocab, and every number', () => {
    const e = errorOf(() => new TokenLoader({ shards, batchSize: 2, seqLen: T, vocab: 10 }));
    expect(e.message).toMatch(/shard mem0 is not a valid token shard: token \d+ is \d+, outside the vocabulary of 10/);
    for (const vocab of [NaN, Infinity, 0.5, 0]) expect(errorOf(() => new TokenLoader({ shards, batchSize: 2, seqLen: T, vocab })).message).toMatch(/TokenLoader vocab/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 2, seqLen: T, format: 'raw16' as never })).message).toMatch(/one of 'llmc', 'raw'/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 2 ** 20, seqLen: 2 ** 20 })).message).toMatch(/batchSize × seqLen of at most/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 2, seqLen: T, seed: NaN })).message).toMatch(/for seed but received NaN/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 2, seqLen: T, shuffle: 'no' as never })).message).toMatch(/a boolean for shuffle/);
    expect(errorOf(() => new TokenLoader({ shards: [{ name: 'x', tokens: [1, 2, 3] as never }], batchSize: 1, seqLen: 1 })).message).toMatch(/Uint16Array of tokens for loader shards\[0\]\.tokens/);
    expect(errorOf(() => new TokenLoader({ shards, batchSize: 2, seqLen: T, batch: 3 } as never)).message).toMatch(/did you mean batchSize\?/);
  });

  it('refuses a restored position outside the data, without looping over it', () => {
    const l = new TokenLoader({ shards, batchSize: 2, seqLen: T, seed: int(0, 1000) });
    for (let i = int(1, 30); i > 0; i--) l.next();
    const before = l.state;
    for (const sample of [4e9, 2 ** 53 - 1, 1e6 + int(0, 1000)]) {
      const t0 = performance.now();
      expect(errorOf(() => l.restore({ epoch: 0, shard: 0, sample })).message).toMatch(/Expected a loader state sample below \d+ .* but received/);
      expect(performance.now() - t0).toBeLessThan(1000);
    }
    for (const bad of [{ epoch: -1, shard: 0, sample: 0 }, { epoch: 0, shard: 0.5, sample: 0 }, { epoch: 2 ** 60, shard: 0, sample: 0 }, null, { epoch: 0, shard: 0 }]) {
      expect(errorOf(() => l.restore(bad as never)).code).toBe('INVALID_ARGUMENT');
    }
    expect(l.state).toEqual(before); // nothing half-applied
    // A position the loader itself reported is always accepted, and continues exactly.
    const a = new TokenLoader({ shards, batchSize: 3, seqLen: T, seed: 9 });
    for (let i = int(1, 40); i > 0; i--) a.next();
    const b = new TokenLoader({ shards, batchSize: 3, seqLen: T, seed: 9 });
    b.restore(a.state);
    expect(Array.from(b.next().tokens)).toEqual(Array.from(a.next().tokens));
  });
});

describe('schedules', () => {
  it('refuses bad options, and a schedule function that goes negative or NaN, naming the step', () => {
    expect(errorOf(() => warmupCosine({ lr: NaN, total: 10 })).message).toMatch(/positive learning rate/);
    for (const minLr of [NaN, null]) expect(errorOf(() => warmupCosine({ lr: 1, total: 10, minLr: minLr as number })).message).toMatch(/minLr/);
    expect(errorOf(() => warmupCosine({ lr: 1, total: Infinity })).message).toMatch(/total/);
    expect(errorOf(() => warmupCosine({ lr: 1, total: 10, warmup: 2.5 })).message).toMatch(/warmup/);
    expect(errorOf(() => warmupCosine({ lr: 1, total: 10, warmpu: 2 } as never)).message).toMatch(/did you mean warmup\?/);
    expect(errorOf(() => constant(-1)).message).toMatch(/constant lr/);
    const f = warmupCosine({ lr: 1e-3, warmup: 3, total: 10 });
    for (const step of [-5, 0, 1.5, NaN]) expect(errorOf(() => f(step)).message).toMatch(/the schedule step/);
    const bad = int(2, 50);
    const g = (s: number) => (s === bad ? [-1e-3, NaN, Infinity][int(0, 2)]! : 1e-3);
    expect(scheduledLr(g, bad - 1)).toBe(1e-3);
    const e = errorOf(() => scheduledLr(g, bad));
    expect(e.message).toMatch(new RegExp(`^Expected a finite learning rate >= 0 from the schedule at step ${bad} but received`));
    expect(e.details.step).toBe(bad);
  });
});

describe('lossCurveSvg on hostile input', () => {
  const coordinates = (svg: string) => [...svg.matchAll(/\s(?:x|y|x1|y1|x2|y2|cx|cy|points|d)="([^"]*)"/g)].flatMap((m) => m[1]!.split(/[\s,A-Za-z]+/).filter(Boolean).map(Number));

  it('draws flat very large and very small values, and far-out steps, quickly, with finite coordinates', () => {
    const n = int(2, 50);
    const flats = [1e300, -1e300, 1e-300, 5e-324, 1e-310, 1e20 * Math.random() + 1e20, 1e300 * Math.random()];
    for (const y of flats) {
      for (const x0 of [1, 1e300, 2 ** 60 + int(0, 5), 1e-300]) {
        const t0 = performance.now();
        const svg = lossCurveSvg([{ name: 'train loss', points: Array.from({ length: n }, (_, i) => [x0 === 1 ? i + 1 : x0, y] as [number, number]), color: '#1f77b4' }]);
        expect(performance.now() - t0).toBeLessThan(1000);
        for (const v of coordinates(svg)) expect(Number.isFinite(v) && Math.abs(v) <= 820, `${v} for y ${y}, x ${x0}`).toBe(true);
      }
    }
  });

  it('accepts CSS colours only, and refuses points that are not pairs of numbers', () => {
    for (const color of ['#1f77b4', '#abc', '#11223344', 'red', 'rgb(31, 119, 180)', 'rgba(1,2,3,0.5)', 'hsl(120deg 50% 40%)']) {
      expect(lossCurveSvg([{ name: 'a', points: [[1, 2]], color }])).toContain(`fill="${color}"`);
    }
    for (const color of ['"/><script>alert(1)</script>', 'red" onload="x', 'url(javascript:alert(1))', '', '#12', 5, null, 'red;stroke:blue']) {
      expect(errorOf(() => lossCurveSvg([{ name: 'a', points: [[1, 2]], color: color as string }])).message, String(color)).toMatch(/^Expected a CSS colour .* for series\[0\]\.color/);
    }
    for (const p of [5, null, [1], [1, 2, 3], ['1', 2], [1, null]]) {
      expect(errorOf(() => lossCurveSvg([{ name: 'a', points: [[1, 2], p as never], color: 'red' }])).message).toMatch(/an \[x, y\] pair of numbers for series\[0\]\.points\[1\]/);
    }
    expect(errorOf(() => lossCurveSvg([{ name: 5 as never, points: [], color: 'red' }])).message).toMatch(/series\[0\]\.name/);
    expect(errorOf(() => lossCurveSvg([], { title: 5 as never })).message).toMatch(/lossCurveSvg title/);
    expect(errorOf(() => lossCurveSvg([], { smooth: 2 ** 31 - 1 })).message).toMatch(/lossCurveSvg smooth/);
    expect(errorOf(() => lossCurveSvg([], { titel: 'x' } as never)).message).toMatch(/did you mean title\?/);
  });
});
