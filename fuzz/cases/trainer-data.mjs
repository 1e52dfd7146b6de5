// The trainer's data side and options (issue 20):
//  - damaged token shards (lib.mjs's `damage` of valid llm.c shards written in run()): read by
//    readShard or a TokenLoader, each must be refused with a DeepwellError or read as exactly the
//    original tokens; foreign files (PNG, text, zeros, random bytes, empty) are never raw tokens
//    unless format 'raw' asks; raw shards read exactly;
//  - bad arguments to every export of shards, loader, schedule, plot, prepare, tokenizer and
//    metrics: wrong types, bad numbers, huge sizes, unknown keys, number paths (file descriptors to
//    node's fs), loader states outside the data, schedules that go negative, colours that are not CSS;
//  - the Trainer's options: each option with junk must be refused by the constructor, before any
//    capture; a few tiny valid fits train with finite losses; a schedule function that goes
//    negative is refused at its step; a checkpoint whose data position does not fit is refused;
//  - valid random inputs: round-trips (write → read, text → shards → text), loader batches whose
//    targets are the next tokens, schedules in range, loss curves with finite coordinates.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import {
  JsonlLog, LLMC_MAGIC, Progress, TOKENIZER_FORMAT, TokenLoader, Trainer, charTokenizer, constant, gpt2Tokenizer, loadTokenizer, lossCurveSvg, markovShard,
  prepareText, readSafetensors, readShard, tokenizerByName, tokenizerFromRecord, warmupCosine, writeSafetensors, writeShard,
} from '@deepwell/trainer';
import { BAD_INTEGERS, NON_FINITE, damage, junk, nonFinite, show } from '../lib.mjs';

// ---- helpers (all work happens inside run) ----
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const tokensOf = (r, n, vocab) => Uint16Array.from({ length: n }, () => r.int(0, vocab - 1));
const NOT_PATHS = [5, 0, -1, null, undefined, true, {}, [], () => 1, Buffer.from('x'), new Uint8Array(3), 1n, ''];
/** A small text of words (spaces between, so GPT-2's chunking has places to cut). */
const WORDS = ['the', 'light', 'water', 'earth', 'and', 'was', 'good', 'night', 'day', 'of', 'In', 'beginning'];
const textOf = (r, n) => Array.from({ length: n }, () => WORDS[r.int(0, WORDS.length - 1)]).join(r.bool(0.1) ? '\n' : ' ');

let n = 0;
/** A fresh path under the worker's scratch folder. */
const fresh = (ctx, name) => {
  const d = join(ctx.dir, 'trainer-data');
  mkdirSync(d, { recursive: true });
  return join(d, `${n++}-${name}`);
};

/** The svg's coordinates, as numbers. */
const coordinates = (svg) => [...svg.matchAll(/\s(?:x|y|x1|y1|x2|y2|cx|cy|points|d|width|height)="([^"]*)"/g)].flatMap((m) => m[1].split(/[\s,A-Za-z]+/).filter(Boolean).map(Number));
function svgProblem(svg, W = 800, H = 400) {
  if (typeof svg !== 'string' || !svg.startsWith('<svg')) return 'not an svg';
  if (/NaN|Infinity|undefined/.test(svg)) return 'NaN, Infinity or undefined in the svg';
  for (const v of coordinates(svg)) if (!Number.isFinite(v) || Math.abs(v) > Math.max(W, H) + 20) return `coordinate ${v} outside the picture`;
  if (/<script|onload=|javascript:/i.test(svg)) return 'markup injected';
  return undefined;
}

/** A tiny model's Trainer options (the shard made in run). */
function tinyOptions(r, over = {}) {
  const corpus = new MarkovCorpus({ vocab: 16, seed: r.int(1, 1e6) });
  const shard = markovShard(corpus, 2000, 'train');
  return { model: new GPT({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 1, nEmbd: 8 }), train: new TokenLoader({ shards: [shard], batchSize: 2, seqLen: 8, seed: r.int(0, 1000) }), device: 'cpu', steps: 2, log: { progress: false }, ...over };
}

