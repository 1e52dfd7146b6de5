// The trainer's checkpoints, safetensors files and Hugging Face interop (issue 20):
//  - damaged files (lib.mjs's `damage` of valid files written in run()): a checkpoint, a safetensors
//    file of mixed dtypes, a Hugging Face directory's model.safetensors and config.json, the newest
//    checkpoint of a run's folder. Each must be refused with a DeepwellError or read as exactly the
//    original, never garbage; a refused checkpoint must leave the model's values untouched, and a
//    resume must fall back to the previous good checkpoint;
//  - hostile safetensors headers built from the spec (negative, overlapping, gapped or out-of-file
//    offsets, bad shapes and dtypes, duplicate names, non-string metadata, lengths past the file);
//  - bad arguments to every checkpoint, safetensors and Hugging Face export (number paths are file
//    descriptors to node's fs), the Trainer's checkpoint options and fit's resume;
//  - valid random round-trips: write → read bit for bit, save → load, export → import.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError } from '@deepwell/core';
import { capture, compile } from '@deepwell/ir';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import {
  CHECKPOINT_FORMAT, TokenLoader, Trainer, asFloat32, checkpointRuns, checkpointsIn, exportHuggingFace, gpt2ConfigJson, importHuggingFace,
  loadCheckpoint, markovShard, readSafetensors, resolveStart, saveCheckpoint, writeSafetensors,
} from '@deepwell/trainer';
import { BAD_INTEGERS, BAD_SHAPES, NON_FINITE, WRONG_TYPES, damage, junk, makeRng, show } from '../lib.mjs';

const TINY = { vocabSize: 16, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8 };
const META = { step: 4, loader: { epoch: 1, shard: 0, sample: 7 }, seed: 3, config: { model: 'tiny', lr: 0.003 }, extra: { losses: [{ step: 4, loss: 2.5 }] }, run: 'run-fuzz', schedule: { kind: 'warmupCosine', lr: 0.003, warmup: 1, minLr: 0.0003, total: 8 } };
/** META as loadCheckpoint gives it back: with the (empty) loss history a version 3 checkpoint saved without one has. */
const LOADED_META = { ...META, lossHistory: { steps: new Float64Array(0), losses: new Float64Array(0) } };
const DTYPES = ['F32', 'F16', 'BF16', 'I32', 'U16', 'I64', 'U8'];
const WIDTH = { F32: 4, F16: 2, BF16: 2, I32: 4, U16: 2, I64: 8, U8: 1 };
const isErr = (e) => DeepwellError.is(e);

// ---- per-worker fixtures, made on first use (inside run) ----
let FX = null;
function fixtures(dir) {
  if (FX) return FX;
  const root = join(dir, 'fixtures');
  mkdirSync(root, { recursive: true });
  const r = makeRng(20240520);
  const exe = compile(capture(new GPT(TINY), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: 7 });
  const names = [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)];
  const A = new Map(names.map((n) => [n, r.f32(exe.get(n).length, 0.1)]));
  const B = new Map(names.map((n) => [n, r.f32(exe.get(n).length, 0.1)]));
  for (const [n, v] of A) exe.set(n, v);
  const ckpt = join(root, 'ckpt.safetensors');
  saveCheckpoint(ckpt, exe, META);
  for (const [n, v] of B) exe.set(n, v);
  // A safetensors file of every dtype, a zero-size tensor among them.
  const tensors = new Map();
  DTYPES.forEach((dtype, i) => {
    const shape = i === 3 ? [0, 5] : [1 + (i % 3), 2 + i];
    tensors.set(`layer.${i}.${dtype.toLowerCase()}`, { dtype, shape, data: Uint8Array.from({ length: shape[0] * shape[1] * WIDTH[dtype] }, () => r.int(0, 255)) });
  });
  const stMeta = { note: 'fixture ✓', step: '12' };
  const st = join(root, 'mixed.safetensors');
  writeSafetensors(st, tensors, stMeta);
  // A Hugging Face directory of A's parameters.
  const hf = join(root, 'hf');
  const params = new Map(Object.keys(exe.graph.params).map((n) => [n, A.get(n)]));
  exportHuggingFace(hf, params, TINY);
  const hfImport = importHuggingFace(hf);
  FX = {
    root, exe, A, B, tensors, stMeta,
    ckptBytes: readFileSync(ckpt), stBytes: readFileSync(st),
    hfModel: readFileSync(join(hf, 'model.safetensors')), hfConfig: readFileSync(join(hf, 'config.json')), hfImport, params,
  };
  return FX;
}
const setAll = (exe, values) => {
  for (const [n, v] of values) exe.set(n, v);
};
function sameValues(exe, values) {
  for (const [n, v] of values) {
    const got = exe.get(n);
    if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(v.buffer, v.byteOffset, v.byteLength))) return n;
  }
  return null;
}
const bytesOf = (v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return Number.isNaN(a) && Number.isNaN(b);
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
}
/** A readSafetensors result against the tensors and metadata written. */
function sameFile(got, tensors, metadata) {
  if (got.tensors.size !== tensors.size) return `${got.tensors.size} tensors, not ${tensors.size}`;
  for (const [name, t] of tensors) {
    const g = got.tensors.get(name);
    if (!g) return `no tensor '${name}'`;
    if (g.dtype !== t.dtype || !deepEqual(g.shape, t.shape)) return `'${name}' is ${g.dtype}[${g.shape}], not ${t.dtype}[${t.shape}]`;
    if (!bytesOf(g.data).equals(bytesOf(t.data))) return `'${name}' has other bytes`;
  }
  for (const [k, v] of Object.entries(metadata)) if (got.metadata[k] !== v) return `metadata '${k}' is ${JSON.stringify(got.metadata[k])}`;
  for (const k of Object.keys(got.metadata)) if (!(k in metadata)) return `an extra metadata key '${k}'`;
  return undefined;
}

