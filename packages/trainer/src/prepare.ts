/**
 * Text files → llm.c token shards (magic 20240520, uint16 tokens), as llm.c's and nanoGPT's
 * preparation scripts make them, streamed: a file is read in chunks (8 MiB by default), so a corpus
 * of many GB never sits in memory; only the shard being filled does.
 *
 *   - Tokenizer 'gpt2': each file is a document, preceded by <|endoftext|> (50256) as llm.c does.
 *     Chunks are cut only between a non-space and a space, a boundary GPT-2's pre-tokenizer always
 *     splits at, so the tokens equal those of encoding each file whole (a text without spaces is
 *     encoded whole).
 *   - Tokenizer 'char': a first pass collects the characters; the files are then concatenated.
 *   - Split: the last `valFraction` of the input (by bytes, over the files in order) is validation,
 *     cut at the first chunk boundary at or after that point (nanoGPT's 90/10 split by default).
 *   - Shards of at most `shardTokens` tokens: <out>/train_000000.bin …, <out>/val_000000.bin …,
 *     each written atomically; <out>/tokenizer.json records the tokenizer, <out>/prepare.json the
 *     inputs and counts.
 * It refuses an output directory that already holds shards or a tokenizer (nothing is overwritten).
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError, checkFunction, checkInteger, checkKeys, checkOneOf, describe, invalid } from '@deepwell/core';
import { writeShard } from './shards.js';
import { TOKENIZER_NAMES, charTokenizer, gpt2Tokenizer, type Tokenizer, type TokenizerName } from './tokenizer.js';

export interface PrepareOptions {
  /** UTF-8 text files, in order. */
  inputs: readonly string[];
  /** The output directory (created; it must not hold shards or a tokenizer already). */
  out: string;
  tokenizer: TokenizerName;
  /** The share of the input (by bytes) kept for validation, in [0, 0.5] (default 0.1). */
  valFraction?: number;
  /** Tokens per shard at most (default 100M, llm.c's FineWeb shards). */
  shardTokens?: number;
  /** Bytes read at a time (default 8 MiB). */
  chunkBytes?: number;
  /** Called after each chunk. */
  onProgress?: (p: { bytes: number; totalBytes: number; tokens: number; pass: 'characters' | 'tokens' }) => void;
}

export interface PrepareResult {
  tokenizer: Tokenizer;
  tokenizerPath: string;
  train: { path: string; tokens: number }[];
  val: { path: string; tokens: number }[];
  tokens: { train: number; val: number };
  /** What the caller should hear: a validation split that came out empty, say. */
  warnings: string[];
}

const MANIFEST = 'prepare.json';

/** Each file's text, chunk by chunk (whole code points), then '' at its end. */
function* chunksOf(path: string, chunkBytes: number): Generator<{ text: string; bytes: number }> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(chunkBytes);
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // keep a BOM, as Python's utf-8 does
    for (;;) {
      const n = readSync(fd, buf, 0, chunkBytes, null);
      let text: string;
      try {
        text = decoder.decode(buf.subarray(0, n), { stream: n > 0 });
      } catch (e) {
        throw new DeepwellError('INVALID_ARGUMENT', `${path} is not UTF-8 text: ${(e as Error).message}`, { cause: e });
      }
      yield { text, bytes: n };
      if (n === 0) return;
    }
  } finally {
    closeSync(fd);
  }
}

const isSpace = (c: string | undefined) => c !== undefined && /\s/u.test(c);

// A cut between a non-space and a space (JavaScript's \s, which js-tiktoken's pattern uses) never
// changes GPT-2's tokens: no piece of its pre-tokenizer runs from a non-space into a space (a word
// takes at most one space, in front), and the regex only looks ahead, so each side matches alone as
// it does in the whole text.
const safeAt = (s: string, i: number) => i > 0 && i < s.length && !isSpace(s[i - 1]) && isSpace(s[i]);

/** The last safe cut of s, or -1. */
function lastSafeCut(s: string): number {
  for (let i = s.length - 1; i > 0; i--) if (safeAt(s, i)) return i;
  return -1;
}

/** The first safe cut of s at or after `from`, or -1. */
function firstSafeCut(s: string, from: number): number {
  for (let i = Math.max(from, 1); i < s.length; i++) if (safeAt(s, i)) return i;
  return -1;
}