export function cases(rng, ctx) {
  const out = [];
  const push = (c) => out.push(c);

  // ---- damaged llm.c shards: refused, or read as exactly the original ----
  for (let i = 0; i < 460; i++) {
    const r = rng.fork();
    const count = rng.int(1, 300);
    const vocab = rng.pick([16, 256, 50257, 65536]);
    const withVocab = rng.bool(0.5);
    push({
      name: `trainer.readShard: damaged llm.c shard #${i} (${count} tokens, vocab ${vocab}${withVocab ? ', checked' : ''})`,
      entry: ['trainer.readShard', 'trainer.writeShard'],
      expect: 'either',
      run: () => {
        const tokens = tokensOf(r, count, vocab);
        const good = fresh(ctx, 'good.bin');
        writeShard(good, tokens);
        const d = damage(readFileSync(good), r);
        const p = fresh(ctx, 'damaged.bin');
        writeFileSync(p, d.bytes);
        return { kind: d.kind, tokens, read: readShard(p, withVocab ? { vocab } : {}).tokens };
      },
      check: (v) => (same(Array.from(v.read), Array.from(v.tokens)) ? undefined : `the ${v.kind} shard read as ${v.read.length} other tokens`),
    });
  }
  for (let i = 0; i < 90; i++) {
    const r = rng.fork();
    const seqLen = rng.int(1, 8);
    push({
      name: `trainer.TokenLoader#next: a damaged shard file #${i} (seqLen ${seqLen})`,
      entry: ['trainer.TokenLoader#next', 'trainer.writeShard'],
      expect: 'either',
      run: () => {
        const tokens = tokensOf(r, r.int(seqLen + 1, 200), 64);
        const good = fresh(ctx, 'good.bin');
        writeShard(good, tokens);
        const d = damage(readFileSync(good), r);
        const p = fresh(ctx, 'damaged.bin');
        writeFileSync(p, d.bytes);
        const l = new TokenLoader({ shards: [p], batchSize: 2, seqLen, shuffle: false, vocab: 64 });
        return { tokens, batch: l.next(), seqLen };
      },
      check: ({ tokens, batch, seqLen: T }) => {
        // Unshuffled: sample k starts at k·T of the original tokens.
        for (let b = 0; b < 2; b++) {
          for (let t = 0; t < T; t++) {
            const k = b % Math.floor((tokens.length - 1) / T);
            if (batch.tokens[b * T + t] !== tokens[k * T + t] || batch.targets[b * T + t] !== tokens[k * T + t + 1]) return `batch row ${b} is not the original tokens`;
          }
        }
        return undefined;
      },
    });
  }

  // ---- foreign files: never tokens unless raw is asked for ----
  const FOREIGN = {
    png: (r) => Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...Array.from({ length: r.int(100, 2000) }, () => r.int(0, 255))]),
    text: (r) => Buffer.from(textOf(r, r.int(100, 800))),
    zeros: (r) => new Uint8Array(2 * r.int(1, 1500)),
    random: (r) => Uint8Array.from({ length: 2 * r.int(1, 1500) }, () => r.int(0, 255)),
    empty: () => new Uint8Array(0),
    magicOnly: (r) => { const b = Buffer.alloc(2 * r.int(2, 600)); b.writeInt32LE(LLMC_MAGIC, 0); return b; },
  };
  for (let i = 0; i < 72; i++) {
    const kind = rng.pick(Object.keys(FOREIGN));
    const r = rng.fork();
    push({
      name: `trainer.readShard: a ${kind} file #${i}`,
      entry: 'trainer.readShard',
      expect: 'error',
      run: () => {
        const p = fresh(ctx, `${kind}.bin`);
        writeFileSync(p, FOREIGN[kind](r));
        return readShard(p, r.bool() ? {} : { format: 'llmc' });
      },
    });
  }
  for (let i = 0; i < 24; i++) {
    const r = rng.fork();
    push({
      name: `trainer.TokenLoader: a text file as a shard #${i}`,
      entry: 'trainer.TokenLoader#next',
      expect: 'error',
      run: () => {
        const p = fresh(ctx, 'text.bin');
        writeFileSync(p, textOf(r, r.int(200, 600)));
        return new TokenLoader({ shards: [p], batchSize: 1, seqLen: 4 }).next();
      },
    });
  }

  // ---- raw shards: exact when asked for, refused otherwise ----
  for (let i = 0; i < 60; i++) {
    const r = rng.fork();
    const count = rng.int(1, 400);
    const how = rng.pick(['raw', 'raw odd length', 'raw read as llmc', 'llmc read as raw']);
    push({
      name: `trainer.readShard: ${how} #${i} (${count} tokens)`,
      entry: ['trainer.readShard', 'trainer.writeShard'],
      expect: how === 'raw' ? 'ok' : how === 'raw read as llmc' ? 'either' : 'error',
      run: () => {
        const tokens = tokensOf(r, count, 65536);
        if (how === 'raw' && count >= 2 && tokens[0] === (LLMC_MAGIC & 0xffff) && tokens[1] === LLMC_MAGIC >>> 16) tokens[0] = 0; // not llm.c's header by chance
        const p = fresh(ctx, 'raw.bin');
        writeShard(p, tokens, how === 'llmc read as raw' ? 'llmc' : 'raw');
        if (how === 'raw odd length') writeFileSync(p, readFileSync(p).subarray(0, 2 * count - 1));
        return { tokens, read: readShard(p, how === 'raw read as llmc' ? {} : { format: 'raw' }).tokens };
      },
      check: (v) => (same(Array.from(v.read), Array.from(v.tokens)) ? undefined : 'a raw shard read as other tokens'),
    });
  }

  // ---- readShard and writeShard: bad arguments ----
  for (let i = 0; i < 110; i++) {
    const r = rng.fork();
    const what = rng.pick(['path', 'options', 'format', 'vocab', 'key', 'missing', 'directory']);
    const bad = what === 'path' ? rng.pick(NOT_PATHS) : what === 'options' ? rng.pick([5, 'llmc', true, [], null, () => 1]) : what === 'format' ? rng.pick(['raw16', 'LLMC', '', 'u16', 5, null, 'raw-u32']) : what === 'vocab' ? rng.pick([...BAD_INTEGERS, ...NON_FINITE, 0, 65537, '100', null]) : what === 'key' ? rng.pick(['formt', 'vocabSize', 'dtype']) : null;
    push({
      name: `trainer.readShard: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.readShard',
      expect: 'error',
      run: () => {
        const p = fresh(ctx, 'good.bin');
        writeShard(p, tokensOf(r, 50, 100));
        const args = { path: [bad], options: [p, bad], format: [p, { format: bad }], vocab: [p, { vocab: bad }], key: [p, { [bad]: 1 }], missing: [`${p}.missing`], directory: [ctx.dir] }[what];
        return readShard(...args);
      },
    });
  }
  for (let i = 0; i < 60; i++) {
    const what = rng.pick(['path', 'tokens', 'token', 'format']);
    const bad = what === 'path' ? rng.pick(NOT_PATHS) : what === 'tokens' ? rng.pick([5, null, 'abc', {}, [], new DataView(new ArrayBuffer(4)), undefined]) : what === 'token' ? rng.pick([65536, -1, 1.5, NaN, Infinity, '3', null, 2 ** 53]) : rng.pick(['raw16', '', 'LLMC', 5, null]);
    push({
      name: `trainer.writeShard: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.writeShard',
      expect: 'error',
      run: () => {
        const p = fresh(ctx, 'w.bin');
        const args = { path: [bad, [1, 2, 3]], tokens: [p, bad], token: [p, [1, bad, 3]], format: [p, [1, 2, 3], bad] }[what];
        return writeShard(...args);
      },
    });
  }
  for (let i = 0; i < 20; i++) {
    const r = rng.fork();
    const count = rng.int(1, 2000);
    push({
      name: `trainer.writeShard → readShard: ${count} random tokens #${i}`,
      entry: ['trainer.writeShard', 'trainer.readShard'],
      expect: 'ok',
      run: () => {
        const tokens = tokensOf(r, count, 65536);
        const p = fresh(ctx, 'rt.bin');
        writeShard(p, r.bool() ? tokens : Array.from(tokens));
        return { tokens, read: readShard(p, { vocab: 65536 }).tokens };
      },
      check: (v) => (same(Array.from(v.read), Array.from(v.tokens)) ? undefined : 'read back other tokens'),
    });
  }

  // ---- TokenLoader: options, batches, positions ----
  const memShard = (r, n, vocab = 50) => ({ name: 'mem', tokens: tokensOf(r, n, vocab) });
  const LOADER_BAD = {
    shards: () => rng.pick([[], null, 5, 'a.bin', [5], [null], [{ name: 'x' }], [{ name: 'x', tokens: [1, 2, 3] }], [{ name: 5, tokens: new Uint16Array(20) }], [''], [{ name: 'x', tokens: new Uint16Array(20), extra: 1 }]]),
    batchSize: () => rng.pick([...BAD_INTEGERS, 0, 2 ** 21, '2', null]),
    seqLen: () => rng.pick([...BAD_INTEGERS, 0, 2 ** 21, '2', null]),
    shuffle: () => rng.pick([1, 'yes', null, {}]),
    seed: () => rng.pick([...BAD_INTEGERS.filter((v) => !(Number.isInteger(v) && v >= 0 && v < 2 ** 32)), '1', null]),
    rank: () => rng.pick([-1, 1, 0.5, NaN, '0', 5]),
    worldSize: () => rng.pick([0, -1, 1.5, NaN, Infinity, 65537, '2']),
    format: () => rng.pick(['raw16', 'LLMC', '', 5, null]),
    vocab: () => rng.pick([0, -1, 1.5, NaN, Infinity, 65537, '50', 10]),
    key: () => rng.pick(['batch', 'seq_len', 'shards_', 'world']),
    product: () => null,
  };
  for (let i = 0; i < 190; i++) {
    const r = rng.fork();
    const what = rng.pick(Object.keys(LOADER_BAD));
    const bad = LOADER_BAD[what]();
    push({
      name: `trainer.TokenLoader: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.TokenLoader',
      expect: 'error',
      run: () => {
        const o = { shards: [memShard(r, 200)], batchSize: 2, seqLen: 8 };
        if (what === 'key') o[bad] = 1;
        else if (what === 'product') Object.assign(o, { batchSize: 2 ** 14, seqLen: 2 ** 14 });
        else if (what === 'vocab' && bad === 10) o.vocab = 10; // tokens up to 49 in memory: above it
        else o[what] = bad;
        if (what === 'rank') o.worldSize = 1;
        return new TokenLoader(o);
      },
    });
  }
  for (let i = 0; i < 8; i++) {
    const v = junk(rng);
    push({ name: `trainer.TokenLoader: options ${show(v)} #${i}`, entry: 'trainer.TokenLoader', expect: 'error', run: () => new TokenLoader(v) });
  }
  for (let i = 0; i < 80; i++) {
    const r = rng.fork();
    const B = rng.int(1, 6);
    const T = rng.int(1, 16);
    const worldSize = rng.int(1, 4);
    const rank = rng.int(0, worldSize - 1);
    const shuffle = rng.bool();
    const nShards = rng.int(1, 3);
    const onDisk = rng.bool(0.3);
    const batches = rng.int(1, 12);
    push({
      name: `trainer.TokenLoader#next: ${batches} batches of ${B}×${T}, rank ${rank}/${worldSize}, ${nShards} ${onDisk ? 'files' : 'shards'}${shuffle ? ', shuffled' : ''} #${i}`,
      entry: ['trainer.TokenLoader', 'trainer.TokenLoader#next', 'trainer.TokenLoader#state'],
      expect: 'ok',
      run: () => {
        // Token i of shard k is (k·1000 + i) mod 65536: a target is its token + 1.
        const shards = Array.from({ length: nShards }, (_, k) => ({ name: `s${k}`, tokens: Uint16Array.from({ length: r.int(T + 1, 8 * T + 40) }, (_, j) => (k * 1000 + j) % 65536) }));
        const sources = onDisk ? shards.map((s) => { const p = fresh(ctx, `${s.name}.bin`); writeShard(p, s.tokens); return p; }) : shards;
        const l = new TokenLoader({ shards: sources, batchSize: B, seqLen: T, seed: r.int(0, 2 ** 32 - 1), rank, worldSize, shuffle, vocab: 65536 });
        const got = Array.from({ length: batches }, () => l.next());
        return { got, state: l.state };
      },
      check: ({ got, state }) => {
        for (const { tokens, targets } of got) {
          if (tokens.length !== B * T || targets.length !== B * T) return `batch of ${tokens.length}, not ${B * T}`;
          for (let j = 0; j < tokens.length; j++) if (targets[j] !== (tokens[j] + 1) % 65536 && targets[j] !== tokens[j] + 1) return `target ${j} is ${targets[j]} after ${tokens[j]}`;
        }
        return ['epoch', 'shard', 'sample'].every((k) => Number.isInteger(state[k]) && state[k] >= 0) ? undefined : `state ${JSON.stringify(state)}`;
      },
    });
  }
  const STATE_BAD = [
    () => ({ epoch: 0, shard: 0, sample: 4e9 }), () => ({ epoch: 0, shard: 0, sample: 2 ** 53 - 1 }), () => ({ epoch: 0, shard: 0, sample: 1e6 }),
    () => ({ epoch: 0, shard: 7, sample: 0 }), () => ({ epoch: -1, shard: 0, sample: 0 }), () => ({ epoch: 0, shard: 0, sample: -1 }),
    () => ({ epoch: NaN, shard: 0, sample: 0 }), () => ({ epoch: 0, shard: 0.5, sample: 0 }), () => ({ epoch: 0, shard: 0, sample: Infinity }),
    () => ({ epoch: 2 ** 60, shard: 0, sample: 0 }), () => ({ epoch: 0, shard: 0 }), () => ({ epoch: '0', shard: 0, sample: 0 }),
    () => ({ epoch: 0, shard: 0, sample: 0, extra: 1 }), () => null, () => 5, () => [], () => 'state',
  ];
  for (let i = 0; i < 100; i++) {
    const r = rng.fork();
    const make = rng.pick(STATE_BAD);
    const onDisk = rng.bool(0.3);
    push({
      name: `trainer.TokenLoader#restore: ${show(make())}${onDisk ? ' (files)' : ''} #${i}`,
      entry: 'trainer.TokenLoader#restore',
      expect: 'error',
      timeoutMs: 5000,
      run: () => {
        const shards = [memShard(r, r.int(20, 300)), memShard(r, r.int(20, 300))];
        const sources = onDisk ? shards.map((s) => { const p = fresh(ctx, 's.bin'); writeShard(p, s.tokens); return p; }) : shards;
        const l = new TokenLoader({ shards: sources, batchSize: 2, seqLen: 4, seed: r.int(0, 99), worldSize: r.int(1, 3) });
        l.restore(make());
        return l.next(); // a state accepted by mistake would loop here
      },
    });
  }
  for (let i = 0; i < 40; i++) {
    const r = rng.fork();
    const worldSize = rng.int(1, 3);
    const rank = rng.int(0, worldSize - 1);
    const steps = rng.int(0, 40);
    push({
      name: `trainer.TokenLoader#restore: its own state after ${steps} batches, rank ${rank}/${worldSize} #${i}`,
      entry: ['trainer.TokenLoader#restore', 'trainer.TokenLoader#state'],
      expect: 'ok',
      run: () => {
        const shards = [memShard(r, r.int(9, 120), 65536), memShard(r, r.int(9, 120), 65536)];
        const o = { shards, batchSize: r.int(1, 3), seqLen: r.int(1, 8), seed: r.int(0, 99), rank, worldSize };
        const a = new TokenLoader(o);
        for (let k = 0; k < steps; k++) a.next();
        const b = new TokenLoader(o);
        b.restore(a.state);
        return { a: Array.from(a.next().tokens), b: Array.from(b.next().tokens) };
      },
      check: ({ a, b }) => (same(a, b) ? undefined : 'a restored loader continued elsewhere'),
    });
  }

  // ---- markovShard ----
  for (let i = 0; i < 40; i++) {
    const r = rng.fork();
    const bad = rng.bool(0.6);
    const what = rng.pick(['corpus', 'tokens', 'name']);
    const v = what === 'corpus' ? rng.pick([null, 5, {}, 'markov', { vocab: 4 }]) : what === 'tokens' ? rng.pick([...BAD_INTEGERS, 0, 1, 2 ** 29, '100']) : rng.pick([5, null, {}]);
    push({
      name: bad ? `trainer.markovShard: bad ${what} ${show(v)} #${i}` : `trainer.markovShard: valid #${i}`,
      entry: 'trainer.markovShard',
      expect: bad ? 'error' : 'ok',
      run: () => {
        const corpus = new MarkovCorpus({ vocab: r.int(2, 300), seed: r.int(0, 1000) });
        const count = r.int(2, 3000);
        if (!bad) return { vocab: corpus.vocab, count, shard: markovShard(corpus, count, r.bool() ? 'm' : undefined) };
        return markovShard(what === 'corpus' ? v : corpus, what === 'tokens' ? v : count, what === 'name' ? v : 'm');
      },
      check: ({ vocab, count, shard }) => (shard.tokens.length === count && shard.tokens.every((t) => t < vocab) && typeof shard.name === 'string' ? undefined : 'not a shard of the corpus'),
    });
  }

  // ---- schedules ----
  const WC_BAD = {
    lr: () => rng.pick([0, -1e-3, ...NON_FINITE, '1e-3', null, undefined]),
    total: () => rng.pick([...BAD_INTEGERS, 0, 2 ** 31, '10', null, undefined]),
    warmup: () => rng.pick([-1, 0.5, NaN, Infinity, 11, '2', null]),
    minLr: () => rng.pick([-1e-4, 1, ...NON_FINITE, '0', null]),
    key: () => rng.pick(['warmupSteps', 'min_lr', 'kind', 'steps']),
  };
  for (let i = 0; i < 90; i++) {
    const what = rng.pick(Object.keys(WC_BAD));
    const bad = WC_BAD[what]();
    push({
      name: `trainer.warmupCosine: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.warmupCosine',
      expect: 'error',
      run: () => {
        const o = { lr: 1e-3, warmup: 2, total: 10, minLr: 1e-4 };
        if (what === 'key') o[bad] = 1;
        else o[what] = bad;
        return warmupCosine(o);
      },
    });
  }
  for (let i = 0; i < 5; i++) {
    const v = junk(rng);
    push({ name: `trainer.warmupCosine: options ${show(v)} #${i}`, entry: 'trainer.warmupCosine', expect: 'error', run: () => warmupCosine(v) });
  }
  for (let i = 0; i < 40; i++) {
    const r = rng.fork();
    const total = rng.int(1, 100_000);
    const warmup = rng.int(0, total);
    const lr = 10 ** rng.float(-6, 0);
    const minLr = lr * rng.float(0, 1);
    const steps = Array.from({ length: 20 }, () => r.int(1, 2 * total + 10));
    push({
      name: `trainer.warmupCosine: lr ${lr.toExponential(2)}, warmup ${warmup}, total ${total} #${i}`,
      entry: 'trainer.warmupCosine',
      expect: 'ok',
      run: () => {
        const f = warmupCosine({ lr, warmup, total, minLr });
        return steps.map((s) => [s, f(s)]);
      },
      check: (v) => v.find(([s, x]) => !(Number.isFinite(x) && x >= 0 && x <= lr * (1 + 1e-12) && (s <= total || Math.abs(x - minLr) <= 1e-12 * lr))) && 'an lr outside [0, lr], or not minLr after total',
    });
  }
  for (let i = 0; i < 20; i++) {
    const step = rng.pick([0, -1, 1.5, NaN, Infinity, '3', null, undefined]);
    push({ name: `trainer.warmupCosine: step ${show(step)} #${i}`, entry: 'trainer.warmupCosine', expect: 'error', run: () => warmupCosine({ lr: 1e-3, warmup: 3, total: 10 })(step) });
  }
  for (let i = 0; i < 20; i++) {
    const bad = rng.bool(0.6);
    const v = bad ? rng.pick([-1, ...NON_FINITE, '1e-3', null, undefined, {}]) : rng.pick([0, 1e-3, 0.5]);
    push({ name: `trainer.constant(${show(v)}) #${i}`, entry: 'trainer.constant', expect: bad ? 'error' : 'ok', run: () => constant(v)(rng.int(1, 100)), check: (x) => (x === v ? undefined : `gave ${x}`) });
  }

  // ---- lossCurveSvg ----
  const series = (r, n, over = {}) => ({ name: r.pick(['train loss', 'eval loss', 'run b']), points: Array.from({ length: n }, (_, i) => [i + 1, 2 + r.normals(1)[0] * 0.1]), color: r.pick(['#1f77b4', 'red', 'rgb(1, 2, 3)', '#abc']), ...over });
  const SVG_BAD = {
    series: () => rng.pick([null, 5, 'x', {}, [null], [5], [{}]]),
    color: () => rng.pick(['"/><script>alert(1)</script>', 'red" onload="x', 'url(javascript:alert(1))', '', '#12', 5, null, 'red;stroke:blue', 'expression(alert(1))', '#ggg']),
    point: () => rng.pick([5, null, [1], [1, 2, 3], ['1', 2], [1, null], {}, 'p']),
    points: () => rng.pick([null, 5, 'abc', {}]),
    name: () => rng.pick([5, null, {}, undefined]),
    style: () => rng.pick(['dots', '', 5, null]),
    width: () => rng.pick([...BAD_INTEGERS, 100, 20001, '800']),
    height: () => rng.pick([...BAD_INTEGERS, 100, 20001, '400']),
    smooth: () => rng.pick([...BAD_INTEGERS, 0, 2, 1003, '5']),
    floor: () => rng.pick([{ value: NaN }, { value: Infinity }, { value: '2' }, null, 5, { value: 1, label: 5 }, { value: 1, lable: 'x' }]),
    title: () => rng.pick([5, null, {}, ['x']]),
    key: () => rng.pick(['titel', 'colour', 'xlabel']),
    options: () => rng.pick([5, 'x', [], null]),
  };
  for (let i = 0; i < 130; i++) {
    const r = rng.fork();
    const what = rng.pick(Object.keys(SVG_BAD));
    const bad = SVG_BAD[what]();
    push({
      name: `trainer.lossCurveSvg: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.lossCurveSvg',
      expect: 'error',
      run: () => {
        const s = series(r, r.int(1, 60));
        if (what === 'series') return lossCurveSvg(bad);
        if (what === 'color' || what === 'name' || what === 'style' || what === 'points') return lossCurveSvg([{ ...s, [what]: bad }]);
        if (what === 'point') return lossCurveSvg([{ ...s, points: [...s.points, bad] }]);
        if (what === 'key') return lossCurveSvg([s], { [bad]: 'x' });
        if (what === 'options') return lossCurveSvg([s], bad);
        return lossCurveSvg([s], { [what]: bad });
      },
    });
  }
  for (let i = 0; i < 80; i++) {
    const r = rng.fork();
    const shape = rng.pick(['random', 'flat huge', 'flat tiny', 'far steps', 'spikes', 'non-finite', 'one point', 'empty', 'reversed']);
    const W = rng.pick([undefined, 200, 800, 1500]);
    const H = rng.pick([undefined, 150, 400]);
    push({
      name: `trainer.lossCurveSvg: ${shape} #${i}${W ? ` (${W}×${H ?? 400})` : ''}`,
      entry: 'trainer.lossCurveSvg',
      expect: 'ok',
      timeoutMs: 5000,
      run: () => {
        const n = shape === 'one point' ? 1 : shape === 'empty' ? 0 : r.int(2, 400);
        const y0 = shape === 'flat huge' ? r.pick([1e300, -1e300, 1e20, 1e150]) : shape === 'flat tiny' ? r.pick([1e-300, 5e-324, 1e-310, -1e-300]) : 0;
        const x0 = shape === 'far steps' ? r.pick([1e300, 2 ** 60, 1e-300, -1e300]) : 0;
        const pts = Array.from({ length: n }, (_, j) => {
          const x = shape === 'far steps' ? x0 + (r.bool(0.5) ? 0 : j) : j + 1;
          const y = y0 !== 0 ? y0 : shape === 'spikes' && r.bool(0.05) ? r.pick([1e6, 1e300, -1e300, 40]) : shape === 'non-finite' && r.bool(0.2) ? r.pick([NaN, Infinity, -Infinity]) : 2 + Math.exp(-j / 50) + 0.1 * r.normals(1)[0];
          return [x, y];
        });
        if (shape === 'reversed') pts.reverse();
        const evals = pts.filter(() => r.bool(0.1));
        const opts = { ...(W ? { width: W } : {}), ...(H ? { height: H } : {}), ...(r.bool(0.3) ? { floor: { value: r.float(-1, 3), label: 'floor <&>' } } : {}), ...(r.bool(0.2) ? { smooth: 2 * r.int(0, 20) + 1 } : {}) };
        return { svg: lossCurveSvg([{ name: 'train loss', points: pts, color: '#1f77b4' }, { name: 'eval loss', points: evals, color: 'rgb(214, 39, 40)' }], opts), W: W ?? 800, H: H ?? 400 };
      },
      check: ({ svg, W, H }) => svgProblem(svg, W, H),
    });
  }

  // ---- tokenizers ----
  for (let i = 0; i < 60; i++) {
    const what = rng.pick(['char chars', 'char encode', 'char decode', 'gpt2 encode', 'gpt2 decode', 'byName', 'record', 'load path']);
    const bad = what.endsWith('encode') ? rng.pick([5, null, undefined, ['a'], {}, 1n]) : what.endsWith('decode') ? rng.pick([5, 'abc', null, { length: 3 }, [1.5], [-1], [1e9], [NaN], new DataView(new ArrayBuffer(2))]) : what === 'char chars' ? rng.pick([5, null, {}, true, ['ab'], [5], '', []]) : what === 'byName' ? rng.pick(['gpt3', 'CHAR', '', 5, null]) : what === 'record' ? rng.pick([null, 5, {}, { format: TOKENIZER_FORMAT, version: 2, name: 'char' }, { format: TOKENIZER_FORMAT, version: 1, name: 'char', vocabSize: 2, chars: ['a'] }, { format: TOKENIZER_FORMAT, version: 1, name: 'char', vocabSize: 2, chars: ['b', 'a'] }, { format: TOKENIZER_FORMAT, version: 1, name: 'gpt2', vocabSize: 50000, eot: 50256 }, { format: TOKENIZER_FORMAT, version: 1, name: 'char', vocabSize: 1, chars: [5] }]) : rng.pick(NOT_PATHS);
    push({
      name: `trainer tokenizer: bad ${what} ${show(bad)} #${i}`,
      entry: what.startsWith('char') ? 'trainer.charTokenizer' : what.startsWith('gpt2') ? 'trainer.gpt2Tokenizer' : what === 'byName' ? 'trainer.tokenizerByName' : what === 'record' ? 'trainer.tokenizerFromRecord' : 'trainer.loadTokenizer',
      expect: 'error',
      run: () => {
        const call = { 'char chars': () => charTokenizer(bad), 'char encode': () => charTokenizer('abc').encode(bad), 'char decode': () => charTokenizer('abc').decode(bad), 'gpt2 encode': () => gpt2Tokenizer().encode(bad) };
        Object.assign(call, { 'gpt2 decode': () => gpt2Tokenizer().decode(bad), byName: () => tokenizerByName(bad, 'abc'), record: () => tokenizerFromRecord(bad), 'load path': () => loadTokenizer(bad) });
        return call[what]();
      },
    });
  }
  for (let i = 0; i < 20; i++) {
    const r = rng.fork();
    push({
      // Truncated (JSON has no checksum: a flipped letter in chars can make another valid tokenizer).
      name: `trainer.loadTokenizer: a truncated tokenizer.json #${i}`,
      entry: 'trainer.loadTokenizer',
      expect: 'error',
      run: () => {
        const t = charTokenizer(textOf(r, 30));
        const p = fresh(ctx, 'tokenizer.json');
        const bytes = Buffer.from(JSON.stringify(t.record()));
        writeFileSync(p, bytes.subarray(0, r.int(0, bytes.length - 1)));
        return loadTokenizer(p);
      },
    });
  }
  for (let i = 0; i < 30; i++) {
    const r = rng.fork();
    const gpt2 = rng.bool(0.3);
    push({
      name: `trainer tokenizer: ${gpt2 ? 'gpt2' : 'char'} round trip #${i}`,
      entry: gpt2 ? ['trainer.gpt2Tokenizer', 'trainer.tokenizerByName'] : ['trainer.charTokenizer', 'trainer.tokenizerFromRecord', 'trainer.loadTokenizer'],
      expect: 'ok',
      run: () => {
        const text = textOf(r, r.int(1, 60)) + (r.bool(0.3) ? ' héllo ✓ 日本' : '');
        if (gpt2) {
          const t = tokenizerByName('gpt2');
          return { text, back: t.decode(t.encode(text)) };
        }
        const t = charTokenizer(text);
        const p = fresh(ctx, 'tokenizer.json');
        writeFileSync(p, JSON.stringify(t.record()));
        const u = r.bool() ? loadTokenizer(p) : tokenizerFromRecord(t.record());
        return { text, back: u.decode(Uint16Array.from(u.encode(text))) };
      },
      check: ({ text, back }) => (text === back ? undefined : 'decode(encode(text)) is another text'),
    });
  }

  // ---- prepareText ----
  const PREP_BAD = {
    inputs: () => rng.pick([[], null, 'a.txt', [5], [''], [null]]),
    out: () => rng.pick(['', 5, null]),
    tokenizer: () => rng.pick(['gpt3', '', null, 5]),
    valFraction: () => rng.pick([-0.1, 0.6, NaN, Infinity, '0.1', null]),
    shardTokens: () => rng.pick([0, -1, 1.5, NaN, 2 ** 31, '100', null]),
    chunkBytes: () => rng.pick([0, 15, 1.5, NaN, 2 ** 31, '16', null]),
    onProgress: () => rng.pick([5, 'f', {}]),
    key: () => rng.pick(['shard_tokens', 'val', 'output']),
    file: () => rng.pick(['empty', 'missing', 'directory', 'not utf-8', 'out is a file', 'out holds shards']),
  };
  for (let i = 0; i < 50; i++) {
    const r = rng.fork();
    const what = rng.pick(Object.keys(PREP_BAD));
    const bad = PREP_BAD[what]();
    push({
      name: `trainer.prepareText: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.prepareText',
      expect: 'error',
      run: () => {
        const input = fresh(ctx, 'in.txt');
        writeFileSync(input, textOf(r, 40));
        const o = { inputs: [input], out: fresh(ctx, 'out'), tokenizer: 'char' };
        if (what === 'key') o[bad] = 1;
        else if (what !== 'file') o[what] = bad;
        else if (bad === 'empty') writeFileSync(input, '');
        else if (bad === 'missing') o.inputs = [`${input}.missing`];
        else if (bad === 'directory') o.inputs = [ctx.dir];
        else if (bad === 'not utf-8') writeFileSync(input, Uint8Array.of(0x61, 0xff, 0xfe, 0x62));
        else if (bad === 'out is a file') o.out = input;
        else prepareText({ ...o }); // the second prepare into the same folder is refused
        return prepareText(o);
      },
    });
  }
  for (let i = 0; i < 16; i++) {
    const r = rng.fork();
    const gpt2 = rng.bool(0.25);
    push({
      name: `trainer.prepareText: ${gpt2 ? 'gpt2' : 'char'} text → shards → text #${i}`,
      entry: ['trainer.prepareText', 'trainer.readShard'],
      expect: 'ok',
      run: () => {
        const texts = Array.from({ length: r.int(1, 3) }, () => textOf(r, r.int(5, 200)));
        const inputs = texts.map((t) => { const p = fresh(ctx, 'in.txt'); writeFileSync(p, t); return p; });
        const res = prepareText({ inputs, out: fresh(ctx, 'out'), tokenizer: gpt2 ? 'gpt2' : 'char', valFraction: r.pick([0, 0.1, 0.5]), shardTokens: r.int(1, 500), chunkBytes: r.int(16, 256) });
        const ids = [...res.train, ...res.val].flatMap((s) => Array.from(readShard(s.path, { vocab: res.tokenizer.vocabSize }).tokens));
        return { want: texts.join(''), got: gpt2 ? res.tokenizer.decode(ids.filter((t) => t !== 50256)) : res.tokenizer.decode(ids) };
      },
      check: ({ want, got }) => (want === got ? undefined : 'the shards decode to another text'),
    });
  }

  // ---- JsonlLog and Progress ----
  const sink = () => ({ write: () => true });
  const line = (r) => ({ step: r.int(1, 50), total: 50, loss: 2 + r.float(), lr: 1e-3, tokensPerSecond: r.float(0, 1e6), mfu: r.pick([null, 0.3]), elapsed: r.float(0, 100) });
  const PROGRESS_BAD = {
    stream: () => rng.pick([null, 5, {}, 'stderr']),
    every: () => rng.pick([...BAD_INTEGERS, 0, '10']),
    tty: () => rng.pick([1, 'yes', null]),
    total: () => rng.pick([0, -1, NaN, 1.5, '50', null]),
    step: () => rng.pick([-1, 51, NaN, 1.5, '3', null]),
    done: () => rng.pick([-1, 99, NaN, 0.5]),
    loss: () => rng.pick(['2', null, {}, undefined]),
    tokensPerSecond: () => rng.pick([-1, NaN, '5', null]),
    elapsed: () => rng.pick([-1, NaN, Infinity, '5']),
    mfu: () => rng.pick([-0.5, NaN, '0.3', undefined]),
    line: () => rng.pick([5, null, {}]),
    stepLine: () => rng.pick([null, 5, 'x', { step: 1 }]),
  };
  for (let i = 0; i < 55; i++) {
    const r = rng.fork();
    const what = rng.pick(Object.keys(PROGRESS_BAD));
    const bad = PROGRESS_BAD[what]();
    push({
      name: `trainer.Progress: bad ${what} ${show(bad)} #${i}`,
      entry: what === 'line' ? 'trainer.Progress#line' : ['stream', 'every', 'tty'].includes(what) ? 'trainer.Progress' : 'trainer.Progress#step',
      expect: 'error',
      run: () => {
        if (['stream', 'every', 'tty'].includes(what)) return new Progress(...{ stream: [bad], every: [sink(), bad], tty: [sink(), 10, bad] }[what]);
        const p = new Progress(sink(), 10, r.bool());
        if (what === 'line') return p.line(bad);
        if (what === 'stepLine') return p.step(bad);
        return p.step({ ...line(r), [what]: bad });
      },
    });
  }
  for (let i = 0; i < 15; i++) {
    const r = rng.fork();
    push({
      name: `trainer.Progress#step: valid lines #${i}`,
      entry: ['trainer.Progress', 'trainer.Progress#step', 'trainer.Progress#line'],
      expect: 'ok',
      run: () => {
        const chunks = [];
        const p = new Progress({ write: (s) => chunks.push(s) }, r.int(1, 10), r.bool());
        for (let s = 1; s <= 20; s++) p.step({ ...line(r), step: s, total: 20, done: s, loss: r.bool(0.1) ? NaN : 2, tokensPerSecond: r.bool(0.1) ? Infinity : 100 });
        p.line('eval 1.5');
        return chunks.join('');
      },
      check: (s) => (s.includes('step 20/20') || s.includes('20/20') ? undefined : 'no last step shown'),
    });
  }
  const LOG_BAD = { path: () => rng.pick(NOT_PATHS), owner: () => rng.pick([5, 'run', { run: 5, resume: false }, { run: 'r', resume: 'no' }, { run: '', resume: false }, { run: 'r' }, { run: 'r', resume: true, x: 1 }]), record: () => rng.pick([5, null, 'x', [], { big: 1n }]) };
  for (let i = 0; i < 30; i++) {
    const what = rng.pick(Object.keys(LOG_BAD));
    const bad = LOG_BAD[what]();
    push({
      name: `trainer.JsonlLog: bad ${what} ${show(bad)} #${i}`,
      entry: what === 'record' ? 'trainer.JsonlLog#write' : 'trainer.JsonlLog',
      expect: 'error',
      run: () => {
        if (what !== 'record') return what === 'path' ? new JsonlLog(bad) : new JsonlLog(fresh(ctx, 'log.jsonl'), bad);
        return new JsonlLog(fresh(ctx, 'log.jsonl'), { run: 'r', resume: false }).write(bad);
      },
    });
  }
  for (let i = 0; i < 10; i++) {
    const r = rng.fork();
    push({
      name: `trainer.JsonlLog#write: records read back #${i}`,
      entry: ['trainer.JsonlLog', 'trainer.JsonlLog#write'],
      expect: 'ok',
      run: () => {
        const p = fresh(ctx, 'log.jsonl');
        const recs = Array.from({ length: r.int(1, 20) }, (_, k) => ({ event: 'step', step: k + 1, loss: r.float(1, 4), text: textOf(r, 3) }));
        const log = new JsonlLog(p, { run: 'run-x', resume: false });
        for (const x of recs) log.write(x);
        return { recs, back: readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) };
      },
      check: ({ recs, back }) => (JSON.stringify(recs) === JSON.stringify(back) ? undefined : 'the log reads back other records'),
    });
  }

  // ---- the Trainer's options: junk in each refused by the constructor ----
  const TRAINER_BAD = {
    steps: () => rng.pick([...BAD_INTEGERS, 0, '3', null]),
    evalEvery: () => rng.pick([...BAD_INTEGERS, 0, '3']),
    evalBatches: () => rng.pick([...BAD_INTEGERS, 0, 100_001, '3', null]),
    accumulate: () => rng.pick([...BAD_INTEGERS, 0, 65537, '2']),
    clipGradNorm: () => rng.pick([0, -1, ...NON_FINITE, '1', null]),
    precision: () => rng.pick(['fp16', 'f16', 'BF16', 'fp8', 'float32', '', 5, null]),
    device: () => rng.pick(['gpu', 'CPU', 'cuda:x', 'cuda:-1', '', 5, null, 'tpu']),
    seed: () => rng.pick([-1, 0.5, NaN, Infinity, 2 ** 32, 1e300, '1', null]),
    profileStep: () => rng.pick([0, -1, 1.5, NaN, 3, '1']),
    'optimizer.lr': () => rng.pick([0, -1, ...NON_FINITE, '1e-3', null]),
    'optimizer.beta1': () => rng.pick([-0.1, 1, 1.5, ...NON_FINITE, '0.9', null]),
    'optimizer.beta2': () => rng.pick([-0.1, 1, ...NON_FINITE, '0.95']),
    'optimizer.eps': () => rng.pick([0, -1e-8, ...NON_FINITE, '1e-8']),
    'optimizer.weightDecay': () => rng.pick([-0.1, ...NON_FINITE, '0.1']),
    'schedule.warmup': () => rng.pick([-1, 0.5, NaN, 3, '1', null]),
    'schedule.minLr': () => rng.pick([-1, 1, ...NON_FINITE, '0']),
    'checkpoint.every': () => rng.pick([...BAD_INTEGERS, 0, '1']),
    'checkpoint.keep': () => rng.pick([0, -1, 1.5, NaN, '3']),
    'checkpoint.dir': () => rng.pick(['', 5, null]),
    'log.every': () => rng.pick([0, -1, 1.5, NaN, '10']),
    'log.progress': () => rng.pick([1, 'no', null]),
    'log.jsonl': () => rng.pick(['', 5, {}]),
    'sample.maxTokens': () => rng.pick([0, -1, 1.5, NaN, 65537, '8']),
    'sample.temperature': () => rng.pick([-1, ...NON_FINITE, '1']),
    'sample.topK': () => rng.pick([0, -1, 1.5, NaN, 17, '2']),
    'sample.topP': () => rng.pick([0, -0.1, 1.5, NaN, '0.9']),
    'sample.prompt': () => rng.pick([[], [16], [-1], [1.5], ['a'], 'abc', null]),
    'sample.stop': () => rng.pick([16, -1, 0.5, NaN]),
    'sample.seed': () => rng.pick([-1, 0.5, 2 ** 32, NaN]),
    'sample.vocab': () => rng.pick([0, 17, 1.5, NaN]),
    model: () => rng.pick([null, 5, {}, { forward: 5 }, 'tiny']),
    train: () => rng.pick([null, 5, {}, { next: () => ({}) }, { next: () => ({}), restore: () => {}, batchSize: 0, seqLen: 8 }]),
    val: () => rng.pick([5, {}, { next: () => ({}) }]),
    config: () => rng.pick([{ big: 1n }, (() => { const o = {}; o.self = o; return o; })(), () => 1, Symbol('x')]),
    schedule: () => rng.pick([5, 'cosine', [], { warmupSteps: 1 }, { lr: 1 }]),
    policy: () => rng.pick([5, {}, 'fp8']),
    key: () => rng.pick(['learningRate', 'lr', 'epochs', 'batchSize', 'evalInterval', 'resume']),
    options: () => rng.pick([null, 5, 'x', [], undefined]),
  };
  for (let i = 0; i < 180; i++) {
    const r = rng.fork();
    const what = rng.pick(Object.keys(TRAINER_BAD));
    const bad = TRAINER_BAD[what]();
    push({
      name: `trainer.Trainer: bad ${what} ${show(bad)} #${i}`,
      entry: 'trainer.Trainer',
      expect: 'error',
      run: () => {
        if (what === 'options') return new Trainer(bad);
        const o = tinyOptions(r, { steps: 2 });
        const needsEval = what.startsWith('sample') || what === 'evalBatches';
        if (needsEval || what === 'evalEvery' || what === 'val') Object.assign(o, { val: new TokenLoader({ shards: [markovShard(new MarkovCorpus({ vocab: 16, seed: 3 }), 500)], batchSize: 2, seqLen: 8 }), evalEvery: 1 });
        if (what === 'key') o[bad] = 1;
        else if (what.includes('.')) {
          const [outer, inner] = what.split('.');
          const base = outer === 'checkpoint' ? { dir: fresh(ctx, 'never'), every: 1 } : outer === 'sample' ? { prompt: [1] } : outer === 'log' ? { progress: false } : {};
          o[outer] = { ...base, [inner]: bad };
        } else o[what] = bad;
        return new Trainer(o);
      },
    });
  }
  // A few tiny fits: valid options train, with finite losses (each well under half a second).
  const FITS = [
    { label: 'defaults', over: {} },
    { label: 'clip, accumulate 2, warmup 1', over: { clipGradNorm: 1, accumulate: 2, schedule: { warmup: 1, minLr: 1e-4 } } },
    { label: 'eval every step, 2 batches', over: 'eval' },
    { label: 'a constant schedule function', over: { schedule: constant(2e-3), optimizer: { lr: 2e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0 } } },
  ];
  for (const [i, f] of FITS.entries()) {
    const r = rng.fork();
    push({
      name: `trainer.Trainer#fit: a tiny valid fit (${f.label})`,
      entry: ['trainer.Trainer', 'trainer.Trainer#fit', 'trainer.Trainer#on'],
      expect: 'ok',
      timeoutMs: 20_000,
      run: () => {
        const over = f.over === 'eval' ? { val: new TokenLoader({ shards: [markovShard(new MarkovCorpus({ vocab: 16, seed: 5 }), 500)], batchSize: 2, seqLen: 8 }), evalEvery: 1, evalBatches: 2 } : f.over;
        const t = new Trainer(tinyOptions(r, { steps: 3, seed: i + 1, ...over }));
        const steps = [];
        t.on('step', (e) => steps.push(e.lr));
        const res = t.fit();
        return { res, steps };
      },
      check: ({ res, steps }) => nonFinite(res.losses.map((l) => l.loss), 'loss') ?? nonFinite(res.evals.map((l) => l.loss), 'eval loss') ?? nonFinite(steps, 'lr') ?? (res.losses.length === 3 ? undefined : `${res.losses.length} losses`),
    });
  }
  push({
    name: 'trainer.Trainer#fitAsync: a tiny valid fit',
    entry: ['trainer.Trainer#fitAsync'],
    expect: 'ok',
    timeoutMs: 20_000,
    run: () => new Trainer(tinyOptions(rng.fork(), { steps: 2 })).fitAsync(),
    check: (res) => nonFinite(res.losses.map((l) => l.loss), 'loss'),
  });
  for (let i = 0; i < 2; i++) {
    const r = rng.fork();
    const bad = rng.int(1, 3);
    const value = rng.pick([-1e-3, NaN, -Infinity, 'x']);
    push({
      name: `trainer.Trainer#fit: a schedule giving ${show(value)} at step ${bad}`,
      entry: 'trainer.Trainer#fit',
      expect: 'error',
      timeoutMs: 20_000,
      run: () => {
        const t = new Trainer(tinyOptions(r, { steps: 3, schedule: (s) => (s === bad ? value : 1e-3) }));
        try {
          return t.fit();
        } catch (e) {
          if (!new RegExp(`at step ${bad} `).test(e.message)) throw new Error(`the error does not name step ${bad}: ${e.message}`);
          throw e;
        }
      },
    });
  }
  push({
    name: 'trainer.Trainer#fit: resume from a checkpoint whose data position is outside the data',
    entry: ['trainer.Trainer#fit', 'trainer.TokenLoader#restore'],
    expect: 'error',
    timeoutMs: 20_000,
    run: () => {
      const r = rng.fork();
      const dir = fresh(ctx, 'ckpt');
      const res = new Trainer(tinyOptions(r, { steps: 2, checkpoint: { dir, every: 2 } })).fit();
      const f = readSafetensors(res.checkpoint);
      const moved = fresh(ctx, 'moved.safetensors');
      writeSafetensors(moved, f.tensors, { ...f.metadata, loader: JSON.stringify({ epoch: 0, shard: 0, sample: 4e9 }) });
      return new Trainer(tinyOptions(r, { steps: 2 })).fit({ resume: moved });
    },
  });
  return out;
}
