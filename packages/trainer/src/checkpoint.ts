/**
 * Checkpoints: every parameter and optimizer-state value of a compiled step (f32, by the names the
 * graph gives them: `blocks.0.attn.qkv.weight`, `adamw.m.blocks.0.attn.qkv.weight`, ...) in one
 * safetensors file, with the trainer's position as string metadata: format and version, step, the
 * data loader's position, the seed, the config, the run's id and its learning-rate schedule.
 * Written atomically (safetensors.ts), so a crash mid-write leaves the previous checkpoint intact.
 * Loading checks every tensor's presence, dtype and shape against the executable before it writes
 * any of them.
 *
 * A checkpoint directory holds one run. `resolveStart` is the one place that decides what a fit
 * may do with a directory (the CLI asks it too): a new run refuses a directory that holds
 * checkpoints, a resume takes the newest checkpoint of the directory's run. Pruning deletes only
 * the run's own checkpoints (by the run id in their metadata), and a checkpoint is never written
 * over another run's file: no default deletes or overwrites anything the run did not write.
 * Checkpoints written before run ids (no `run` metadata) are never pruned or overwritten.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError, describe } from '@deepwell/core';
import type { Executable } from '@deepwell/ir';
import { numel } from '@deepwell/ir';
import { asFloat32, readSafetensors, writeSafetensors, type SafeTensor } from './safetensors.js';
import { asScheduleRecord, type ScheduleRecord } from './schedule.js';

export const CHECKPOINT_FORMAT = 'deepwell-checkpoint';
export const CHECKPOINT_VERSION = '1';

export interface CheckpointMeta {
  step: number;
  loader: unknown;
  seed: number;
  config: unknown;
  /** Anything else the trainer keeps (JSON). */
  extra?: unknown;
  /** The id of the run that wrote it; null (when loaded) for a checkpoint written before runs had ids. */
  run?: string | null;
  /** The run's learning-rate schedule; null (when loaded) when the checkpoint does not record one. */
  schedule?: ScheduleRecord | null;
}

/** Every persistent value of the executable: parameters, then optimizer state, by name. */
function persistentNames(exe: Executable): string[] {
  return [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)];
}

export function saveCheckpoint(path: string, exe: Executable, meta: CheckpointMeta): void {
  const tensors = new Map<string, SafeTensor>();
  for (const name of persistentNames(exe)) {
    const id = exe.graph.params[name] ?? exe.graph.state[name]!;
    tensors.set(name, { dtype: 'F32', shape: [...exe.graph.values[id]!.type.shape], data: exe.get(name) });
  }
  writeSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: String(meta.step),
    loader: JSON.stringify(meta.loader),
    seed: String(meta.seed),
    config: JSON.stringify(meta.config),
    extra: JSON.stringify(meta.extra ?? null),
    ...(meta.run ? { run: meta.run } : {}),
    ...(meta.schedule ? { schedule: JSON.stringify(meta.schedule) } : {}),
  });
}

export function loadCheckpoint(path: string, exe: Executable): CheckpointMeta {
  const file = readSafetensors(path);
  const md = file.metadata;
  if (md.format !== CHECKPOINT_FORMAT) {
    throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a Deepwell checkpoint (metadata format ${JSON.stringify(md.format ?? null)}, expected '${CHECKPOINT_FORMAT}')`);
  }
  if (md.version !== CHECKPOINT_VERSION) throw new DeepwellError('INVALID_ARGUMENT', `${path} is checkpoint version ${md.version}; this Deepwell reads version ${CHECKPOINT_VERSION}`);
  const names = persistentNames(exe);
  const missing = names.filter((n) => !file.tensors.has(n));
  const extra = [...file.tensors.keys()].filter((n) => !names.includes(n));
  if (missing.length || extra.length) {
    const list = (xs: string[]) => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? `, … (${xs.length} in all)` : ''}`;
    throw new DeepwellError(
      'SHAPE_MISMATCH',
      `Checkpoint ${path} does not match the model:${missing.length ? ` missing ${list(missing)};` : ''}${extra.length ? ` not in the model ${list(extra)};` : ''} nothing was loaded`,
    );
  }
  const values = names.map((name) => {
    const t = file.tensors.get(name)!;
    const id = exe.graph.params[name] ?? exe.graph.state[name]!;
    const shape = exe.graph.values[id]!.type.shape;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || numel(t.shape) !== numel(shape)) {
      throw new DeepwellError('SHAPE_MISMATCH', `Checkpoint tensor '${name}' is ${t.dtype}[${t.shape.join(', ')}] but the model's is f32[${shape.join(', ')}]; nothing was loaded`);
    }
    return [name, asFloat32(name, t)] as const;
  });
  for (const [name, data] of values) exe.set(name, data);
  const parse = (k: string) => {
    try {
      return JSON.parse(md[k] ?? 'null');
    } catch {
      throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has unreadable metadata '${k}'`);
    }
  };
  const step = Number(md.step);
  if (!Number.isInteger(step) || step < 0) throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has an invalid step ${JSON.stringify(md.step)}`);
  return { step, loader: parse('loader'), seed: Number(md.seed), config: parse('config'), extra: parse('extra'), run: md.run || null, schedule: asScheduleRecord(parse('schedule')) };
}

