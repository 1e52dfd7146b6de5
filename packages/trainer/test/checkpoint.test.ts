// Issue 20, checkpoints and safetensors files: a refused checkpoint leaves the model untouched;
// checksums catch damaged bytes and non-finite values are refused; a damaged newest checkpoint
// falls back to the previous good one with a warning; readSafetensors refuses headers that break
// the spec (negative, overlapping or out-of-file offsets, bad shapes, duplicate names, bytes not
// covered) and writeSafetensors the shapes it used to write; a failed write leaves no temporary
// file; paths must be strings (a number is a file descriptor to node's fs); pruning keeps the final
// checkpoint. On the CPU with the tiny GPT and random values drawn from a fresh seed.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { compile, type Executable } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { scratchDirs, seededUniform, tinyRun } from './tiny-run.js';
import { Trainer, checkpointsIn, loadCheckpoint, readSafetensors, resolveStart, saveCheckpoint, writeHooks, writeSafetensors, type SafeTensor } from '../src/index.js';
import { CHECKPOINT_FORMAT, pruneCheckpoints } from '../src/checkpoint.js';
import { crc32js } from '../src/crc32.js';
import { CHECKSUM_KEY } from '../src/safetensors.js';
import { errorOf } from '../../../testing/errors.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const { options } = tinyRun(seed);
const uniform = seededUniform(seed);
/** A seeded uniform in [-0.5, 0.5). */
const rand = () => uniform() - 0.5;
const randoms = (n: number) => Float32Array.from({ length: n }, rand);
const fresh = scratchDirs('deepwell-ckpt-');

/** The tiny GPT's compiled training step with random values in every parameter and state. */
function executable(): Executable {
  const exe = compile(new Trainer(options()).step, { device: 'cpu', seed: 1 });
  for (const name of [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)]) exe.set(name, randoms(exe.get(name).length));
  return exe;
}
const valuesOf = (exe: Executable) => new Map([...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)].map((k) => [k, exe.get(k)] as const));
const meta = { step: 4, loader: { epoch: 0, shard: 0, sample: 3 }, seed: 3, config: null, run: 'run-a' };

/** A safetensors file from the format's definition: the header as given (no checksums), then `data`. */
function rawFile(path: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): string {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}
/** A file's bytes with one bit of the data section flipped (`at` bytes from its end). */
function flipDataBit(path: string, at = 5): void {
  const b = readFileSync(path);
  b[b.length - at] = b[b.length - at]! ^ 0x10;
  writeFileSync(path, b);
}

afterEach(() => {
  vi.restoreAllMocks();
  delete writeHooks.beforeRename;
});

