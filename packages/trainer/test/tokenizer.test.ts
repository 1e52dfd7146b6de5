// The tokenizers: GPT-2's BPE against ids from its published vocabulary, the char tokenizer, and
// their records, on random text every run.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { charTokenizer, gpt2Tokenizer, loadTokenizer, tokenizerByName, tokenizerFromRecord } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-tokenizer-'));

/** Random text over ASCII words, punctuation, whitespace runs and a few multi-byte characters (é, 中, 🙂). */
function randomText(n: number): string {
  const pieces = ['the', ' The', 'cat', ' sat', '  ', '\n', '\n\n', '.', ',', "'s", ' 1234', 'é', '中文', '🙂', '\t', ' <|endoftext|>', 'zqx'];
  let s = '';
  for (let i = 0; i < n; i++) s += pieces[Math.floor(Math.random() * pieces.length)];
  return s;
}

describe('gpt2 tokenizer', () => {
  it('gives GPT-2’s ids and decodes them back', () => {
    const t = gpt2Tokenizer();
    expect([t.name, t.vocabSize, t.eot]).toEqual(['gpt2', 50257, 50256]);
    // Ids of GPT-2's vocabulary (encoder.json): "Hello" 15496, " world" 995, " the" 262, "\n\n" 628.
    expect(t.encode('Hello world')).toEqual([15496, 995]);
    expect(t.encode(' the')).toEqual([262]);
    expect(t.encode('\n\n')).toEqual([628]);
    expect(t.decode([50256])).toBe('<|endoftext|>');
    // A text that spells the special token is ordinary text (tiktoken's encode_ordinary), not 50256.
    const ids = t.encode('a <|endoftext|> b');
    expect(ids).not.toContain(50256);
    expect(t.decode(ids)).toBe('a <|endoftext|> b');
    for (let k = 0; k < 5; k++) {
      const text = randomText(200);
      const enc = t.encode(text);
      expect(enc.every((id) => Number.isInteger(id) && id >= 0 && id < 50256)).toBe(true);
      expect(t.decode(enc)).toBe(text);
      expect(enc.length).toBeLessThan(Buffer.byteLength(text) + 1); // byte-level BPE: at most a token per byte
    }
    expect(errorOf(() => t.decode([1, 50257])).message).toMatch(/Expected token ids in \[0, 50257\) for the gpt2 tokenizer but received 50257 at position 1/);
    expect(errorOf(() => t.decode([0.5])).code).toBe('INVALID_ARGUMENT');
  });
});

describe('char tokenizer', () => {
  it('numbers the distinct code points in order and round-trips', () => {
    const text = randomText(300);
    const t = charTokenizer(text);
    const distinct = [...new Set(Array.from(text))].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    expect(t.vocabSize).toBe(distinct.length);
    expect(t.eot).toBeNull();
    const ids = t.encode(text);
    expect(ids.length).toBe(Array.from(text).length); // 🙂 is one token, not two UTF-16 units
    expect(ids.map((id) => distinct[id]).join('')).toBe(text);
    expect(t.decode(ids)).toBe(text);
    expect(errorOf(() => t.encode('the ж')).message).toMatch(/received "ж" \(U\+0436\) at character 4/);
    expect(errorOf(() => t.decode([t.vocabSize])).message).toMatch(new RegExp(`Expected token ids in \\[0, ${t.vocabSize}\\) for the char tokenizer`));
    expect(errorOf(() => charTokenizer('')).message).toMatch(/at least one character.*empty text/);
    expect(errorOf(() => charTokenizer(['ab'])).message).toMatch(/Expected single characters for the char tokenizer but received "ab"/);
  });
});

describe('tokenizer records', () => {
  it('load back as the same tokenizer, from a file too', () => {
    const text = randomText(100);
    for (const t of [gpt2Tokenizer(), charTokenizer(text)]) {
      const path = join(dir, `${t.name}.json`);
      writeFileSync(path, JSON.stringify(t.record()));
      const back = loadTokenizer(path);
      expect(back.record()).toEqual(t.record());
      expect(back.encode(text)).toEqual(t.encode(text));
    }
    expect(tokenizerByName('char', 'ab').vocabSize).toBe(2);
  });

  it('say what is wrong with a bad record, file or name', () => {
    expect(errorOf(() => tokenizerByName('bpe')).message).toMatch(/Expected one of 'gpt2', 'char' for tokenizer but received "bpe"/);
    expect(errorOf(() => tokenizerByName('char')).message).toMatch(/characters of the text/);
    expect(errorOf(() => tokenizerFromRecord({ format: 'x' }, 'a.json')).message).toMatch(/a.json is not a Deepwell tokenizer record/);
    const base = { format: 'deepwell-tokenizer', version: 1 };
    expect(errorOf(() => tokenizerFromRecord({ ...base, name: 'gpt3' }, 'b.json')).message).toMatch(/the tokenizer name in b.json/);
    expect(errorOf(() => tokenizerFromRecord({ ...base, name: 'gpt2', vocabSize: 50304, eot: 50256 }, 'c.json')).message).toMatch(/c.json: expected GPT-2's vocabSize 50257/);
    expect(errorOf(() => tokenizerFromRecord({ ...base, name: 'char', vocabSize: 3, eot: null, chars: ['a', 'b'] }, 'd.json')).message).toMatch(/d.json: expected a list of vocabSize \(3\) characters/);
    expect(errorOf(() => tokenizerFromRecord({ ...base, name: 'char', vocabSize: 2, eot: null, chars: ['b', 'a'] }, 'e.json')).message).toMatch(/distinct and in code point order/);
    expect(errorOf(() => loadTokenizer(join(dir, 'missing.json'))).message).toMatch(/Could not read the tokenizer .*missing.json/);
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, '{ nope');
    expect(errorOf(() => loadTokenizer(notJson)).message).toMatch(/bad.json is not JSON/);
  });
});