/**
 * The string metadata of a safetensors file, from its header alone (the tensors are not read: a
 * checkpoint can be gigabytes). Null when the file cannot be read or is not safetensors.
 */
export function readMetadata(path: string): Record<string, string> | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) < 8) return null;
    const n = Number(len.readBigUInt64LE(0));
    if (n > Math.min(statSync(path).size - 8, 1 << 28)) return null;
    const header = Buffer.alloc(n);
    if (readSync(fd, header, 0, n, 8) < n) return null;
    const h = JSON.parse(header.toString('utf8')) as { __metadata__?: Record<string, string> } | null;
    return h && typeof h === 'object' ? (h.__metadata__ ?? {}) : null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** The run a file belongs to: its id; null for a Deepwell checkpoint without one; undefined for anything else. */
function runOf(path: string): string | null | undefined {
  const md = readMetadata(path);
  if (md?.format !== CHECKPOINT_FORMAT) return undefined;
  return md.run || null;
}

/** Checkpoint files of a directory: `step-00000100.safetensors`, oldest first. */
export function checkpointsIn(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^step-(\d+)\.safetensors$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Where step `step`'s checkpoint of run `run` goes (the directory is made). A file already there
 * that is not this run's is an error: a checkpoint never overwrites another run's file.
 */
export function checkpointPath(dir: string, step: number, run: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `step-${String(step).padStart(8, '0')}.safetensors`);
  if (existsSync(path)) {
    const owner = runOf(path);
    if (owner !== run) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected to write step ${step}'s checkpoint at ${path} but a file of ${owner === undefined ? 'another program' : owner === null ? 'a run without an id' : `another run (${owner})`} is there; nothing was overwritten (use another checkpoint.dir)`);
    }
  }
  return path;
}

/** A checkpoint file of a directory with the run it belongs to (null: a checkpoint without a run id; undefined: not a Deepwell checkpoint). */
export interface CheckpointFile {
  step: number;
  path: string;
  run: string | null | undefined;
}

/** The checkpoint files of a directory with their runs (headers only), oldest first. */
export function checkpointRuns(dir: string): CheckpointFile[] {
  return checkpointsIn(dir).map((c) => ({ ...c, run: runOf(c.path) }));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Keep run `run`'s newest `keep` checkpoints in a directory, deleting its older ones, and remove
 * the temporary files its killed writers left behind (a process no longer running, whose header
 * names this run; never read: checkpointsIn lists complete, renamed files only). Nothing else is
 * touched: other runs' checkpoints, checkpoints without a run id, other files. Returns the paths
 * deleted.
 */
export function pruneCheckpoints(dir: string, keep: number, run: string): string[] {
  const mine = checkpointRuns(dir).filter((c) => c.run === run);
  const removed = mine.slice(0, Math.max(0, mine.length - keep)).map((c) => c.path);
  for (const f of readdirSync(dir)) {
    const m = /^\.step-\d+\.safetensors\.tmp-(\d+)$/.exec(f);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1])) && runOf(join(dir, f)) === run) removed.push(join(dir, f));
  }
  for (const path of removed) rmSync(path, { force: true });
  return removed;
}