describe('loading a checkpoint (issue 20)', () => {
  it('a refused checkpoint leaves every weight bitwise unchanged: everything is checked before anything is set', () => {
    const dir = fresh();
    const exe = executable();
    const good = join(dir, 'good.safetensors');
    saveCheckpoint(good, exe, meta);
    const f = readSafetensors(good);
    for (const name of Object.keys(exe.graph.params)) exe.set(name, randoms(exe.get(name).length)); // other weights now
    const before = valuesOf(exe);
    // Valid tensors (all of them, the right shapes) with bad metadata: a step that is no step, a loader that is not JSON.
    const cases: [string, Record<string, string>][] = [
      ['step', { ...f.metadata, step: '-1' }],
      ['loader', { ...f.metadata, loader: '{not json' }],
      ['seed', { ...f.metadata, seed: 'NaN' }],
    ];
    for (const [what, md] of cases) {
      const p = join(dir, `bad-${what}.safetensors`);
      writeSafetensors(p, f.tensors, md);
      expect(errorOf(() => loadCheckpoint(p, exe)).message).toMatch(new RegExp(what));
      for (const [name, v] of valuesOf(exe)) expect(v, `${what}: ${name}`).toEqual(before.get(name));
    }
    // A non-finite value in the last tensor the loader reaches, and a flipped bit: nothing set either.
    const names = [...f.tensors.keys()];
    const last = names.at(-1)!;
    const nan = new Map(f.tensors);
    const bad = new Float32Array(f.tensors.get(last)!.data.buffer.slice(0));
    bad[bad.length - 1] = Number.NaN;
    nan.set(last, { ...f.tensors.get(last)!, data: bad });
    writeSafetensors(join(dir, 'nan.safetensors'), nan, f.metadata);
    expect(errorOf(() => loadCheckpoint(join(dir, 'nan.safetensors'), exe)).message).toMatch(/non-finite value in '.*'.*nothing was loaded/);
    for (const [name, v] of valuesOf(exe)) expect(v, name).toEqual(before.get(name));
    // The good one loads whole, bit for bit.
    expect(loadCheckpoint(good, exe)).toMatchObject({ step: 4, seed: 3, run: 'run-a', loader: meta.loader });
    for (const [name, t] of f.tensors) expect(exe.get(name)).toEqual(new Float32Array(t.data.buffer));
    exe.dispose();
  });

  it('checksums catch flipped bits in the data and the metadata; non-finite weights are refused, in old files too', () => {
    const dir = fresh();
    const exe = executable();
    const p = join(dir, 'c.safetensors');
    saveCheckpoint(p, exe, meta);
    const header = JSON.parse(readFileSync(p).subarray(8, 8 + Number(readFileSync(p).readBigUInt64LE(0))).toString('utf8'));
    expect(Object.keys(JSON.parse(header.__metadata__[CHECKSUM_KEY]))).toContain('__metadata__');
    const bytes = readFileSync(p);
    flipDataBit(p, 1 + Math.floor(-rand() * 100 + 50));
    const e = errorOf(() => loadCheckpoint(p, exe));
    expect(e.message).toMatch(/fails its checksum/);
    expect(errorOf(() => readSafetensors(p)).message).toMatch(/fails its checksum/);
    // A digit of the step in the header: same length, valid JSON, caught by the metadata's checksum.
    const text = bytes.toString('latin1');
    const at = text.indexOf('"step":"4"') + 8;
    const changed = Buffer.from(bytes);
    changed[at] = '5'.charCodeAt(0);
    writeFileSync(p, changed);
    expect(errorOf(() => loadCheckpoint(p, exe)).message).toMatch(/metadata fails its checksum/);
    // A checkpoint of version 2 whose checksums are gone is damaged.
    const f = (() => {
      writeFileSync(p, bytes);
      return readSafetensors(p);
    })();
    const plain: Record<string, unknown> = { __metadata__: f.metadata };
    let off = 0;
    const parts: Uint8Array[] = [];
    for (const [name, t] of f.tensors) {
      plain[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
      parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      off += t.data.byteLength;
    }
    rawFile(join(dir, 'v2-nosum.safetensors'), plain, Buffer.concat(parts));
    expect(errorOf(() => loadCheckpoint(join(dir, 'v2-nosum.safetensors'), exe)).message).toMatch(/without its checksums/);
    // A file from before checksums (version 1, none) still loads, bit for bit...
    const v1 = rawFile(join(dir, 'v1.safetensors'), { ...plain, __metadata__: { ...f.metadata, version: '1' } }, Buffer.concat(parts));
    expect(loadCheckpoint(v1, exe).step).toBe(4);
    for (const [name, t] of f.tensors) expect(exe.get(name)).toEqual(new Float32Array(t.data.buffer));
    // ...but not with an Infinity in it.
    const inf = Buffer.concat(parts);
    inf.writeFloatLE(Number.POSITIVE_INFINITY, inf.length - 4);
    rawFile(join(dir, 'v1-inf.safetensors'), { ...plain, __metadata__: { ...f.metadata, version: '1' } }, inf);
    expect(errorOf(() => loadCheckpoint(join(dir, 'v1-inf.safetensors'), exe)).message).toMatch(/non-finite value .* is Infinity/);
    // Nor is a checkpoint written with NaN weights: nothing is written.
    const name = Object.keys(exe.graph.params)[0]!;
    const w = exe.get(name);
    w[Math.floor((rand() + 0.5) * w.length)] = Number.NaN;
    exe.set(name, w);
    expect(errorOf(() => saveCheckpoint(join(dir, 'nan.safetensors'), exe, meta)).message).toMatch(new RegExp(`finite values for checkpoint tensor '${name.replace(/\./g, '\\.')}'`));
    expect(readdirSync(dir).some((f) => f.startsWith('nan') || f.includes('.tmp-'))).toBe(false);
    exe.dispose();
  });

  it("a damaged name of the checksum key does not turn a file into one without checksums", () => {
    const dir = fresh();
    const p = join(dir, 'k.safetensors');
    writeSafetensors(p, { a: { dtype: 'F32', shape: [3], data: randoms(3) } }, { note: 'x' });
    const bytes = readFileSync(p);
    const at = bytes.indexOf(CHECKSUM_KEY) + CHECKSUM_KEY.length - 1; // its last character
    for (const c of ['3', 'X']) {
      const b = Buffer.from(bytes);
      b[at] = c.charCodeAt(0);
      writeFileSync(p, b);
      expect(errorOf(() => readSafetensors(p)).message).toMatch(/where its checksums .* would be: it is damaged/);
    }
    expect(errorOf(() => writeSafetensors(p, {}, { 'deepwell.crc33': 'x' })).message).toMatch(/reserved/);
  });

  it('CRC-32 in JavaScript (for Node before 20.15) equals zlib', () => {
    const bytes = new Uint8Array(randoms(1000).buffer);
    const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
    expect(crc32js(new Uint8Array(0))).toBe(0);
    expect(crc32js(Buffer.from('123456789'))).toBe(0xcbf43926); // the standard check value
    if (native) expect(crc32js(bytes, 7)).toBe(native(bytes, 7));
  });
});

describe('resuming from a damaged newest checkpoint (issue 20)', () => {
  const interrupted = (dir: string) => {
    const t = new Trainer(options({ checkpoint: { dir, every: 4 } }));
    t.on('step', (e) => {
      if (e.step === 9) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([4, 8]);
  };

  it('warns naming the file and why, resumes from the previous good one, and replaces the damaged one', () => {
    const whole = new Trainer(options()).fit().losses;
    const dir = fresh();
    interrupted(dir);
    const newest = join(dir, 'step-00000008.safetensors');
    flipDataBit(newest);
    const start = resolveStart(dir, true);
    expect(start.from).toBe(join(dir, 'step-00000004.safetensors'));
    expect(start.skipped).toEqual([{ step: 8, path: newest, reason: expect.stringMatching(/fails its checksum/) }]);
    const warnings: string[] = [];
    vi.spyOn(process, 'emitWarning').mockImplementation(((w: string) => void warnings.push(String(w))) as typeof process.emitWarning);
    const jsonl = join(dir, 'log.jsonl');
    const r = new Trainer(options({ checkpoint: { dir, every: 4 }, log: { progress: false, jsonl } })).fit({ resume: true });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(newest);
    expect(warnings[0]).toMatch(/fails its checksum.*damaged/);
    expect(warnings[0]).toContain('step-00000004.safetensors');
    const log = readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.find((l) => l.event === 'warning')).toMatchObject({ step: 8, path: newest });
    // Steps 5-12 computed again from step 4: the uninterrupted run's losses, bit for bit.
    expect(r.losses).toEqual(whole);
    expect(() => readSafetensors(newest)).not.toThrow(); // step 8 written again, whole
  });

  it('a newest file cut short falls back too; with no good checkpoint left the error lists each and why', () => {
    const dir = fresh();
    interrupted(dir);
    const [p4, p8] = checkpointsIn(dir).map((c) => c.path);
    writeFileSync(p8!, readFileSync(p8!).subarray(0, 100)); // the header itself cut
    expect(resolveStart(dir, 'auto')).toMatchObject({ from: p4, skipped: [{ step: 8, path: p8 }] });
    flipDataBit(p4!);
    const e = errorOf(() => new Trainer(options({ checkpoint: { dir, every: 4 } })).fit({ resume: true }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/Expected a checkpoint that loads to resume from .* but every one fails its check: step 8: .*step 4: .*checksum/);
    // An explicit path that is damaged is refused (no fallback: the caller named it).
    expect(errorOf(() => resolveStart(null, p4!)).message).toMatch(/fails its checksum/);
  });

  it("another program's intact safetensors among the steps is passed over, not taken for a damaged checkpoint", () => {
    const dir = fresh();
    interrupted(dir);
    const foreign = join(dir, 'step-00000010.safetensors');
    writeSafetensors(foreign, { x: { dtype: 'F32', shape: [2], data: randoms(2) } }, { format: 'pt' });
    expect(resolveStart(dir, true)).toEqual({ from: join(dir, 'step-00000008.safetensors'), run: expect.any(String), skipped: [] });
  });

  it('a newest checkpoint whose format name is damaged is said, not passed over as a foreign file', () => {
    const dir = fresh();
    interrupted(dir);
    const [p4, p8] = checkpointsIn(dir).map((c) => c.path);
    const b = readFileSync(p8!);
    const at = b.indexOf(CHECKPOINT_FORMAT) + 3;
    b[at] = b[at]! ^ 0x01;
    writeFileSync(p8!, b);
    expect(resolveStart(dir, true)).toMatchObject({ from: p4, skipped: [{ step: 8, path: p8, reason: expect.stringMatching(/metadata fails its checksum/) }] });
  });
});

describe('readSafetensors and writeSafetensors against the spec (issue 20)', () => {
  const f32 = (k: number) => new Uint8Array(randoms(k).buffer);

  it('refuses headers that break the format, each with a DeepwellError', () => {
    const dir = fresh();
    const t = (shape: unknown, offs: unknown, dtype = 'F32') => ({ dtype, shape, data_offsets: offs });
    const bad: [string, unknown, Uint8Array, RegExp][] = [
      ['null header', null, f32(0), /not a JSON object/],
      ['array header', [1, 2], f32(0), /not a JSON object/],
      ['negative offsets', { a: t([2], [-8, 0]), b: t([2], [0, 8]) }, f32(2), /data_offsets/],
      ['overlapping offsets', { a: t([2], [0, 8]), b: t([2], [4, 12]) }, f32(3), /overlaps/],
      ['a gap', { a: t([1], [0, 4]), b: t([1], [8, 12]) }, f32(3), /gap/],
      ['offsets beyond the file', { a: t([4], [0, 16]) }, f32(2), /beyond a data section of 8/],
      ['bytes after the tensors', { a: t([2], [0, 8]) }, f32(3), /offsets must tile/],
      ['negative shape', { a: t([-2], [0, 8]) }, f32(2), /shape \[-2\]/],
      ['fractional shape', { a: t([0.5, 4], [0, 8]) }, f32(2), /shape \[0.5, 4\]/],
      ['shape and bytes disagree', { a: t([3], [0, 8]) }, f32(2), /for 12 bytes/],
      ['dtype and bytes disagree', { a: t([2], [0, 8], 'F16') }, f32(2), /for 4 bytes/],
      ['unknown dtype', { a: t([2], [0, 8], 'F64x') }, f32(2), /dtype "F64x"/],
      ['non-string metadata', { __metadata__: { step: 7 }, a: t([2], [0, 8]) }, f32(2), /metadata 'step' is 7/],
      ['metadata not an object', { __metadata__: 'x', a: t([2], [0, 8]) }, f32(2), /__metadata__/],
      ['tensor not an object', { a: 5 }, f32(0), /tensor 'a' is 5/],
    ];
    for (const [what, header, data, message] of bad) {
      const e = errorOf(() => readSafetensors(rawFile(join(dir, 'x.safetensors'), header, data)));
      expect(e.message, what).toMatch(message);
    }
    // A duplicate name: JSON.parse would keep the second silently.
    const dup = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
    expect(errorOf(() => readSafetensors(rawFile(join(dir, 'x.safetensors'), null, f32(4), dup))).message).toMatch(/names 'a' twice/);
    // A header length past the end of the file, and one of 2^64 - 1.
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(2n ** 64n - 1n);
    writeFileSync(join(dir, 'y.safetensors'), Buffer.concat([len, Buffer.from('{}')]));
    expect(errorOf(() => readSafetensors(join(dir, 'y.safetensors'))).message).toMatch(/header claims 18446744073709551615 bytes/);
    // Zero-size tensors anywhere, and a file of metadata alone, are fine.
    const ok = readSafetensors(rawFile(join(dir, 'z.safetensors'), { e: t([0, 3], [0, 0]), a: t([2], [0, 8]), f: t([4, 0], [8, 8]) }, f32(2)));
    expect([...ok.tensors.keys()]).toEqual(['e', 'a', 'f']);
    expect(readSafetensors(rawFile(join(dir, 'm.safetensors'), { __metadata__: { k: 'v' } })).metadata).toEqual({ k: 'v' });
  });

  it('writeSafetensors refuses what it cannot write truthfully, writing nothing', () => {
    const dir = fresh();
    const p = join(dir, 'w.safetensors');
    const data = randoms(4);
    const bad: [string, unknown, RegExp][] = [
      ['negative shape', { a: { dtype: 'F32', shape: [-1, -4], data } }, /shape of tensor 'a'\[0\]/],
      ['fractional shape', { a: { dtype: 'F32', shape: [0.5, 8], data } }, /shape of tensor 'a'\[0\]/],
      ['NaN shape', { a: { dtype: 'F32', shape: [NaN], data } }, /shape of tensor 'a'/],
      ['huge shape', { a: { dtype: 'F32', shape: [2 ** 26, 2 ** 26], data } }, /2\^53 bytes|Expected \d+ bytes/],
      ['unknown dtype', { a: { dtype: 'F8_E4M3', shape: [4], data } }, /safetensors dtype/],
      ['not a tensor', { a: null }, /tensor 'a'/],
      ['data not bytes', { a: { dtype: 'F32', shape: [4], data: [1, 2, 3, 4] } }, /typed array/],
      ['tensors not a map', 'abc', /Map or an object/],
    ];
    for (const [what, tensors, message] of bad) expect(errorOf(() => writeSafetensors(p, tensors as Record<string, SafeTensor>)).message, what).toMatch(message);
    expect(errorOf(() => writeSafetensors(p, { a: { dtype: 'F32', shape: [4], data } }, { step: 7 } as never)).message).toMatch(/metadata 'step'/);
    expect(errorOf(() => writeSafetensors(p, { a: { dtype: 'F32', shape: [4], data } }, { [CHECKSUM_KEY]: 'x' })).message).toMatch(/written by writeSafetensors/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('round-trips random tensors and metadata bit for bit, with checksums', () => {
    const dir = fresh();
    const dtypes = ['F64', 'F32', 'F16', 'BF16', 'I32', 'U16', 'I64', 'U8'] as const;
    const width = { F64: 8, F32: 4, F16: 2, BF16: 2, I32: 4, U16: 2, I64: 8, U8: 1 };
    for (let k = 0; k < 20; k++) {
      const tensors = new Map<string, SafeTensor>();
      for (let j = 0; j < 1 + Math.floor((rand() + 0.5) * 5); j++) {
        const dtype = dtypes[Math.floor((rand() + 0.5) * dtypes.length)]!;
        const shape = Array.from({ length: Math.floor((rand() + 0.5) * 3) }, () => Math.floor((rand() + 0.5) * 5));
        const bytes = Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) * width[dtype] }, () => Math.floor((rand() + 0.5) * 256));
        tensors.set(`t${j}.${Math.floor((rand() + 0.5) * 1e6)}`, { dtype, shape, data: bytes });
      }
      const metadata = { note: `${rand()}`, 'ünïcode ✓': '"quoted"\n' };
      const p = join(dir, `r${k}.safetensors`);
      writeSafetensors(p, tensors, metadata);
      const back = readSafetensors(p);
      expect(back.metadata).toEqual(metadata);
      expect([...back.tensors.keys()]).toEqual([...tensors.keys()]);
      for (const [name, t] of tensors) {
        const b = back.tensors.get(name)!;
        expect([b.dtype, b.shape]).toEqual([t.dtype, t.shape]);
        expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))).toBe(true);
      }
    }
  });

  it('a failed write leaves no temporary file and says so with a DeepwellError', () => {
    const dir = fresh();
    const tensors = { a: { dtype: 'F32' as const, shape: [8], data: randoms(8) } };
    // A directory in the way of the rename.
    const target = join(dir, 'step-00000001.safetensors');
    mkdirSync(join(target, 'inside'), { recursive: true });
    expect(errorOf(() => writeSafetensors(target, tensors)).message).toMatch(/Could not write .*step-00000001.safetensors.*temporary file was removed/);
    expect(readdirSync(dir)).toEqual(['step-00000001.safetensors']);
    // A writer that fails after the data is written (an injected failure).
    writeHooks.beforeRename = () => {
      throw new Error('disk full');
    };
    expect(errorOf(() => writeSafetensors(join(dir, 'b.safetensors'), tensors)).message).toMatch(/disk full/);
    delete writeHooks.beforeRename;
    expect(readdirSync(dir)).toEqual(['step-00000001.safetensors']);
    // A directory that does not exist.
    expect(errorOf(() => writeSafetensors(join(dir, 'none', 'c.safetensors'), tensors)).message).toMatch(/Could not write/);
  });

  it('paths are strings: a number (a file descriptor to node) is refused by every reader and writer', () => {
    const dir = fresh();
    const real = join(dir, 'real.safetensors');
    writeSafetensors(real, { a: { dtype: 'F32', shape: [2], data: randoms(2) } });
    const fd = openSync(real, 'r');
    try {
      const exe = executable();
      for (const call of [() => readSafetensors(fd as never), () => loadCheckpoint(fd as never, exe), () => saveCheckpoint(fd as never, exe, meta), () => writeSafetensors(fd as never, {}), () => checkpointsIn(fd as never), () => resolveStart(fd as never, true)]) {
        const e = errorOf(call);
        expect(e.code).toBe('INVALID_ARGUMENT');
        expect(e.message).toMatch(/Expected a file path .* but received \d+/);
      }
      exe.dispose();
    } finally {
      closeSync(fd);
    }
  });
});

