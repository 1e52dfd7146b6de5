// Issue 20, host memory of a long run: a checkpoint keeps the training-loss history as two F64
// tensors (version 3), written straight from the Trainer's arrays, not as JSON in the metadata
// (every checkpoint built, wrote and parsed the whole history again: the header of step 10,000's
// checkpoint held 10,000 records, and the GPU soak's host memory crept up with them). The history
// round-trips bit for bit; a version 2 checkpoint (history in extra.losses) still resumes with its
// history; a damaged history is refused with a DeepwellError and nothing is loaded. On the CPU with
// the tiny GPT; values from a fresh seed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type Executable } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { scratchDirs, seededUniform, tinyRun } from './tiny-run.js';
import { Trainer, loadCheckpoint, readSafetensors, saveCheckpoint, writeSafetensors, type SafeTensor } from '../src/index.js';
import { CHECKPOINT_FORMAT } from '../src/checkpoint.js';
import { CHECKSUM_KEY } from '../src/safetensors.js';
import { errorOf } from '../../../testing/errors.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const { options } = tinyRun(seed);
const rand = seededUniform(seed);
const fresh = scratchDirs('deepwell-losses-');
const executable = (): Executable => compile(new Trainer(options()).step, { device: 'cpu', seed: 1 });
/** A history of `count` steps ending at `last` (≥ 2 count): increasing steps with random gaps, random losses (f32 values and not). */
function history(count: number, last: number): { steps: Float64Array; losses: Float64Array } {
  const steps = new Float64Array(count);
  let s = last - count * 2;
  for (let i = 0; i < count; i++) steps[i] = s += 1 + Math.floor(rand() * 2);
  steps[count - 1] = last;
  const losses = Float64Array.from({ length: count }, (_, i) => (i % 2 ? Math.fround(1 + rand() * 9) : 1 + rand() * 9));
  return { steps, losses };
}
const meta = (step: number, lossHistory?: { steps: Float64Array; losses: Float64Array }) => ({ step, loader: { epoch: 0, shard: 0, sample: 1 }, seed: 3, config: null, run: 'r', ...(lossHistory ? { lossHistory } : {}) });