/** A hostile safetensors file: [label, header object or raw text, data length, raw length override]. */
function hostile(rng) {
  const t = (shape, offs, dtype = 'F32') => ({ dtype, shape, data_offsets: offs });
  const k = rng.int(1, 6) * 4;
  const pick = rng.int(0, 24);
  switch (pick) {
    case 0: return ['negative begin', { a: t([k / 4], [-k, 0]), b: t([k / 4], [0, k]) }, k];
    case 1: return ['overlapping', { a: t([k / 4], [0, k]), b: t([k / 4], [k / 2, k / 2 + k]) }, k + k / 2];
    case 2: return ['a gap', { a: t([k / 4], [0, k]), b: t([1], [k + 4, k + 8]) }, k + 8];
    case 3: return ['beyond the file', { a: t([k / 4], [0, k]) }, k - 4];
    case 4: return ['trailing bytes', { a: t([k / 4], [0, k]) }, k + rng.int(1, 9)];
    case 5: return ['fractional shape', { a: t([k / 8 + 0.5, 2], [0, k]) }, k];
    case 6: return ['negative shape', { a: t([-(k / 4)], [0, k]) }, k];
    case 7: return ['shape junk', { a: t(rng.pick([null, 'abc', 5, {}, [null], ['2'], [[2]], [true]]), [0, k]) }, k];
    case 8: return ['huge shape', { a: t([2 ** 40, 2 ** 40], [0, k]) }, k];
    case 9: return ['dtype junk', { a: t([k / 4], [0, k], rng.pick([null, 5, 'C64', 'f32', '', 'BOOL', ['F32'], {}])) }, k];
    case 10: return ['offsets junk', { a: t([k / 4], rng.pick([[0], [0, k, k], ['0', k], [0.5, k + 0.5], [k, 0], null, 'x', [null, null], {}])) }, k];
    case 11: return ['dtype/bytes disagree', { a: t([k / 4], [0, k], rng.pick(['F16', 'BF16', 'U8', 'I64'])) }, k];
    case 12: return ['non-string metadata', { __metadata__: { step: rng.pick([7, null, true, {}, ['x'], 1.5]) }, a: t([k / 4], [0, k]) }, k];
    case 13: return ['metadata not an object', { __metadata__: rng.pick([null, 'x', 5, ['a'], true]), a: t([k / 4], [0, k]) }, k];
    case 14: return ['header not an object', rng.pick([null, [1, 2], 5, 'safetensors', true]), 0];
    case 15: return ['tensor not an object', { a: rng.pick([5, null, 'x', [1, 2], true]) }, k];
    case 16: return ['duplicate name', `{"a":{"dtype":"F32","shape":[${k / 8}],"data_offsets":[0,${k / 2}]},"a":{"dtype":"F32","shape":[${k / 8}],"data_offsets":[${k / 2},${k}]}}`, k];
    case 17: return ['duplicate metadata key', `{"__metadata__":{"format":"pt","format":"x"},"a":{"dtype":"F32","shape":[${k / 4}],"data_offsets":[0,${k}]}}`, k];
    case 18: return ['not JSON', rng.pick(['{"a":', '{a:1}', "{'a':1}", '', '\u0000\u0000', '{"a":1}}', '[', '{"a":{"dtype":"F32",}}']), k];
    case 19: return ['header length past the file', null, k, 'length'];
    case 20: return ['invalid UTF-8 header', null, k, 'utf8'];
    case 21: return ['checksums junk', { __metadata__: { 'deepwell.crc32': rng.pick(['{', '[]', '{"a":"zz"}', '{"a":"00000000"}', '5', '{"__metadata__":"00000000","a":"00000000"}']) }, a: t([k / 4], [0, k]) }, k];
    case 22: return ['zero and nonzero overlap', { a: t([0], [4, 4]), b: t([k / 4], [0, k]), c: t([1], [2, 6]) }, k];
    case 23: return ['short file', null, 0, 'short'];
    default: return ['offsets past 2^53', { a: t([k / 4], [2 ** 53, 2 ** 53 + k]) }, k];
  }
}
function writeHostile(path, spec, rng) {
  const [, header, dataLen, raw] = spec;
  const data = Uint8Array.from({ length: Math.max(0, dataLen) }, () => rng.int(0, 255));
  if (raw === 'short') return writeFileSync(path, Uint8Array.from({ length: rng.int(0, 7) }, () => rng.int(0, 255)));
  let json = raw === 'utf8' ? Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(raw === 'length' ? BigInt(json.length + data.length + rng.int(1, 2 ** 30)) : BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
}

/** Random valid tensors: names with dots, spaces, quotes and unicode; every dtype; zero-size ones. */
function randomTensors(rng) {
  const tensors = new Map();
  const n = rng.int(0, 6);
  const alphabet = ['a', 'b', '.', '_', '0', '9', ' ', '"', '\\', 'é', '✓', '/', 'Z'];
  for (let i = 0; i < n; i++) {
    const dtype = rng.pick(DTYPES);
    const shape = Array.from({ length: rng.int(0, 3) }, () => rng.int(0, 5));
    const bytes = shape.reduce((a, b) => a * b, 1) * WIDTH[dtype];
    const name = `${Array.from({ length: rng.int(0, 8) }, () => rng.pick(alphabet)).join('')}#${i}`;
    tensors.set(name, { dtype, shape, data: Uint8Array.from({ length: bytes }, () => rng.int(0, 255)) });
  }
  return tensors;
}
function randomMetadata(rng) {
  const md = {};
  for (let i = 0; i < rng.int(0, 4); i++) md[`${rng.pick(['k', 'step', 'format', 'ü', 'a b', '__x'])}${i}`] = rng.pick(['', 'v', '"q"', '\n', '✓✓', String(rng.next())]);
  return md;
}

/** Where case `i` writes: its own folder in the worker's scratch folder. */
const caseDir = (ctx, i) => {
  const d = join(ctx.dir, `tc${i}`);
  mkdirSync(d, { recursive: true });
  return d;
};

export function cases(rng, ctx) {
  const out = [];
  let i = 0;
  const add = (c) => out.push({ ...c, id: i++ });

  // 1. Damaged checkpoints: refused with the model untouched, or loaded as exactly the original.
  for (let k = 0; k < 260; k++) {
    const r = rng.fork();
    const id = i;
    add({
      name: `loadCheckpoint: damaged checkpoint #${k}`,
      entry: 'trainer.loadCheckpoint',
      expect: 'either',
      run: () => {
        const fx = fixtures(ctx.dir);
        const { kind, bytes } = damage(fx.ckptBytes, r);
        const p = join(caseDir(ctx, id), 'step-00000004.safetensors');
        writeFileSync(p, bytes);
        setAll(fx.exe, fx.B);
        try {
          const meta = loadCheckpoint(p, fx.exe);
          return { kind, meta, changed: sameValues(fx.exe, fx.A) };
        } catch (e) {
          const changed = sameValues(fx.exe, fx.B);
          if (isErr(e) && changed) throw new Error(`a refused checkpoint (${kind}) changed the model's '${changed}': ${e.message}`);
          throw e;
        }
      },
      check: (v) => (v.changed ? `(${v.kind}) loaded, but '${v.changed}' differs from the saved values` : !deepEqual(v.meta, LOADED_META) ? `(${v.kind}) loaded other metadata ${JSON.stringify(v.meta).slice(0, 200)}` : undefined),
    });
  }

  // 2. Damaged safetensors of mixed dtypes: refused, or exactly the original.
  for (let k = 0; k < 200; k++) {
    const r = rng.fork();
    const id = i;
    add({
      name: `readSafetensors: damaged file #${k}`,
      entry: 'trainer.readSafetensors',
      expect: 'either',
      run: () => {
        const fx = fixtures(ctx.dir);
        const { kind, bytes } = damage(fx.stBytes, r);
        const p = join(caseDir(ctx, id), 'mixed.safetensors');
        writeFileSync(p, bytes);
        return { kind, file: readSafetensors(p) };
      },
      check: (v) => {
        const why = sameFile(v.file, FX.tensors, FX.stMeta);
        return why ? `(${v.kind}) read, but ${why}` : undefined;
      },
    });
  }

  // 3. A damaged Hugging Face directory: refused, or the original model.
  for (let k = 0; k < 110; k++) {
    const r = rng.fork();
    const id = i;
    const which = k % 3 === 2 ? 'config.json' : 'model.safetensors';
    add({
      name: `importHuggingFace: damaged ${which} #${k}`,
      entry: 'trainer.importHuggingFace',
      expect: 'either',
      run: () => {
        const fx = fixtures(ctx.dir);
        const d = caseDir(ctx, id);
        const model = which === 'model.safetensors' ? damage(fx.hfModel, r) : { kind: 'intact', bytes: fx.hfModel };
        const config = which === 'config.json' ? damage(fx.hfConfig, r) : { kind: 'intact', bytes: fx.hfConfig };
        writeFileSync(join(d, 'model.safetensors'), model.bytes);
        writeFileSync(join(d, 'config.json'), config.bytes);
        return { kind: `${which}: ${which === 'config.json' ? config.kind : model.kind}`, got: importHuggingFace(d) };
      },
      check: (v) => {
        if (!deepEqual(v.got.config, FX.hfImport.config)) return `(${v.kind}) imported another config ${JSON.stringify(v.got.config)}`;
        for (const [n, p] of FX.hfImport.params) if (!v.got.params.get(n) || !bytesOf(v.got.params.get(n)).equals(bytesOf(p))) return `(${v.kind}) imported other values for '${n}'`;
        return undefined;
      },
    });
  }

  // 4. A run's folder whose newest checkpoint is damaged: the resume falls back to the good one (or is refused, typed).
  for (let k = 0; k < 50; k++) {
    const r = rng.fork();
    const id = i;
    add({
      name: `resolveStart: damaged newest checkpoint #${k}`,
      entry: ['trainer.resolveStart', 'trainer.checkpointRuns'],
      expect: 'either',
      run: () => {
        const fx = fixtures(ctx.dir);
        const d = caseDir(ctx, id);
        const older = join(d, 'step-00000002.safetensors');
        const newest = join(d, 'step-00000004.safetensors');
        writeFileSync(older, fx.ckptBytes);
        const { kind, bytes } = damage(fx.ckptBytes, r);
        writeFileSync(newest, bytes);
        const start = resolveStart(d, k % 2 ? true : 'auto');
        let intact = false;
        try {
          intact = sameFile(readSafetensors(newest), readSafetensors(older).tensors, readSafetensors(older).metadata) === undefined;
        } catch (e) {
          if (!isErr(e)) throw e;
        }
        return { kind, start, older, newest, intact, runs: checkpointRuns(d).length };
      },
      check: (v) => {
        if (v.runs !== 2) return `checkpointRuns lists ${v.runs} files, not 2`;
        if (v.start.from === v.older) return v.start.skipped.length === 1 && v.start.skipped[0].path === v.newest && typeof v.start.skipped[0].reason === 'string' ? undefined : `(${v.kind}) fell back without saying so: ${JSON.stringify(v.start.skipped)}`;
        if (v.start.from === v.newest) return v.intact && v.start.skipped.length === 0 ? undefined : `(${v.kind}) resumes from a damaged checkpoint`;
        return `(${v.kind}) resumes from ${v.start.from}`;
      },
    });
  }

  // 5. Hostile headers from the spec.
  for (let k = 0; k < 180; k++) {
    const r = rng.fork();
    const spec = hostile(rng);
    const id = i;
    add({
      name: `readSafetensors: ${spec[0]} #${k}`,
      entry: 'trainer.readSafetensors',
      expect: 'error',
      run: () => {
        const p = join(caseDir(ctx, id), 'hostile.safetensors');
        writeHostile(p, spec, r);
        return readSafetensors(p);
      },
    });
  }

  // 6. Bad arguments.
  const nonStrings = [-1, 0.5, NaN, Infinity, 2 ** 53, 0, 1, 2, 5, null, undefined, true, 1n, {}, [], () => 1, new Uint8Array(3)];
  const pathTakers = [
    ['readSafetensors', (p) => readSafetensors(p)],
    ['writeSafetensors', (p) => writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } })],
    ['loadCheckpoint', (p) => loadCheckpoint(p, fixtures(ctx.dir).exe)],
    ['saveCheckpoint', (p) => saveCheckpoint(p, fixtures(ctx.dir).exe, META)],
    ['checkpointsIn', (p) => checkpointsIn(p)],
    ['checkpointRuns', (p) => checkpointRuns(p)],
    ['resolveStart', (p) => resolveStart(p, true)],
    ['importHuggingFace', (p) => importHuggingFace(p)],
    ['exportHuggingFace', (p) => exportHuggingFace(p, fixtures(ctx.dir).params, TINY)],
  ];
  for (const [fn, call] of pathTakers) {
    for (const v of nonStrings) {
      if (fn === 'resolveStart' && v === null) continue; // null: no checkpoint directory (then resume: true is refused below)
      add({ name: `${fn}(path ${show(v)})`, entry: `trainer.${fn}`, expect: 'error', run: () => call(v) });
    }
  }
  add({ name: 'resolveStart(null, true): no directory to resume from', entry: 'trainer.resolveStart', expect: 'error', run: () => resolveStart(null, true) });
  // An empty path and one with a NUL byte.
  for (const [fn, call] of pathTakers) for (const v of ['', 'a\u0000b']) add({ name: `${fn}(path ${JSON.stringify(v)})`, entry: `trainer.${fn}`, expect: 'error', run: () => call(v) });
  // resume must be a boolean, 'auto' or a path: numbers are file descriptors.
  for (const v of [...BAD_INTEGERS, 0, 1, 5, null, {}, [], 1n, '']) add({ name: `resolveStart(dir, resume ${show(v)})`, entry: 'trainer.resolveStart', expect: 'error', run: () => resolveStart(join(ctx.dir, 'none'), v) });
  // Executables that are not.
  for (const v of [...WRONG_TYPES, 5, { graph: {} }, { get: () => 1, set: () => 1 }]) {
    add({ name: `loadCheckpoint(path, exe ${show(v)})`, entry: 'trainer.loadCheckpoint', expect: 'error', run: () => loadCheckpoint(join(fixtures(ctx.dir).root, 'ckpt.safetensors'), v) });
    add({ name: `saveCheckpoint(path, exe ${show(v)})`, entry: 'trainer.saveCheckpoint', expect: 'error', run: () => saveCheckpoint(join(caseDir(ctx, 'x'), 'never.safetensors'), v, META) });
  }
  // Checkpoint metadata that is not (2^31 and 2^32 are steps and seeds; 2^53 is past exact integers).
  const notCounts = BAD_INTEGERS.filter((v) => !(Number.isSafeInteger(v) && v >= 0));
  const badMeta = [
    ...notCounts.map((v) => [`step ${show(v)}`, { ...META, step: v }]),
    ...[...notCounts, '3', null].map((v) => [`seed ${show(v)}`, { ...META, seed: v }]),
    ['loader a BigInt', { ...META, loader: 1n }],
    ['config a cycle', { ...META, config: (() => { const o = {}; o.o = o; return o; })() }],
    ['extra a function', { ...META, extra: () => 1 }],
    ['run a number', { ...META, run: 5 }],
    ['run empty', { ...META, run: '' }],
    ['an unknown key', { ...META, stepp: 3 }],
    // The loss history (version 3): two Float64Arrays of one length, steps increasing to `step`, losses finite.
    ...[null, 5, 'abc', [], { steps: [1], losses: [2] }, { steps: Float64Array.of(1), losses: Float32Array.of(2) }, { steps: Float64Array.of(1, 2), losses: Float64Array.of(2) },
      { steps: Float64Array.of(2, 1), losses: Float64Array.of(1, 1) }, { steps: Float64Array.of(5), losses: Float64Array.of(1) }, { steps: Float64Array.of(-1), losses: Float64Array.of(1) },
      { steps: Float64Array.of(1.5), losses: Float64Array.of(1) }, { steps: Float64Array.of(1), losses: Float64Array.of(NaN) }, { steps: Float64Array.of(1), losses: Float64Array.of(-Infinity) },
      { steps: Float64Array.of(1), losses: Float64Array.of(1), extra: 1 }].map((h) => [`lossHistory ${show(h)}`, { ...META, lossHistory: h }]),
    ['null', null],
    ['a string', 'meta'],
    ['an array', [META]],
  ];
  for (const [label, meta] of badMeta) {
    const id = i;
    add({ name: `saveCheckpoint: meta ${label}`, entry: 'trainer.saveCheckpoint', expect: 'error', run: () => saveCheckpoint(join(caseDir(ctx, id), 'm.safetensors'), fixtures(ctx.dir).exe, meta) });
  }
  // Non-finite weights are never saved.
  for (const v of NON_FINITE) {
    for (let k = 0; k < 4; k++) {
      const id = i;
      const at = rng.next();
      add({
        name: `saveCheckpoint: a weight ${v} #${k}`,
        entry: 'trainer.saveCheckpoint',
        expect: 'error',
        run: () => {
          const fx = fixtures(ctx.dir);
          const [name, base] = [...fx.B].at(Math.floor(at * fx.B.size));
          const w = base.slice();
          w[Math.floor(at * w.length)] = v;
          fx.exe.set(name, w);
          try {
            return saveCheckpoint(join(caseDir(ctx, id), 'nan.safetensors'), fx.exe, META);
          } finally {
            fx.exe.set(name, base);
          }
        },
      });
    }
  }
  // Tensors writeSafetensors must refuse.
  const data4 = () => Float32Array.of(0.25, -1, 3, 7);
  const badTensors = [
    ...BAD_SHAPES.map((s) => [`shape ${show(s)}`, { a: { dtype: 'F32', shape: s, data: data4() } }]),
    ...[...WRONG_TYPES, 'F64', 'f32', 'BOOL', 5].map((d) => [`dtype ${show(d)}`, { a: { dtype: d, shape: [4], data: data4() } }]),
    ...[null, [1, 2, 3, 4], 'abcd', 16, {}, new ArrayBuffer(16)].map((d) => [`data ${show(d)}`, { a: { dtype: 'F32', shape: [4], data: d } }]),
    ['bytes short', { a: { dtype: 'F32', shape: [5], data: data4() } }],
    ['bytes long', { a: { dtype: 'F16', shape: [4], data: data4() } }],
    ['name __metadata__', { __metadata__: { dtype: 'F32', shape: [4], data: data4() } }],
    ['a tensor null', { a: null }],
    ['a tensor a number', { a: 5 }],
    ['a Map with a number name', new Map([[5, { dtype: 'F32', shape: [4], data: data4() }]])],
    ...[null, 'abc', 5, [1], true].map((v) => [`tensors ${show(v)}`, v]),
  ];
  for (const [label, tensors] of badTensors) {
    const id = i;
    add({
      name: `writeSafetensors: ${label}`,
      entry: 'trainer.writeSafetensors',
      expect: 'error',
      run: () => {
        const d = caseDir(ctx, id);
        try {
          return writeSafetensors(join(d, 'w.safetensors'), tensors);
        } finally {
          if (readdirSync(d).length) throw new Error(`a refused write left ${readdirSync(d).join(', ')}`);
        }
      },
    });
  }
  const badMetadata = [null, 'x', 5, [['a', 'b']], { a: 5 }, { a: null }, { a: {} }, { a: 1n }, { 'deepwell.crc32': '{}' }];
  for (const md of badMetadata) {
    const id = i;
    add({ name: `writeSafetensors: metadata ${show(md)}`, entry: 'trainer.writeSafetensors', expect: 'error', run: () => writeSafetensors(join(caseDir(ctx, id), 'w.safetensors'), { a: { dtype: 'F32', shape: [4], data: data4() } }, md) });
  }
  // A write that fails (a directory in the way, a missing folder) says so and leaves no temporary file.
  for (let k = 0; k < 6; k++) {
    const id = i;
    add({
      name: `writeSafetensors: ${k % 2 ? 'a directory in the way' : 'a missing folder'} #${k}`,
      entry: 'trainer.writeSafetensors',
      expect: 'error',
      run: () => {
        const d = caseDir(ctx, id);
        const target = k % 2 ? join(d, 'dir.safetensors') : join(d, 'missing', 'w.safetensors');
        if (k % 2) mkdirSync(join(target, 'inside'), { recursive: true });
        try {
          return writeSafetensors(target, { a: { dtype: 'F32', shape: [4], data: data4() } });
        } finally {
          const left = readdirSync(d).filter((f) => f.includes('.tmp-'));
          if (left.length) throw new Error(`a failed write left ${left.join(', ')}`);
        }
      },
    });
  }
  // asFloat32.
  for (const [label, name, t] of [
    ['dtype F16', 'a', { dtype: 'F16', shape: [2], data: new Uint8Array(4) }],
    ['dtype I32', 'a', { dtype: 'I32', shape: [1], data: new Uint8Array(4) }],
    ['3 bytes', 'a', { dtype: 'F32', shape: [1], data: new Uint8Array(3) }],
    ['tensor null', 'a', null],
    ['tensor a number', 'a', 5],
    ['data an array', 'a', { dtype: 'F32', shape: [1], data: [1] }],
    ['name a number', 5, { dtype: 'F32', shape: [1], data: new Uint8Array(4) }],
  ]) add({ name: `asFloat32: ${label}`, entry: 'trainer.asFloat32', expect: 'error', run: () => asFloat32(name, t) });
  // gpt2ConfigJson, exportHuggingFace and importHuggingFace arguments.
  const badConfigs = [
    null, 5, 'gpt2', [],
    ...['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'].flatMap((key) => [0, -1, 1.5, NaN, Infinity, '8', null, 2 ** 40].map((v) => ({ ...TINY, [key]: v }))),
    { ...TINY, nHead: 3 }, { ...TINY, mlpHidden: 0 }, { ...TINY, activation: 'swiglu' }, { ...TINY, norm: 'rmsnorm' }, { ...TINY, nKvHead: 1 }, { ...TINY, attention: 5 },
  ];
  for (const c of badConfigs) {
    add({ name: `gpt2ConfigJson(config ${show(c)})`, entry: 'trainer.gpt2ConfigJson', expect: 'error', run: () => gpt2ConfigJson(c, 8) });
    const id = i;
    add({ name: `exportHuggingFace(config ${show(c)})`, entry: 'trainer.exportHuggingFace', expect: 'error', run: () => exportHuggingFace(join(caseDir(ctx, id), 'hf'), fixtures(ctx.dir).params, c) });
  }
  for (const v of [...BAD_INTEGERS, 0, 17, '8', null]) add({ name: `gpt2ConfigJson(vocab ${show(v)})`, entry: 'trainer.gpt2ConfigJson', expect: 'error', run: () => gpt2ConfigJson(TINY, v) });
  for (const v of [...BAD_INTEGERS, 0, 17, '8', null]) {
    const id = i;
    add({ name: `exportHuggingFace(vocabSize ${show(v)})`, entry: 'trainer.exportHuggingFace', expect: 'error', run: () => exportHuggingFace(join(caseDir(ctx, id), 'hf'), fixtures(ctx.dir).params, TINY, { vocabSize: v }) });
  }
  const badParams = [
    ['params an object', () => Object.fromEntries(fixtures(ctx.dir).params)],
    ['params null', () => null],
    ['a parameter missing', () => new Map([...fixtures(ctx.dir).params].slice(1))],
    ['a parameter a plain array', () => new Map([...fixtures(ctx.dir).params].map(([n, v], j) => [n, j === 3 ? Array.from(v) : v]))],
    ['a parameter too short', () => new Map([...fixtures(ctx.dir).params].map(([n, v], j) => [n, j === 5 ? v.subarray(1) : v]))],
    ['an unknown parameter', () => new Map([...fixtures(ctx.dir).params, ['extra.weight', Float32Array.of(1)]])],
    ...NON_FINITE.map((x) => [`a weight ${x}`, () => new Map([...fixtures(ctx.dir).params].map(([n, v], j) => [n, j === 4 ? Float32Array.from(v, (y, q) => (q === 1 ? x : y)) : v]))]),
  ];
  for (const [label, make] of badParams) {
    const id = i;
    add({ name: `exportHuggingFace: ${label}`, entry: 'trainer.exportHuggingFace', expect: 'error', run: () => exportHuggingFace(join(caseDir(ctx, id), 'hf'), make(), TINY) });
  }
  for (const opts of [null, 5, 'x', { padVocab: 64 }, ...[...BAD_INTEGERS, 0, 2 ** 20, '64'].map((v) => ({ padVocabTo: v }))]) {
    add({ name: `importHuggingFace(options ${show(opts)})`, entry: 'trainer.importHuggingFace', expect: 'error', run: () => importHuggingFace(join(fixtures(ctx.dir).root, 'hf'), opts) });
  }
  // config.json values that cannot be this model, each refused.
  const badCfg = [
    ['not JSON', '{"model_type":'], ['null', 'null'], ['an array', '[1]'], ['a number', '7'],
    ...['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head'].flatMap((key) => [0, -3, 2.5, '8', null, 2 ** 40, 1e300].map((v) => [`${key} ${show(v)}`, { [key]: v }])),
    ['n_layer far past the file', { n_layer: 2 ** 31 - 1 }], ['n_head 4 (not the record)', { n_head: 4 }], ['n_head 3', { n_head: 3 }],
    ['model_type bert', { model_type: 'bert' }], ['activation relu', { activation_function: 'relu' }], ['epsilon 1e-6', { layer_norm_epsilon: 1e-6 }],
    ['untied (no lm_head)', { tie_word_embeddings: false }], ['n_inner 5', { n_inner: 5 }], ['n_positions 5', { n_positions: 5 }],
  ];
  for (const [label, change] of badCfg) {
    const id = i;
    add({
      name: `importHuggingFace: config.json ${label}`,
      entry: 'trainer.importHuggingFace',
      expect: 'error',
      run: () => {
        const fx = fixtures(ctx.dir);
        const d = caseDir(ctx, id);
        writeFileSync(join(d, 'model.safetensors'), fx.hfModel);
        writeFileSync(join(d, 'config.json'), typeof change === 'string' ? change : JSON.stringify({ ...JSON.parse(fx.hfConfig.toString('utf8')), ...change }));
        return importHuggingFace(d);
      },
    });
  }
  // The Trainer's checkpoint options and fit's resume.
  const shard = () => markovShard(new MarkovCorpus({ vocab: 16, seed: 5 }), 4000, 'train');
  const trainerOptions = (over) => ({ model: new GPT('tiny'), train: new TokenLoader({ shards: [shard()], batchSize: 2, seqLen: 8, seed: 1 }), device: 'cpu', steps: 4, log: { progress: false }, ...over });
  for (const v of [...BAD_INTEGERS, 0, '2', null]) add({ name: `Trainer: checkpoint.every ${show(v)}`, entry: 'trainer.Trainer', expect: 'error', run: () => new Trainer(trainerOptions({ checkpoint: { dir: join(ctx.dir, 'never'), every: v } })) });
  for (const v of [...BAD_INTEGERS, 0, '2', null]) add({ name: `Trainer: checkpoint.keep ${show(v)}`, entry: 'trainer.Trainer', expect: 'error', run: () => new Trainer(trainerOptions({ checkpoint: { dir: join(ctx.dir, 'never'), every: 2, keep: v } })) });
  for (const v of [0, 5, '', null, 1.5, {}, []]) add({ name: `Trainer: checkpoint.dir ${show(v)}`, entry: 'trainer.Trainer', expect: 'error', run: () => new Trainer(trainerOptions({ checkpoint: { dir: v, every: 2 } })) });
  let trainer = null;
  for (const v of [0, 1, 2, 5, -1, NaN, 1.5, null, {}, [], 1n, '']) {
    add({
      name: `Trainer#fit(resume ${show(v)})`,
      entry: 'trainer.Trainer#fit',
      expect: 'error',
      run: () => {
        trainer ??= new Trainer(trainerOptions({ checkpoint: { dir: join(ctx.dir, 'fit-never'), every: 2 } })); // fit refuses before training: reused
        return trainer.fit({ resume: v });
      },
    });
  }

  // 7. Valid round-trips.
  for (let k = 0; k < 90; k++) {
    const tensors = randomTensors(rng);
    const metadata = randomMetadata(rng);
    const asMap = rng.bool();
    const id = i;
    add({
      name: `writeSafetensors → readSafetensors: ${tensors.size} random tensors #${k}`,
      entry: ['trainer.writeSafetensors', 'trainer.readSafetensors'],
      expect: 'ok',
      run: () => {
        const p = join(caseDir(ctx, id), 'rt.safetensors');
        writeSafetensors(p, asMap ? tensors : Object.fromEntries(tensors), metadata);
        return readSafetensors(p);
      },
      check: (f) => {
        const why = sameFile(f, tensors, metadata);
        if (why) return why;
        if (Object.keys(f.metadata).length !== Object.keys(metadata).length) return `metadata ${JSON.stringify(f.metadata)}`;
        if ([...f.tensors.keys()].join('\u0001') !== [...tensors.keys()].join('\u0001')) return 'another tensor order';
        return undefined;
      },
    });
  }
  for (let k = 0; k < 30; k++) {
    const r = rng.fork();
    const step = rng.int(0, 2 ** 31);
    const id = i;
    add({
      name: `saveCheckpoint → loadCheckpoint: random values, step ${step} #${k}`,
      entry: ['trainer.saveCheckpoint', 'trainer.loadCheckpoint'],
      expect: 'ok',
      run: () => {
        const fx = fixtures(ctx.dir);
        const values = new Map([...fx.A].map(([n, v]) => [n, r.f32(v.length, 10 ** r.int(-30, 30))]));
        setAll(fx.exe, values);
        const p = join(caseDir(ctx, id), `step-${step}.safetensors`);
        // A loss history (version 3's tensors) of up to 40 steps ending at `step`, most cases.
        const n = Math.min(r.int(0, 40), step + 1);
        const lossHistory = { steps: Float64Array.from({ length: n }, (_, j) => step - n + 1 + j), losses: Float64Array.from(r.f32(n, 10)) };
        const meta = { ...META, step, seed: r.int(0, 1000), loader: { sample: r.int(0, 99), note: 'é"\n' }, lossHistory };
        saveCheckpoint(p, fx.exe, meta);
        setAll(fx.exe, fx.B);
        const got = loadCheckpoint(p, fx.exe);
        return { got, meta, changed: sameValues(fx.exe, values) };
      },
      check: (v) => (v.changed ? `'${v.changed}' did not round-trip` : !deepEqual(v.got, v.meta) ? `metadata ${JSON.stringify(v.got)} for ${JSON.stringify(v.meta)}` : undefined),
    });
  }
  for (let k = 0; k < 12; k++) {
    const r = rng.fork();
    const vocab = rng.int(1, 16);
    const id = i;
    add({
      name: `exportHuggingFace → importHuggingFace: random weights, vocab ${vocab} #${k}`,
      entry: ['trainer.exportHuggingFace', 'trainer.importHuggingFace', 'trainer.gpt2ConfigJson'],
      expect: 'ok',
      run: () => {
        const fx = fixtures(ctx.dir);
        const params = new Map([...fx.params].map(([n, v]) => [n, r.f32(v.length, 0.5)]));
        const d = join(caseDir(ctx, id), 'hf');
        exportHuggingFace(d, params, TINY, { vocabSize: vocab });
        return { params, got: importHuggingFace(d), json: gpt2ConfigJson(TINY, vocab) };
      },
      check: ({ params, got, json }) => {
        if (got.config.vocabSize !== vocab || got.config.nLayer !== 2 || json.vocab_size !== vocab) return `config ${JSON.stringify(got.config)}`;
        for (const [n, v] of got.params) {
          const want = n === 'wte.weight' ? params.get(n).subarray(0, vocab * TINY.nEmbd) : params.get(n);
          if (!bytesOf(v).equals(bytesOf(want))) return `'${n}' did not round-trip`;
        }
        return undefined;
      },
    });
  }
  for (let k = 0; k < 12; k++) {
    const n = rng.int(1, 16);
    const data = rng.f32(n);
    const offset = rng.int(0, 3) * 4;
    add({
      name: `asFloat32: ${n} values at byte ${offset}`,
      entry: 'trainer.asFloat32',
      expect: 'ok',
      run: () => {
        const bytes = new Uint8Array(offset + n * 4);
        bytes.set(new Uint8Array(data.buffer), offset);
        return asFloat32('t', { dtype: 'F32', shape: [n], data: bytes.subarray(offset) });
      },
      check: (v) => (bytesOf(v).equals(bytesOf(data)) ? undefined : 'other values'),
    });
  }
  // A folder of checkpoints of one run, another file beside them: listed, oldest first; resume picks the newest.
  for (let k = 0; k < 10; k++) {
    const steps = [...new Set(Array.from({ length: rng.int(1, 4) }, () => rng.int(0, 99999)))].sort((a, b) => a - b);
    const id = i;
    add({
      name: `checkpointsIn / checkpointRuns / resolveStart: steps ${steps.join(', ')}`,
      entry: ['trainer.checkpointsIn', 'trainer.checkpointRuns', 'trainer.resolveStart', 'trainer.CHECKPOINT_FORMAT'],
      expect: 'ok',
      run: () => {
        const fx = fixtures(ctx.dir);
        const d = caseDir(ctx, id);
        for (const s of steps) copyFileSync(join(fx.root, 'ckpt.safetensors'), join(d, `step-${String(s).padStart(8, '0')}.safetensors`));
        writeFileSync(join(d, 'notes.txt'), 'not a checkpoint');
        return { list: checkpointsIn(d), runs: checkpointRuns(d), start: resolveStart(d, true), fresh: resolveStart(join(d, 'empty'), 'auto'), format: CHECKPOINT_FORMAT };
      },
      check: ({ list, runs, start, fresh }) => {
        if (list.map((c) => c.step).join() !== steps.join()) return `steps ${list.map((c) => c.step)}`;
        if (!runs.every((c) => c.run === META.run)) return `runs ${runs.map((c) => c.run)}`;
        if (start.from !== list.at(-1).path || start.run !== META.run || start.skipped.length) return `start ${JSON.stringify(start)}`;
        if (fresh.from !== null || fresh.run !== null) return `'auto' on an empty folder: ${JSON.stringify(fresh)}`;
        return undefined;
      },
    });
  }

  // 8. A tiny training run whose newest checkpoint is damaged resumes from the previous one, to the uninterrupted losses.
  for (let k = 0; k < 2; k++) {
    const r = rng.fork();
    const id = i;
    add({
      name: `Trainer#fit: resume past a damaged newest checkpoint #${k}`,
      entry: 'trainer.Trainer#fit',
      expect: 'ok',
      timeoutMs: 30_000,
      run: () => {
        const d = caseDir(ctx, id);
        const whole = new Trainer(trainerOptions({ steps: 6 })).fit().losses;
        const t = new Trainer(trainerOptions({ steps: 6, checkpoint: { dir: d, every: 2 } }));
        t.on('step', (e) => {
          if (e.step === 5) throw new Error('interrupted');
        });
        try {
          t.fit();
        } catch (e) {
          if (e.message !== 'interrupted') throw e;
        }
        const newest = join(d, 'step-00000004.safetensors');
        const b = readFileSync(newest);
        // Damage that cannot leave it intact: a bit of the data section flipped.
        const at = b.length - 1 - r.int(0, 200);
        b[at] ^= 0x40;
        writeFileSync(newest, b);
        const warnings = [];
        const emit = process.emitWarning;
        process.emitWarning = (w) => void warnings.push(String(w));
        try {
          return { whole, resumed: new Trainer(trainerOptions({ steps: 6, checkpoint: { dir: d, every: 2 } })).fit({ resume: true }).losses, warnings, newest };
        } finally {
          process.emitWarning = emit;
        }
      },
      check: ({ whole, resumed, warnings, newest }) => {
        if (!deepEqual(whole, resumed)) return `losses ${JSON.stringify(resumed)} after the resume, ${JSON.stringify(whole)} uninterrupted`;
        if (!warnings.some((w) => w.includes(newest))) return `no warning names ${newest}: ${JSON.stringify(warnings)}`;
        return undefined;
      },
    });
  }

  // Anything else: junk into every checkpoint export, 0 to 3 arguments (refused, typed).
  const all = { readSafetensors, writeSafetensors, asFloat32, loadCheckpoint, saveCheckpoint, checkpointsIn, checkpointRuns, exportHuggingFace, importHuggingFace, gpt2ConfigJson };
  for (let k = 0; k < 100; k++) {
    const [fn, f] = rng.pick(Object.entries(all));
    const args = Array.from({ length: rng.int(0, 3) }, () => {
      const v = junk(rng);
      return typeof v === 'string' ? 5 : v; // a junk string would be a valid relative path
    });
    add({ name: `${fn}(${args.map(show).join(', ')})`, entry: `trainer.${fn}`, expect: 'error', run: () => f(...args) });
  }
  return out.map(({ id, ...c }) => c);
}