describe('pruning and the checkpoint options (issue 20)', () => {
  it('keep must be at least 1, and the checkpoint just written is never pruned', () => {
    const dir = fresh();
    const f = { a: { dtype: 'F32' as const, shape: [2], data: randoms(2) } };
    const md = (step: number) => ({ format: CHECKPOINT_FORMAT, version: '2', step: String(step), run: 'r1' });
    for (const s of [2, 4, 8]) writeSafetensors(join(dir, `step-0000000${s}.safetensors`), f, md(s));
    expect(errorOf(() => pruneCheckpoints(dir, 0, 'r1')).message).toMatch(/checkpoint.keep/);
    expect(errorOf(() => pruneCheckpoints(dir, Number.NaN, 'r1')).message).toMatch(/checkpoint.keep/);
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([2, 4, 8]);
    // A resumed run wrote step 4 with a newer (damaged) step 8 of its own there: keep 1 keeps both.
    expect(pruneCheckpoints(dir, 1, 'r1', join(dir, 'step-00000004.safetensors'))).toEqual([join(dir, 'step-00000002.safetensors')]);
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([4, 8]);
  });

  it("a dead writer's temporary file is removed when it is this run's or was cut before its header; another run's stays", () => {
    const dir = fresh();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // exited: its id names no live process
    const f = { a: { dtype: 'F32' as const, shape: [2], data: randoms(2) } };
    const md = (step: number, run: string) => ({ format: CHECKPOINT_FORMAT, version: '3', step: String(step), run });
    writeSafetensors(join(dir, 'step-00000004.safetensors'), f, md(4, 'r1'));
    const tmp = (step: number) => join(dir, `.step-0000000${step}.safetensors.tmp-${dead}`);
    writeFileSync(tmp(5), ''); // killed the instant the file was made (seen in the GPU kill -9 run)
    writeFileSync(tmp(6), Buffer.from([200, 1, 0])); // killed inside the header's length
    writeSafetensors(tmp(7), f, md(7, 'r1')); // killed in the data: whole header, this run
    writeSafetensors(tmp(8), f, md(8, 'r2')); // whole header, another run: not ours to delete
    writeFileSync(join(dir, `.notes.tmp-${dead}`), 'x'); // not a checkpoint's name
    const removed = pruneCheckpoints(dir, 2, 'r1');
    expect(removed.sort()).toEqual([tmp(5), tmp(6), tmp(7)].sort());
    expect(readdirSync(dir).sort()).toEqual([`.notes.tmp-${dead}`, `.step-00000008.safetensors.tmp-${dead}`, 'step-00000004.safetensors'].sort());
  });

  it('the Trainer refuses checkpoint.every and keep that are not integers >= 1, and resume that is a number', () => {
    const dir = fresh();
    for (const every of [0, Number.NaN, 1.5, -1, '2']) expect(errorOf(() => new Trainer(options({ checkpoint: { dir, every: every as number } }))).message).toMatch(/checkpoint.every/);
    for (const keep of [0, Number.NaN, 2.5]) expect(errorOf(() => new Trainer(options({ checkpoint: { dir, every: 2, keep } }))).message).toMatch(/checkpoint.keep/);
    expect(errorOf(() => new Trainer(options({ checkpoint: { dir, every: 2 } })).fit({ resume: 5 as never })).message).toMatch(/for resume but received 5/);
  });
});