/** Where a fit starts: the checkpoint to load (null: a new run) and its run's id (null: a new id is made). */
export interface RunStart {
  from: string | null;
  run: string | null;
}

const steps = (cs: CheckpointFile[]) => cs.map((c) => c.step).join(', ');
const runName = (r: string | null | undefined) => (r === undefined ? 'not Deepwell checkpoints' : r === null ? 'a run without an id' : `run ${r}`);
/** Checkpoints grouped by run: "run a (steps 4, 8), run b (steps 2)". */
function byRun(cs: CheckpointFile[]): string {
  const groups = new Map<string | null | undefined, CheckpointFile[]>();
  for (const c of cs) groups.set(c.run, [...(groups.get(c.run) ?? []), c]);
  return [...groups].map(([r, g]) => `${runName(r)}: steps ${steps(g)}`).join('; ');
}

/**
 * What a fit may do with checkpoint directory `dir` (null: none) given fit's `resume`, decided
 * from the files there before anything is written. The Trainer calls it at the start of every fit
 * and the CLI before it builds one, so both refuse the same things with the same words:
 *  - a new run (resume false): `dir` must hold no checkpoint (another run's would be pruned,
 *    overwritten or resumed by mistake);
 *  - true: the newest checkpoint of `dir`, which must hold some, of one run;
 *  - 'auto': as true when `dir` holds checkpoints, else a new run;
 *  - a path: that checkpoint; `dir` must hold no checkpoints but that run's.
 */
export function resolveStart(dir: string | null, resume: boolean | 'auto' | string = false): RunStart {
  if (typeof resume !== 'boolean' && !(typeof resume === 'string' && resume.length > 0)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected true, false, 'auto' or a checkpoint path for resume but received ${describe(resume)}`);
  }
  const files = dir ? checkpointRuns(dir) : [];
  if (resume === false) {
    if (files.length) {
      throw new DeepwellError(
        'INVALID_ARGUMENT',
        `Expected an empty checkpoint directory for a new run but ${dir} holds checkpoints (steps ${steps(files)}); resume that run (resume: true) or set checkpoint.dir to another directory (nothing was deleted or overwritten)`,
        { details: { dir, steps: files.map((c) => c.step) } },
      );
    }
    return { from: null, run: null };
  }
  if (resume === true || resume === 'auto') {
    if (!dir) throw new DeepwellError('INVALID_ARGUMENT', `Expected options.checkpoint.dir to resume from (resume: ${describe(resume)}) but the trainer has no checkpoint directory`);
    const ours = files.filter((c) => c.run !== undefined);
    if (!ours.length) {
      if (resume === 'auto') return { from: null, run: null };
      const what = !existsSync(dir) ? 'does not exist' : files.length ? `holds only files that are not Deepwell checkpoints (steps ${steps(files)})` : 'holds none';
      throw new DeepwellError('INVALID_ARGUMENT', `Expected checkpoints to resume from in ${dir} but it ${what}; resume: 'auto' resumes when there are checkpoints and starts a new run otherwise`);
    }
    const runs = new Set(ours.map((c) => c.run).filter((r) => r !== null));
    if (runs.size > 1) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected the checkpoints of one run in ${dir} to resume but it holds several (${byRun(ours)}); pass the checkpoint to resume as resume: '<path>' with a checkpoint.dir of its own`);
    }
    const last = ours.at(-1)!;
    return { from: last.path, run: last.run ?? null };
  }
  if (!existsSync(resume)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a checkpoint file for resume but ${resume} does not exist`);
  const run = runOf(resume);
  // Not a Deepwell checkpoint: loadCheckpoint says so with the details.
  if (run === undefined) return { from: resume, run: null };
  const others = files.filter((c) => c.run !== run);
  if (others.length) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected ${dir} to hold no checkpoints but those of the run being resumed (${runName(run)}, ${resume}) but it holds others (${byRun(others)}); set checkpoint.dir to that run's directory or an empty one (nothing was deleted or overwritten)`);
  }
  return { from: resume, run };
}