/** The index of the first UTF-16 unit of s whose UTF-8 offset is at least `byte` (whole code points). */
function charIndexAtByte(s: string, byte: number): number {
  let b = 0;
  let i = 0;
  for (const c of s) {
    if (b >= byte) return i;
    b += Buffer.byteLength(c);
    i += c.length;
  }
  return s.length;
}

/** Shards of one split, filled token by token and written when full. */
class ShardWriter {
  readonly written: { path: string; tokens: number }[] = [];
  #buf: Uint16Array;
  #n = 0;
  /** `most`: a bound on the tokens there can be (the buffer is never larger). */
  constructor(readonly out: string, readonly split: 'train' | 'val', readonly size: number, most: number) {
    this.#buf = new Uint16Array(Math.min(size, most));
  }
  push(ids: readonly number[]): void {
    for (const id of ids) {
      this.#buf[this.#n++] = id;
      if (this.#n === this.#buf.length) this.flush();
    }
  }
  flush(): void {
    if (this.#n === 0) return;
    const path = join(this.out, `${this.split}_${String(this.written.length).padStart(6, '0')}.bin`);
    writeShard(path, this.#buf.subarray(0, this.#n));
    this.written.push({ path, tokens: this.#n });
    this.#n = 0;
  }
  get total(): number {
    return this.written.reduce((a, w) => a + w.tokens, 0) + this.#n;
  }
}

const PREPARE_KEYS = ['inputs', 'out', 'tokenizer', 'valFraction', 'shardTokens', 'chunkBytes', 'onProgress'];

function checkOptions(o: PrepareOptions): Required<Omit<PrepareOptions, 'onProgress'>> & { sizes: number[] } {
  checkKeys(o, PREPARE_KEYS, 'prepare');
  if (!Array.isArray(o.inputs) || o.inputs.length === 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected at least one text file for prepare inputs but received ${describe(o.inputs)}`);
  o.inputs.forEach((p, i) => {
    if (typeof p !== 'string' || p.length === 0) invalid('a file path (a non-empty string)', `prepare inputs[${i}]`, p);
  });
  checkOneOf(o.tokenizer, TOKENIZER_NAMES, 'prepare tokenizer');
  if (typeof o.out !== 'string' || o.out === '') throw new DeepwellError('INVALID_ARGUMENT', `Expected an output directory for prepare out but received ${describe(o.out)}`);
  const valFraction = o.valFraction === undefined ? 0.1 : o.valFraction;
  if (typeof valFraction !== 'number' || !(valFraction >= 0 && valFraction <= 0.5)) invalid('a number in [0, 0.5]', 'prepare valFraction', o.valFraction);
  const shardTokens = o.shardTokens === undefined ? 100_000_000 : checkInteger(o.shardTokens, 'prepare shardTokens', 1, 2 ** 31 - 1);
  const chunkBytes = o.chunkBytes === undefined ? 8 << 20 : checkInteger(o.chunkBytes, 'prepare chunkBytes', 16, 2 ** 30);
  if (o.onProgress !== undefined) checkFunction(o.onProgress, 'prepare onProgress');
  const sizes = o.inputs.map((p) => {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      throw new DeepwellError('INVALID_ARGUMENT', `Could not read the text file ${p}: ${(e as Error).message}`, { cause: e });
    }
    if (!st.isFile()) throw new DeepwellError('INVALID_ARGUMENT', `Expected a text file for prepare inputs but ${p} is not a file`);
    if (st.size === 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected text in ${p} but the file is empty`);
    return st.size;
  });
  if (existsSync(o.out)) {
    if (!statSync(o.out).isDirectory()) throw new DeepwellError('INVALID_ARGUMENT', `Expected a directory for prepare out but ${o.out} is a file`);
    const taken = readdirSync(o.out).filter((f) => /^(train|val)_\d+\.bin$/.test(f) || f === 'tokenizer.json' || f === MANIFEST);
    if (taken.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected an output directory without shards for prepare but ${o.out} holds ${taken.slice(0, 3).join(', ')}${taken.length > 3 ? ', …' : ''}; choose another directory (nothing was overwritten)`);
  }
  return { inputs: o.inputs, out: o.out, tokenizer: o.tokenizer, valFraction, shardTokens, chunkBytes, sizes };
}

/** Prepare text files into token shards (see the file's header). */
export function prepareText(options: PrepareOptions): PrepareResult {
  const o = checkOptions(options);
  const totalBytes = o.sizes.reduce((a, b) => a + b, 0);
  const report = options.onProgress ?? (() => {});
  let tokenizer: Tokenizer;
  if (o.tokenizer === 'char') {
    const chars = new Set<string>();
    let bytes = 0;
    for (const path of o.inputs) {
      for (const c of chunksOf(path, o.chunkBytes)) {
        for (const ch of c.text) chars.add(ch);
        bytes += c.bytes;
        if (c.bytes) report({ bytes, totalBytes, tokens: 0, pass: 'characters' });
      }
    }
    tokenizer = charTokenizer(chars);
  } else {
    tokenizer = gpt2Tokenizer();
  }
  try {
    mkdirSync(o.out, { recursive: true });
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not make the output directory ${o.out}: ${(e as Error).message}`, { cause: e });
  }
  // Every token takes at least one byte of text (GPT-2's BPE and chars alike), plus <|endoftext|> per file.
  const most = totalBytes + o.inputs.length;
  const writers = { train: new ShardWriter(o.out, 'train', o.shardTokens, most), val: new ShardWriter(o.out, 'val', o.shardTokens, most) };
  const valFrom = o.valFraction > 0 ? Math.floor(totalBytes * (1 - o.valFraction)) : Infinity;
  let bytes = 0; // read
  let consumed = 0; // encoded
  const tokens = () => writers.train.total + writers.val.total;
  const split = () => (consumed >= valFrom ? writers.val : writers.train);
  /** Encode a piece that starts and ends at safe boundaries; cut it where validation starts. */
  const emit = (piece: string) => {
    const len = Buffer.byteLength(piece);
    if (consumed < valFrom && consumed + len > valFrom) {
      const at = charIndexAtByte(piece, valFrom - consumed);
      const k = tokenizer.name === 'char' ? at : firstSafeCut(piece, at);
      if (k > 0 && k < piece.length) {
        writers.train.push(tokenizer.encode(piece.slice(0, k)));
        writers.val.push(tokenizer.encode(piece.slice(k)));
        consumed += len;
        return;
      }
    }
    split().push(tokenizer.encode(piece));
    consumed += len;
  };
  for (const path of o.inputs) {
    if (tokenizer.eot !== null) split().push([tokenizer.eot]);
    let pending = '';
    for (const c of chunksOf(path, o.chunkBytes)) {
      bytes += c.bytes;
      pending += c.text;
      // Encode up to a boundary where cutting cannot change the tokens (char: anywhere).
      const cut = c.bytes === 0 || tokenizer.name === 'char' ? pending.length : lastSafeCut(pending);
      if (cut <= 0) continue;
      emit(pending.slice(0, cut));
      pending = pending.slice(cut);
      report({ bytes, totalBytes, tokens: tokens(), pass: 'tokens' });
    }
  }
  writers.train.flush();
  writers.val.flush();
  const tokenizerPath = join(o.out, 'tokenizer.json');
  writeFileSync(tokenizerPath, `${JSON.stringify(tokenizer.record())}\n`);
  const result: PrepareResult = {
    tokenizer,
    tokenizerPath,
    train: writers.train.written,
    val: writers.val.written,
    tokens: { train: writers.train.total, val: writers.val.total },
    warnings: [],
  };
  if (o.valFraction > 0 && result.tokens.val === 0) result.warnings.push(`no validation tokens: the input has no place to cut after ${((1 - o.valFraction) * 100).toFixed(0)}% of its bytes (GPT-2 cuts only between a non-space and a space), so everything is train`);
  const manifest = { inputs: o.inputs.map((p, i) => ({ path: p, bytes: o.sizes[i] })), tokenizer: tokenizer.name, vocabSize: tokenizer.vocabSize, valFraction: o.valFraction, shardTokens: o.shardTokens, train: result.train, val: result.val, tokens: result.tokens };
  writeFileSync(join(o.out, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  return result;
}
