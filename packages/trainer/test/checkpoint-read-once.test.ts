// A resume reads its checkpoint once: resolveStart reads and checks the file whole, and the load
// that follows takes those contents when the file is unchanged. A file changed between the two is
// read and checked again (a damaged one is refused, the executable left as it was).
import { mkdtempSync, readFileSync as realRead, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '@deepwell/ir';
import { describe, expect, it, vi } from 'vitest';
import { errorOf } from '../../../testing/errors.js';

const reads = vi.hoisted(() => new Map<string, number>());
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readFileSync = ((p: unknown, ...rest: unknown[]) => {
    if (typeof p === 'string') reads.set(p, (reads.get(p) ?? 0) + 1);
    return (fs.readFileSync as (...a: unknown[]) => unknown)(p, ...rest);
  }) as typeof fs.readFileSync;
  return { ...fs, default: { ...fs, readFileSync }, readFileSync };
});

const { Trainer, loadCheckpoint, resolveStart } = await import('../src/index.js');
const { tinyRun } = await import('./tiny-run.js');

const seed = 1 + Math.floor(Math.random() * 1000);
const { options } = tinyRun(seed);

describe('a resume reads its checkpoint once', () => {
  it('fit({ resume: true }) reads the checkpoint file once, and resumes bit for bit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-read-once-'));
    const full = new Trainer(options({ steps: 8, checkpoint: { dir, every: 4, keep: 5 } })).fit();
    const path = join(dir, 'step-00000004.safetensors');
    reads.clear();
    const resumed = new Trainer(options({ steps: 8, checkpoint: { dir, every: 4, keep: 5 } })).fit({ resume: path });
    expect(reads.get(path)).toBe(1);
    expect(resumed.losses.map((l) => l.loss)).toEqual(full.losses.map((l) => l.loss));
  }, 60_000);

  it('a file changed between resolveStart and loadCheckpoint is read and checked again', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-read-once-'));
    const t = new Trainer(options({ steps: 4, checkpoint: { dir, every: 4 } }));
    t.fit();
    const path = join(dir, 'step-00000004.safetensors');
    const exe = compile(t.step, { device: 'cpu', seed: 99 });
    try {
      const name = exe.parameterNames()[0]!;
      const mine = exe.get(name);
      // Unchanged: one read for the two calls (the check's), none by the load.
      reads.clear();
      expect(resolveStart(dir, true).from).toBe(path);
      expect(reads.get(path)).toBe(1);
      loadCheckpoint(path, exe);
      expect(reads.get(path)).toBe(1);
      const loaded = exe.get(name);
      expect(loaded).not.toEqual(mine);
      // Replaced as checkpoints are written (a whole new file renamed over it, the same bytes): read again.
      const bytes = realRead(path);
      resolveStart(dir, true);
      writeFileSync(`${path}.new`, bytes);
      renameSync(`${path}.new`, path);
      reads.clear();
      loadCheckpoint(path, exe);
      expect(reads.get(path)).toBe(1);
      expect(exe.get(name)).toEqual(loaded);
      // Damaged in between (one byte of the last tensor's data, the size unchanged): refused, nothing loaded.
      const fresh = compile(t.step, { device: 'cpu', seed: 99 });
      try {
        resolveStart(dir, true);
        const bad = Buffer.from(bytes);
        const k = bad.length - 1 - Math.floor(Math.random() * 64);
        bad[k] = bad[k]! ^ 0x40;
        const { mtimeMs } = statSync(path);
        writeFileSync(path, bad);
        // Written in place: its modification time moves (set here, as within one clock tick it may not).
        utimesSync(path, new Date(), new Date(mtimeMs + 2000));
        reads.clear();
        expect(errorOf(() => loadCheckpoint(path, fresh)).code).toBe('INVALID_ARGUMENT');
        expect(reads.get(path)).toBe(1);
        expect(fresh.get(name)).toEqual(mine);
      } finally {
        fresh.dispose();
      }
    } finally {
      exe.dispose();
    }
  }, 60_000);
});
