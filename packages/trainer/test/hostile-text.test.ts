// Issue 20, bad input into tokenizers, prepareText and the run's reporting (JsonlLog, Progress):
// wrong types are refused with typed errors (a number is never a file descriptor, decode(5) is not
// ''), sizes are checked before anything is allocated (a shardTokens of 2^31 - 1 used to allocate
// 4 GiB up front), and a progress line that cannot be drawn is refused rather than thrown as a
// RangeError.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JsonlLog, Progress, charTokenizer, gpt2Tokenizer, loadTokenizer, prepareText, readShard, tokenizerByName } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-hostile-text-'));
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const words = ['alpha', 'beta', 'gamma', 'delta', 'sigma', 'omega', 'the', 'of', 'and'];
const text = () => Array.from({ length: int(50, 200) }, () => words[int(0, words.length - 1)]).join(' ');

describe('tokenizers on wrong types', () => {
  it('refuses non-strings to encode, non-arrays to decode and non-string paths', () => {
    const chars = charTokenizer(text());
    for (const t of [chars, gpt2Tokenizer()]) {
      for (const v of [5, null, undefined, ['a'], { toString: () => 'x' }]) {
        expect(errorOf(() => t.encode(v as never)).message).toMatch(new RegExp(`^Expected a string for the ${t.name} tokenizer's encode`));
      }
      for (const v of [5, 'abc', null, { length: 3 }]) {
        expect(errorOf(() => t.decode(v as never)).message).toMatch(new RegExp(`^Expected an array of token ids for the ${t.name} tokenizer's decode`));
      }
      const ids = t.encode('alpha beta');
      expect(t.decode(ids)).toBe('alpha beta');
      expect(t.decode(Uint16Array.from(ids))).toBe('alpha beta');
    }
    for (const p of [5, 0, null, Buffer.from('x')]) expect(errorOf(() => loadTokenizer(p as never)).message).toMatch(/file path .* for loadTokenizer path/);
    for (const c of [5, null, {}, true]) expect(errorOf(() => charTokenizer(c as never)).message).toMatch(/string or an iterable of characters/);
    expect(errorOf(() => tokenizerByName('char', 42 as never)).code).toBe('INVALID_ARGUMENT');
  });
});

describe('prepareText checks sizes before allocating', () => {
  it('allocates a shard buffer no larger than the text, and refuses bad numbers and keys', () => {
    const input = join(dir, `in${int(0, 1e6)}.txt`);
    const body = text();
    writeFileSync(input, body);
    const out = join(dir, `out${int(0, 1e6)}`);
    const r = prepareText({ inputs: [input], out, tokenizer: 'char', shardTokens: 2 ** 31 - 1, valFraction: 0 });
    expect(r.tokens.train).toBe(body.length);
    const shard = readShard(r.train[0]!.path, { vocab: r.tokenizer.vocabSize });
    expect(r.tokenizer.decode(shard.tokens)).toBe(body);
    expect(readdirSync(out).sort()).toEqual(['prepare.json', 'tokenizer.json', 'train_000000.bin']);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ valFraction: '0.2' }, /for prepare valFraction but received "0.2"/],
      [{ valFraction: NaN }, /prepare valFraction/],
      [{ shardTokens: 2 ** 31 }, /prepare shardTokens/],
      [{ chunkBytes: 2 ** 40 }, /prepare chunkBytes/],
      [{ chunkBytes: 1.5 }, /prepare chunkBytes/],
      [{ onProgress: 5 }, /a function for prepare onProgress/],
      [{ inputs: [input, 5] }, /prepare inputs\[1\]/],
      [{ shardToken: 5 }, /did you mean shardTokens\?/],
    ];
    for (const [over, re] of bad) {
      expect(errorOf(() => prepareText({ inputs: [input], out: join(dir, `o${int(0, 1e9)}`), tokenizer: 'char', ...over } as never)).message).toMatch(re);
    }
    expect(errorOf(() => prepareText({ inputs: [input], out: join(input, 'sub'), tokenizer: 'char' })).code).toBe('INVALID_ARGUMENT');
  });
});

describe("the run's reporting", () => {
  const sink = () => {
    const chunks: string[] = [];
    return { chunks, stream: { write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream };
  };
  it('Progress refuses a line it cannot draw, and bad settings', () => {
    const { chunks, stream } = sink();
    const p = new Progress(stream, int(1, 20), true);
    const line = { step: int(1, 50), total: 50, loss: 2 + Math.random(), lr: 1e-3, tokensPerSecond: 1000 * Math.random(), mfu: null, elapsed: 1 };
    p.step(line);
    expect(chunks.length).toBe(1);
    for (const over of [{ total: 0 }, { step: 51 }, { step: -1 }, { total: NaN }, { elapsed: NaN }, { loss: '2' }, { tokensPerSecond: -1 }]) {
      expect(errorOf(() => p.step({ ...line, ...over } as never)).message).toMatch(/^Expected .* for Progress step/);
    }
    expect(() => p.step({ ...line, tokensPerSecond: Infinity, loss: NaN })).not.toThrow(); // a 0 ms step, a diverged loss: shown as they are
    expect(errorOf(() => new Progress(stream, 0)).message).toMatch(/Progress every/);
    expect(errorOf(() => new Progress({} as never)).message).toMatch(/writable stream/);
    expect(errorOf(() => p.line(5 as never)).message).toMatch(/Progress line/);
  });

  it('JsonlLog refuses a non-string path, a bad owner and a record JSON cannot hold', () => {
    const path = join(dir, `log${int(0, 1e6)}.jsonl`);
    const log = new JsonlLog(path, { run: 'r1', resume: false });
    log.write({ event: 'step', step: 1, loss: 2.5 });
    expect(errorOf(() => log.write({ big: 1n })).message).toMatch(/a record JSON can hold/);
    expect(errorOf(() => log.write(5 as never)).message).toMatch(/a record \(a JSON object\)/);
    expect(readFileSync(path, 'utf8')).toBe('{"event":"step","step":1,"loss":2.5}\n');
    expect(errorOf(() => new JsonlLog(5 as never)).message).toMatch(/JsonlLog path/);
    expect(errorOf(() => new JsonlLog(path, { run: 5, resume: false } as never)).message).toMatch(/JsonlLog owner\.run/);
  });
});