describe('the loss history in a checkpoint (issue 20)', () => {
  it('is two F64 tensors, not JSON; it round-trips bit for bit and the header does not grow with it', () => {
    const exe = executable();
    const dir = fresh();
    const count = 1000 + Math.floor(rand() * 4000);
    const h = history(count, 9000 + count);
    const p = join(dir, 'a.safetensors');
    saveCheckpoint(p, exe, { ...meta(9000 + count, h), extra: { note: 'x' } });
    const file = readSafetensors(p);
    expect(file.metadata.version).toBe('3');
    expect(file.tensors.get('#loss.step')).toMatchObject({ dtype: 'F64', shape: [count] });
    expect(file.tensors.get('#loss.value')).toMatchObject({ dtype: 'F64', shape: [count] });
    expect(JSON.parse(file.metadata.extra!)).toEqual({ note: 'x' });
    const back = loadCheckpoint(p, exe).lossHistory!;
    expect(Buffer.from(back.steps.buffer, back.steps.byteOffset, back.steps.byteLength).equals(Buffer.from(h.steps.buffer))).toBe(true);
    expect(Buffer.from(back.losses.buffer, back.losses.byteOffset, back.losses.byteLength).equals(Buffer.from(h.losses.buffer))).toBe(true);
    // The header (metadata and tensor table) does not grow with the history: a few digits more for
    // thousands of records than for 3 (as JSON each record took 20 bytes or more).
    const q = join(dir, 'b.safetensors');
    saveCheckpoint(q, exe, meta(9000 + count, history(3, 9000 + count)));
    const headerBytes = (path: string) => Number(readFileSync(path).readBigUInt64LE(0));
    expect(Math.abs(headerBytes(p) - headerBytes(q))).toBeLessThan(count / 10);
    // A checkpoint written without a history loads with an empty one.
    const r = join(dir, 'c.safetensors');
    saveCheckpoint(r, exe, meta(5));
    expect(loadCheckpoint(r, exe).lossHistory).toEqual({ steps: new Float64Array(0), losses: new Float64Array(0) });
    exe.dispose();
  });

  it("the Trainer writes its history there and a resumed run's FitResult has every step's loss, bit for bit", () => {
    const dir = fresh();
    const whole = new Trainer(options()).fit().losses;
    new Trainer(options({ steps: 12, checkpoint: { dir, every: 4, keep: 5 } })).fit();
    const file = readSafetensors(join(dir, 'step-00000008.safetensors'));
    expect(JSON.parse(file.metadata.extra!).losses).toBeUndefined();
    const steps = file.tensors.get('#loss.step')!;
    expect(steps.shape).toEqual([8]);
    expect([...new Float64Array(Uint8Array.from(new Uint8Array(steps.data.buffer, steps.data.byteOffset, 64)).buffer)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const resumed = new Trainer(options({ steps: 12, checkpoint: { dir, every: 4, keep: 5 } })).fit({ resume: join(dir, 'step-00000008.safetensors') });
    expect(resumed.losses).toEqual(whole);
  });

  it('a version 2 checkpoint (history in extra.losses) still loads with its history', () => {
    const exe = executable();
    const dir = fresh();
    const h = history(50, 120);
    const tensors = new Map<string, SafeTensor>();
    for (const name of [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)]) tensors.set(name, { dtype: 'F32', shape: [...exe.graph.values[exe.graph.params[name] ?? exe.graph.state[name]!]!.type.shape], data: exe.get(name) });
    const records = Array.from(h.steps, (step, i) => ({ step, loss: h.losses[i]! }));
    const p = join(dir, 'v2.safetensors');
    writeSafetensors(p, tensors, { format: CHECKPOINT_FORMAT, version: '2', step: '120', loader: '{}', seed: '3', config: 'null', extra: JSON.stringify({ losses: records, evals: [] }) });
    const back = loadCheckpoint(p, exe).lossHistory!;
    expect([...back.steps]).toEqual([...h.steps]);
    expect([...back.losses]).toEqual([...h.losses]);
    exe.dispose();
  });

  it('a damaged history is refused, naming it, and nothing is loaded; saveCheckpoint refuses a bad one and writes nothing', () => {
    const exe = executable();
    const dir = fresh();
    const p = join(dir, 'good.safetensors');
    const h = history(15, 30);
    saveCheckpoint(p, exe, meta(30, h));
    const file = readSafetensors(p);
    const md = Object.fromEntries(Object.entries(file.metadata).filter(([k]) => k !== CHECKSUM_KEY));
    const rewrite = (name: string, change: (t: Map<string, SafeTensor>) => void) => {
      const t = new Map([...file.tensors].map(([k, v]) => [k, { ...v, data: new Uint8Array(v.data.buffer.slice(v.data.byteOffset, v.data.byteOffset + v.data.byteLength)) }] as const));
      change(t);
      const q = join(dir, `${name}.safetensors`);
      writeSafetensors(q, t, md);
      return q;
    };
    const f64 = (values: number[]): SafeTensor => ({ dtype: 'F64', shape: [values.length], data: Float64Array.from(values) });
    const name = Object.keys(exe.graph.params)[0]!;
    const before = exe.get(name);
    const cases: [string, (t: Map<string, SafeTensor>) => void, RegExp][] = [
      ['steps going back', (t) => t.set('#loss.step', f64([...h.steps].map((s, i) => (i === 7 ? 1 : s)))), /damaged loss history.*increasing integer steps/],
      ['a step past the checkpoint', (t) => t.set('#loss.step', f64([...h.steps].map((s, i) => (i === 14 ? 31 : s)))), /damaged loss history.*from 0 to 30/],
      ['a NaN loss', (t) => t.set('#loss.value', f64([...h.losses].map((l, i) => (i === 3 ? Number.NaN : l)))), /damaged loss history.*finite losses/],
      ['one of the two', (t) => t.delete('#loss.value'), /damaged loss history.*'#loss.value' is missing/],
      ['F32 steps', (t) => t.set('#loss.step', { dtype: 'F32', shape: [15], data: Float32Array.from(h.steps) }), /damaged loss history.*F32\[15\]/],
      ['lengths that differ', (t) => t.set('#loss.value', f64([...h.losses].slice(1))), /damaged loss history.*two Float64Arrays of one length/],
    ];
    for (const [what, change, message] of cases) {
      const e = errorOf(() => loadCheckpoint(rewrite(what.replace(/ /g, '-'), change), exe));
      expect(e.name, what).toBe('DeepwellError');
      expect(e.message, what).toMatch(message);
      expect(exe.get(name), what).toEqual(before);
    }
    const bad: [string, unknown, RegExp][] = [
      ['arrays', { steps: [1, 2], losses: [1, 2] }, /two Float64Arrays/],
      ['lengths', { steps: Float64Array.of(1, 2), losses: Float64Array.of(1) }, /two Float64Arrays of one length/],
      ['past the step', { steps: Float64Array.of(1, 31), losses: Float64Array.of(1, 2) }, /from 0 to 30/],
      ['Infinity', { steps: Float64Array.of(1, 2), losses: Float64Array.of(1, Infinity) }, /finite losses/],
      ['fractional step', { steps: Float64Array.of(1.5), losses: Float64Array.of(1) }, /increasing integer steps/],
      ['unknown key', { steps: Float64Array.of(1), losses: Float64Array.of(1), stesp: 1 }, /stesp/],
    ];
    for (const [what, lossHistory, message] of bad) {
      const q = join(dir, `w-${what.replace(/ /g, '-')}.safetensors`);
      const e = errorOf(() => saveCheckpoint(q, exe, { ...meta(30), lossHistory } as never));
      expect(e.name, what).toBe('DeepwellError');
      expect(e.message, what).toMatch(message);
      expect(() => readSafetensors(q), what).toThrow();
    }
    exe.dispose();
  });
});
