// prepareText: text files into llm.c shards, read back here by a reader of its own (not readShard).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gpt2Tokenizer, loadTokenizer, prepareText } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-prepare-'));
let n = 0;
const fresh = () => join(dir, `out${n++}`);

/** The llm.c shard format from its definition: 256 int32 header (magic, version, count), uint16 tokens. */
function readLlmc(path: string): number[] {
  const b = readFileSync(path);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  expect(v.getInt32(0, true)).toBe(20240520);
  expect(v.getInt32(4, true)).toBe(1);
  const count = v.getInt32(8, true);
  expect(b.byteLength).toBe(1024 + 2 * count);
  return Array.from({ length: count }, (_, i) => v.getUint16(1024 + 2 * i, true));
}

/** Random lines of words, punctuation, runs of spaces and a few multi-byte characters. */
function randomText(lines: number): string {
  const words = ['the', 'The', 'cat', 'sat', 'on', 'mat', 'é', '中文', '🙂', '1234', ',', '.', "'s", '  ', '\t'];
  const out: string[] = [];
  for (let l = 0; l < lines; l++) {
    const k = 1 + Math.floor(Math.random() * 12);
    out.push(Array.from({ length: k }, () => words[Math.floor(Math.random() * words.length)]).join(Math.random() < 0.2 ? '  ' : ' '));
    if (Math.random() < 0.2) out.push('');
  }
  return out.join('\n');
}

