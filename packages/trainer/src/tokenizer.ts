/**
 * Tokenizers for preparing text and decoding samples:
 *   - 'gpt2': GPT-2's byte-level BPE (50257 tokens, <|endoftext|> = 50256) through js-tiktoken, a
 *     JavaScript port of OpenAI's tiktoken, the encoder llm.c's and nanoGPT's preparation scripts
 *     use, so shards come out token for token as theirs (text is encoded as tiktoken's
 *     encode_ordinary does: "<|endoftext|>" inside a text is ordinary text, never the token).
 *   - 'char': one token per Unicode code point of the characters seen, in code point order
 *     (nanoGPT's shakespeare_char), for small experiments.
 * A tokenizer is recorded as JSON (`record()`, `tokenizerFromRecord`) beside the shards it made, so a
 * model knows how to decode them.
 */
import { readFileSync } from 'node:fs';
import { DeepwellError, checkOneOf, describe, invalid } from '@deepwell/core';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';

export const TOKENIZER_FORMAT = 'deepwell-tokenizer';
export const TOKENIZER_NAMES = ['gpt2', 'char'] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

/** What `tokenizer.json` holds. */
export type TokenizerRecord =
  | { format: typeof TOKENIZER_FORMAT; version: 1; name: 'gpt2'; vocabSize: 50257; eot: 50256 }
  | { format: typeof TOKENIZER_FORMAT; version: 1; name: 'char'; vocabSize: number; eot: null; chars: string[] };

export interface Tokenizer {
  readonly name: TokenizerName;
  /** Token ids are 0 .. vocabSize - 1. */
  readonly vocabSize: number;
  /** The token put before each document (GPT-2's <|endoftext|>, as llm.c does), or null (char). */
  readonly eot: number | null;
  encode(text: string): number[];
  /** Text of the ids; an id outside the vocabulary is an error. */
  decode(ids: ArrayLike<number>): string;
  record(): TokenizerRecord;
}

function checkIds(ids: ArrayLike<number>, vocabSize: number, name: string): number[] {
  if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) && !(ids instanceof DataView))) invalid('an array of token ids', `the ${name} tokenizer's decode`, ids);
  const out = Array.from(ids as ArrayLike<number>);
  for (let i = 0; i < out.length; i++) {
    const v = out[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= vocabSize) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected token ids in [0, ${vocabSize}) for the ${name} tokenizer but received ${v} at position ${i}`);
    }
  }
  return out;
}

function checkText(text: unknown, name: string): string {
  if (typeof text !== 'string') invalid('a string', `the ${name} tokenizer's encode`, text);
  return text;
}

let gpt2Encoder: Tiktoken | null = null;

/** GPT-2's BPE (the encoder is built once per process: its merge table takes ~0.3 s). */
export function gpt2Tokenizer(): Tokenizer {
  gpt2Encoder ??= new Tiktoken(gpt2Ranks);
  const enc = gpt2Encoder;
  return {
    name: 'gpt2',
    vocabSize: 50257,
    eot: 50256,
    encode: (text) => enc.encode(checkText(text, 'gpt2'), [], []),
    decode: (ids) => enc.decode(checkIds(ids, 50257, 'gpt2')),
    record: () => ({ format: TOKENIZER_FORMAT, version: 1, name: 'gpt2', vocabSize: 50257, eot: 50256 }),
  };
}