describe('prepareText', () => {
  it('streams GPT-2 tokens into shards equal to encoding each file whole, split 90/10', () => {
    const texts = [randomText(300), randomText(200)];
    const inputs = texts.map((t, i) => {
      const p = join(dir, `doc${i}.txt`);
      writeFileSync(p, t);
      return p;
    });
    const out = fresh();
    const seen: number[] = [];
    // Chunks of 64 bytes: many cuts, each must leave the tokens as they are.
    const r = prepareText({ inputs, out, tokenizer: 'gpt2', chunkBytes: 64, shardTokens: 500, onProgress: (p) => p.pass === 'tokens' && seen.push(p.bytes) });
    const gpt2 = gpt2Tokenizer();
    const want = texts.flatMap((t) => [50256, ...gpt2.encode(t)]);
    const train = r.train.flatMap((s) => readLlmc(s.path));
    const val = r.val.flatMap((s) => readLlmc(s.path));
    expect([...train, ...val]).toEqual(want);
    expect(r.tokens).toEqual({ train: train.length, val: val.length });
    // Validation is the input's last ~10% (cut at a line boundary).
    expect(val.length / want.length).toBeGreaterThan(0.05);
    expect(val.length / want.length).toBeLessThan(0.15);
    // Shards of 500 tokens but the last of each split.
    for (const split of [r.train, r.val]) split.forEach((s, i) => (i < split.length - 1 ? expect(s.tokens).toBe(500) : expect(s.tokens).toBeLessThanOrEqual(500)));
    expect(r.train.length).toBeGreaterThan(1);
    // The tokenizer beside the shards decodes them back to the text.
    const tok = loadTokenizer(join(out, 'tokenizer.json'));
    expect(tok.decode([...train, ...val])).toBe(texts.map((t) => `<|endoftext|>${t}`).join(''));
    expect(seen.at(-1)).toBe(texts.reduce((a, t) => a + Buffer.byteLength(t), 0));
    expect(seen.every((b, i) => i === 0 || b >= seen[i - 1]!)).toBe(true);
    const manifest = JSON.parse(readFileSync(join(out, 'prepare.json'), 'utf8'));
    expect(manifest.tokens).toEqual(r.tokens);
  });

  it('cuts CRLF text, one long line and a BOM without changing a token, and splits them', () => {
    const gpt2 = gpt2Tokenizer();
    const cases = {
      crlf: Array.from({ length: 300 }, (_, i) => `line ${i} of the file,  with  spaces`).join('\r\n'),
      oneLine: Array.from({ length: 600 }, () => ['word', 'more', '  ', 'é中', '🙂'][Math.floor(Math.random() * 5)]).join(' '),
      bom: `\ufeff${randomText(100)}`,
    };
    for (const [name, text] of Object.entries(cases)) {
      const p = join(dir, `${name}.txt`);
      writeFileSync(p, text);
      const r = prepareText({ inputs: [p], out: fresh(), tokenizer: 'gpt2', chunkBytes: 32 });
      const ids = [...r.train, ...r.val].flatMap((s) => readLlmc(s.path));
      expect(ids, name).toEqual([50256, ...gpt2.encode(text)]);
      expect(r.tokens.val, name).toBeGreaterThan(0);
      expect(r.warnings).toEqual([]);
    }
    // No space to cut at: all train, and the result says so.
    const p = join(dir, 'nospace.txt');
    writeFileSync(p, 'x'.repeat(500));
    const r = prepareText({ inputs: [p], out: fresh(), tokenizer: 'gpt2', chunkBytes: 32 });
    expect(r.tokens.val).toBe(0);
    expect(r.warnings[0]).toMatch(/no validation tokens/);
  });

  it('prepares characters with the char tokenizer, files concatenated', () => {
    const texts = ['hello 🙂\n', randomText(50)];
    const inputs = texts.map((t, i) => {
      const p = join(dir, `c${i}.txt`);
      writeFileSync(p, t);
      return p;
    });
    const out = fresh();
    const r = prepareText({ inputs, out, tokenizer: 'char', valFraction: 0.2, chunkBytes: 16 });
    const ids = [...r.train, ...r.val].flatMap((s) => readLlmc(s.path));
    const tok = loadTokenizer(join(out, 'tokenizer.json'));
    expect(tok.name).toBe('char');
    expect(tok.vocabSize).toBe(new Set(Array.from(texts.join(''))).size);
    expect(tok.decode(ids)).toBe(texts.join(''));
    const valChars = r.tokens.val / ids.length;
    expect(valChars).toBeGreaterThan(0.1);
    expect(valChars).toBeLessThan(0.3);
  });

  it('says what is wrong with its input and never overwrites', () => {
    const good = join(dir, 'good.txt');
    writeFileSync(good, 'some text\nmore\n');
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '');
    const binary = join(dir, 'bin.txt');
    writeFileSync(binary, Buffer.from([0x61, 0xff, 0xfe, 0x62]));
    const out = fresh();
    expect(errorOf(() => prepareText({ inputs: [good, empty], out, tokenizer: 'gpt2' })).message).toMatch(/Expected text in .*empty.txt but the file is empty/);
    expect(errorOf(() => prepareText({ inputs: [join(dir, 'nope.txt')], out, tokenizer: 'gpt2' })).message).toMatch(/Could not read the text file .*nope.txt/);
    expect(errorOf(() => prepareText({ inputs: [good], out, tokenizer: 'bpe' as never })).message).toMatch(/Expected one of 'gpt2', 'char' for prepare tokenizer but received "bpe"/);
    expect(errorOf(() => prepareText({ inputs: [], out, tokenizer: 'gpt2' })).message).toMatch(/at least one text file/);
    expect(errorOf(() => prepareText({ inputs: [good], out, tokenizer: 'gpt2', valFraction: 0.9 })).message).toMatch(/\[0, 0.5\] for prepare valFraction but received 0.9/);
    expect(errorOf(() => prepareText({ inputs: [good], out, tokenizer: 'gpt2', shardTokens: 0 })).message).toMatch(/prepare shardTokens/);
    expect(errorOf(() => prepareText({ inputs: [binary], out: fresh(), tokenizer: 'char' })).message).toMatch(/bin.txt is not UTF-8 text/);
    expect(errorOf(() => prepareText({ inputs: [good], out: good, tokenizer: 'char' })).message).toMatch(/Expected a directory for prepare out but .*good.txt is a file/);
    prepareText({ inputs: [good], out, tokenizer: 'gpt2', valFraction: 0 });
    const before = readFileSync(join(out, 'train_000000.bin'));
    expect(errorOf(() => prepareText({ inputs: [good, good], out, tokenizer: 'gpt2' })).message).toMatch(/without shards for prepare but .* holds .*train_000000.bin.*nothing was overwritten/);
    expect(readFileSync(join(out, 'train_000000.bin'))).toEqual(before);
  });
});