/** One token per distinct code point of `chars` (a string or the characters themselves), in code point order. */
export function charTokenizer(chars: string | Iterable<string>): Tokenizer {
  if (typeof chars !== 'string' && typeof (chars as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function') invalid('a string or an iterable of characters', 'the char tokenizer', chars);
  const set = new Set<string>();
  for (const c of typeof chars === 'string' ? Array.from(chars) : chars) {
    if (typeof c !== 'string' || Array.from(c).length !== 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected single characters for the char tokenizer but received ${describe(c)}`);
    set.add(c);
    if (set.size > 65536) break;
  }
  if (set.size === 0) throw new DeepwellError('INVALID_ARGUMENT', 'Expected at least one character for the char tokenizer but received none (an empty text?)');
  if (set.size > 65536) throw new DeepwellError('INVALID_ARGUMENT', `Expected at most 65536 distinct characters for the char tokenizer (uint16 shards) but received ${set.size}`);
  const list = [...set].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const index = new Map(list.map((c, i) => [c, i]));
  return {
    name: 'char',
    vocabSize: list.length,
    eot: null,
    encode(text) {
      checkText(text, 'char');
      const out: number[] = [];
      let i = 0;
      for (const c of text) {
        const id = index.get(c);
        if (id === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected characters of the char tokenizer's vocabulary (${list.length} characters) but received ${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) at character ${i}`);
        out.push(id);
        i++;
      }
      return out;
    },
    decode: (ids) => checkIds(ids, list.length, 'char').map((id) => list[id]).join(''),
    record: () => ({ format: TOKENIZER_FORMAT, version: 1, name: 'char', vocabSize: list.length, eot: null, chars: [...list] }),
  };
}

/** The tokenizer a record describes (`source` names it in errors: a path, say). */
export function tokenizerFromRecord(record: unknown, source = 'tokenizer record'): Tokenizer {
  if (typeof source !== 'string') invalid('a string (what the record came from)', 'tokenizerFromRecord source', source);
  const r = record as Partial<Record<string, unknown>> | null;
  if (r === null || typeof r !== 'object' || r.format !== TOKENIZER_FORMAT || r.version !== 1) {
    throw new DeepwellError('INVALID_ARGUMENT', `${source} is not a Deepwell tokenizer record (expected format '${TOKENIZER_FORMAT}', version 1)`);
  }
  const name = checkOneOf(r.name, TOKENIZER_NAMES, `the tokenizer name in ${source}`);
  if (name === 'gpt2') {
    if (r.vocabSize !== 50257 || r.eot !== 50256) throw new DeepwellError('INVALID_ARGUMENT', `${source}: expected GPT-2's vocabSize 50257 and eot 50256 but received ${String(r.vocabSize)} and ${String(r.eot)}`);
    return gpt2Tokenizer();
  }
  if (!Array.isArray(r.chars) || r.chars.length !== r.vocabSize) {
    throw new DeepwellError('INVALID_ARGUMENT', `${source}: expected a list of vocabSize (${String(r.vocabSize)}) characters for the char tokenizer but received ${Array.isArray(r.chars) ? r.chars.length : typeof r.chars}`);
  }
  const chars = r.chars as string[];
  const t = charTokenizer(chars);
  const sorted = t.record() as Extract<TokenizerRecord, { name: 'char' }>;
  if (t.vocabSize !== chars.length || sorted.chars.some((c, i) => c !== chars[i])) {
    throw new DeepwellError('INVALID_ARGUMENT', `${source}: expected the char tokenizer's characters distinct and in code point order`);
  }
  return t;
}

/** Read `tokenizer.json` (or any path holding a record). */
export function loadTokenizer(path: string): Tokenizer {
  if (typeof path !== 'string' || path.length === 0) invalid('a file path (a non-empty string)', 'loadTokenizer path', path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read the tokenizer ${path}: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `${path} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  return tokenizerFromRecord(json, path);
}

/** A tokenizer by name: 'gpt2', or 'char' over the characters given. */
export function tokenizerByName(name: unknown, chars?: string | Iterable<string>): Tokenizer {
  const n = checkOneOf(name, TOKENIZER_NAMES, 'tokenizer');
  if (n === 'gpt2') return gpt2Tokenizer();
  if (chars === undefined) throw new DeepwellError('INVALID_ARGUMENT', "Expected the characters of the text for the 'char' tokenizer but received none");
  return charTokenizer(chars);
}
