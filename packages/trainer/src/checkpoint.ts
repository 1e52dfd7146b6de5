/**
 * Checkpoints: every parameter and optimizer-state value of a compiled step (f32, by the names the
 * graph gives them: `blocks.0.attn.qkv.weight`, `adamw.m.blocks.0.attn.qkv.weight`, ...) in one
 * safetensors file, with the trainer's position as string metadata: format and version, step, the
 * data loader's position, the seed, the config, the run's id and its learning-rate schedule. The
 * training-loss history (version 3) is two F64 tensors, `#loss.step` and `#loss.value`, written
 * straight from the trainer's arrays: a checkpoint's cost does not grow with the run's length, as
 * it did when the history was JSON in the metadata (every checkpoint built, wrote and, when pruning,
 * parsed it again; the host memory of a long run crept up with it).
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
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError, checkInteger, checkKeys, describe, invalid } from '@deepwell/core';
import type { Executable } from '@deepwell/ir';
import { numel } from '@deepwell/ir';
import { asFloat32, checkPath, firstNonFinite, parseSafetensors, writeSafetensors, type SafeTensor } from './safetensors.js';
import { asScheduleRecord, type ScheduleRecord } from './schedule.js';

export const CHECKPOINT_FORMAT = 'deepwell-checkpoint';
/**
 * Version 3 keeps the loss history as tensors; version 2 (history in `extra.losses`) carries
 * checksums (safetensors.ts) and must, as 3 must; version 1 (before them) still loads, checked for
 * finite values.
 */
export const CHECKPOINT_VERSION = '3';
const VERSIONS = ['1', '2', '3'];
/** The loss history's tensors: names no graph value has (ir's names are identifiers and dots). */
const LOSS_STEPS = '#loss.step';
const LOSS_VALUES = '#loss.value';

/** A training-loss history: step numbers (increasing integers) and their losses, one each. */
export interface LossSeries {
  steps: Float64Array;
  losses: Float64Array;
}

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
  /**
   * The training-loss history up to `step`, stored as tensors (not JSON). When loaded: the file's
   * (from `extra.losses` for a version 1 or 2 checkpoint), empty when it has none.
   */
  lossHistory?: LossSeries;
}

/** A loss history's checks: two Float64Arrays of one length, steps increasing integers ≥ 0 and ≤ `last`, losses finite. */
function checkLossSeries(h: unknown, last: number, what: string): LossSeries {
  const o = h as LossSeries | null;
  if (typeof o !== 'object' || o === null || !(o.steps instanceof Float64Array) || !(o.losses instanceof Float64Array) || o.steps.length !== o.losses.length) {
    invalid('{ steps, losses }: two Float64Arrays of one length', what, h);
  }
  checkKeys(o, ['steps', 'losses'], what);
  let prev = -1;
  for (let i = 0; i < o.steps.length; i++) {
    const step = o.steps[i]!;
    const loss = o.losses[i]!;
    if (!Number.isSafeInteger(step) || step <= prev || step > last) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected increasing integer steps from 0 to ${last} in ${what} but element ${i} is ${step}${i ? ` after ${prev}` : ''}`);
    }
    if (!Number.isFinite(loss)) throw new DeepwellError('INVALID_ARGUMENT', `Expected finite losses in ${what} but the loss of step ${step} is ${loss}`);
    prev = step;
  }
  return o;
}

/**
 * A version 1 or 2 checkpoint's history, from `extra.losses`: the records that are { step, loss }
 * numbers with steps increasing up to the checkpoint's, as before (the rest are left out).
 */
function seriesFromExtra(extra: unknown, last: number): LossSeries {
  const list = (extra as { losses?: unknown } | null)?.losses;
  const kept: { step: number; loss: number }[] = [];
  for (const l of Array.isArray(list) ? (list as { step?: unknown; loss?: unknown }[]) : []) {
    const { step, loss } = l ?? {};
    if (Number.isSafeInteger(step) && typeof loss === 'number' && Number.isFinite(loss) && (step as number) <= last && (step as number) > (kept.at(-1)?.step ?? -1)) kept.push({ step: step as number, loss });
  }
  return { steps: Float64Array.from(kept, (l) => l.step), losses: Float64Array.from(kept, (l) => l.loss) };
}

/** Every persistent value of the executable: parameters, then optimizer state, by name. */
/**
 * What a checkpoint reads and writes: a compiled Executable, or a view of one (ZeRO-1's, with whole
 * moments: distributed/zero.ts).
 */
export interface CheckpointTarget {
  graph: Pick<Executable['graph'], 'params' | 'state' | 'values'>;
  get(name: string): Float32Array;
  set(name: string, data: Float32Array): void;
}

function persistentNames(exe: CheckpointTarget): string[] {
  return [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)];
}

/** An executable argument: something with a graph of params and state, get and set (not disposed: get says so). */
function checkExecutable(exe: unknown, what: string): CheckpointTarget {
  const e = exe as CheckpointTarget | null;
  if (typeof e !== 'object' || e === null || typeof e.get !== 'function' || typeof e.set !== 'function' || typeof e.graph?.params !== 'object' || typeof e.graph?.state !== 'object') {
    invalid('a compiled Executable (from compile())', what, exe);
  }
  return e;
}

const isJson = (v: unknown, what: string): string => {
  let s: string | undefined;
  try {
    s = JSON.stringify(v ?? null);
  } catch (e) {
    invalid(`a JSON value (${(e as Error).message})`, what, v);
  }
  if (s === undefined) invalid('a JSON value', what, v);
  return s;
};

export function saveCheckpoint(path: string, exe: CheckpointTarget, meta: CheckpointMeta): void {
  checkPath(path, 'the checkpoint path');
  checkExecutable(exe, 'saveCheckpoint');
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) invalid('checkpoint metadata { step, loader, seed, config, extra?, run?, schedule? }', 'saveCheckpoint', meta);
  checkKeys(meta, ['step', 'loader', 'seed', 'config', 'extra', 'run', 'schedule', 'lossHistory'], 'checkpoint metadata');
  checkInteger(meta.step, 'the checkpoint step');
  const history = meta.lossHistory === undefined ? null : checkLossSeries(meta.lossHistory, meta.step, 'the checkpoint lossHistory');
  checkInteger(meta.seed, 'the checkpoint seed');
  if (meta.run !== undefined && meta.run !== null && (typeof meta.run !== 'string' || meta.run.length === 0)) invalid('a run id (a non-empty string)', 'the checkpoint run', meta.run);
  const strings = { loader: isJson(meta.loader, 'the checkpoint loader'), config: isJson(meta.config, 'the checkpoint config'), extra: isJson(meta.extra, 'the checkpoint extra'), schedule: meta.schedule ? isJson(meta.schedule, 'the checkpoint schedule') : null };
  const tensors = new Map<string, SafeTensor>();
  // The history first: F64 at offset 0 and 8n stays 8-byte aligned; the arrays are written as they are.
  if (history) {
    tensors.set(LOSS_STEPS, { dtype: 'F64', shape: [history.steps.length], data: history.steps });
    tensors.set(LOSS_VALUES, { dtype: 'F64', shape: [history.losses.length], data: history.losses });
  }
  for (const name of persistentNames(exe)) {
    const id = exe.graph.params[name] ?? exe.graph.state[name]!;
    const data = exe.get(name);
    // A checkpoint never holds NaN or Infinity: it could not be resumed, and pruning would drop the good ones.
    const bad = firstNonFinite(data);
    if (bad >= 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected finite values for checkpoint tensor '${name}' but element ${bad} is ${data[bad]}; ${path} was not written (the run diverged: lower the learning rate)`, { details: { tensor: name, index: bad } });
    if (tensors.has(name)) throw new DeepwellError('INVALID_ARGUMENT', `The executable has a value named '${name}', which checkpoints reserve for the loss history`);
    tensors.set(name, { dtype: 'F32', shape: [...exe.graph.values[id]!.type.shape], data });
  }
  writeSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: String(meta.step),
    loader: strings.loader,
    seed: String(meta.seed),
    config: strings.config,
    extra: strings.extra,
    ...(meta.run ? { run: meta.run } : {}),
    ...(strings.schedule ? { schedule: strings.schedule } : {}),
  });
}

/** A checkpoint file read and checked whole, without a model: its tensors (F32, finite) and metadata. */
interface CheckpointContents {
  tensors: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  meta: CheckpointMeta & { lossHistory: LossSeries };
}

/** A version 3 file's loss history from its two F64 tensors (both or neither), checked. */
function seriesFromTensors(path: string, file: { tensors: Map<string, SafeTensor> }, last: number): LossSeries {
  const s = file.tensors.get(LOSS_STEPS);
  const v = file.tensors.get(LOSS_VALUES);
  if (!s && !v) return { steps: new Float64Array(0), losses: new Float64Array(0) };
  const f64 = (name: string, t: SafeTensor | undefined): Float64Array => {
    if (!t || t.dtype !== 'F64' || t.shape.length !== 1) throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has a damaged loss history: '${name}' is ${t ? `${t.dtype}[${t.shape.join(', ')}]` : 'missing'}, expected F64[n] beside '${name === LOSS_STEPS ? LOSS_VALUES : LOSS_STEPS}'`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    return t.data.byteOffset % 8 === 0 ? new Float64Array(t.data.buffer, t.data.byteOffset, t.shape[0]) : new Float64Array(bytes.slice().buffer);
  };
  const series = { steps: f64(LOSS_STEPS, s), losses: f64(LOSS_VALUES, v) };
  try {
    return checkLossSeries(series, last, `the loss history of ${path}`);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has a damaged loss history: ${(e as Error).message}`, { cause: e });
  }
}

/** Files already checked by verifyCheckpoint in this process, by path: size, mtime and inode when checked. */
const verified = new Map<string, string>();
const stamp = (path: string): string | null => {
  try {
    const s = statSync(path);
    return `${s.size}:${s.mtimeMs}:${s.ino}`;
  } catch {
    return null;
  }
};

/**
 * Read and check a checkpoint file whole: the safetensors structure, the checksums (required from
 * version 2), the metadata (format, version, step, seed, JSON fields), every tensor F32 and finite.
 * Throws a DeepwellError saying what is wrong; the model is not involved.
 */
function readCheckpoint(path: string): CheckpointContents {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read checkpoint ${path}: ${(e as Error).message}`, { cause: e });
  }
  const file = parseSafetensors(buf, path);
  const md = file.metadata;
  if (md.format !== CHECKPOINT_FORMAT) {
    throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a Deepwell checkpoint (metadata format ${JSON.stringify(md.format ?? null)}, expected '${CHECKPOINT_FORMAT}')`, { details: { path, foreign: true } });
  }
  if (!VERSIONS.includes(md.version!)) throw new DeepwellError('INVALID_ARGUMENT', `${path} is checkpoint version ${JSON.stringify(md.version ?? null)}; this Deepwell reads versions ${VERSIONS.join(' and ')}`);
  if (md.version !== '1' && !file.checksummed) throw new DeepwellError('INVALID_ARGUMENT', `${path} is checkpoint version ${md.version} without its checksums: it is damaged`);
  const parse = (k: string) => {
    try {
      return JSON.parse(md[k] ?? 'null') as unknown;
    } catch {
      throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has unreadable metadata '${k}' (not JSON)`);
    }
  };
  const int = (k: string) => {
    const v = md[k];
    if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has an invalid ${k} ${JSON.stringify(v ?? null)} (expected a non-negative integer)`);
    return Number(v);
  };
  const step = int('step');
  const extra = parse('extra');
  const lossHistory = md.version === '1' || md.version === '2' ? seriesFromExtra(extra, step) : seriesFromTensors(path, file, step);
  const meta = { step, loader: parse('loader'), seed: md.seed === undefined ? 0 : int('seed'), config: parse('config'), extra, run: md.run || null, schedule: asScheduleRecord(parse('schedule')), lossHistory };
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const [name, t] of file.tensors) {
    if (md.version !== '1' && md.version !== '2' && (name === LOSS_STEPS || name === LOSS_VALUES)) continue;
    const data = asFloat32(name, t);
    const bad = firstNonFinite(data);
    if (bad >= 0) throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} holds a non-finite value in '${name}' (element ${bad} is ${data[bad]}): it is damaged or from a diverged run; nothing was loaded`, { details: { tensor: name, index: bad } });
    tensors.set(name, data);
    shapes.set(name, t.shape);
  }
  return { tensors, shapes, meta };
}

/** Check a checkpoint file whole (see readCheckpoint), once per file version in this process. */
function verifyCheckpoint(path: string): void {
  const before = stamp(path);
  if (before !== null && verified.get(path) === before) return;
  readCheckpoint(path);
  if (before !== null && stamp(path) === before) verified.set(path, before);
}

/**
 * Load a checkpoint into `exe`. Everything is checked first — the file (structure, checksums,
 * metadata, finite F32 values) and every tensor's presence and shape against the executable — and
 * only then are the values set: a refused checkpoint leaves the executable as it was.
 */
export function loadCheckpoint(path: string, exe: CheckpointTarget): CheckpointMeta {
  checkPath(path, 'the checkpoint path');
  checkExecutable(exe, 'loadCheckpoint');
  const file = readCheckpoint(path);
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
  for (const name of names) {
    const shape = file.shapes.get(name)!;
    const id = exe.graph.params[name] ?? exe.graph.state[name]!;
    const want = exe.graph.values[id]!.type.shape;
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i]) || numel(shape) !== numel(want)) {
      throw new DeepwellError('SHAPE_MISMATCH', `Checkpoint tensor '${name}' is F32[${shape.join(', ')}] but the model's is f32[${want.join(', ')}]; nothing was loaded`);
    }
  }
  for (const name of names) exe.set(name, file.tensors.get(name)!);
  return file.meta;
}

/**
 * The string metadata of a safetensors file, from its header alone (the tensors are not read: a
 * checkpoint can be gigabytes). Null when the file cannot be read or is not safetensors.
 */
export function readMetadata(path: string): Record<string, string> | null {
  if (typeof path !== 'string' || path.length === 0) return null;
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
    if (n > Math.min(statSync(path).size - 8, 100_000_000)) return null;
    const header = Buffer.alloc(n);
    if (readSync(fd, header, 0, n, 8) < n) return null;
    const h = JSON.parse(header.toString('utf8')) as { __metadata__?: unknown } | null;
    if (!h || typeof h !== 'object' || Array.isArray(h)) return null;
    const md = h.__metadata__ ?? {};
    if (typeof md !== 'object' || md === null || Array.isArray(md) || !Object.values(md).every((v) => typeof v === 'string')) return null;
    return md as Record<string, string>;
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
  checkPath(dir, 'the checkpoint directory');
  if (!existsSync(dir)) return [];
  if (!statSync(dir).isDirectory()) invalid('a directory', 'the checkpoint directory', dir);
  return readdirSync(dir)
    .map((f) => /^step-(\d+)\.safetensors$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Where step `step`'s checkpoint of run `run` goes (the directory is made). A file already there
 * that is not this run's is an error: a checkpoint never overwrites another run's file. `damaged`:
 * files the resume found damaged and said so (RunStart.skipped), which the same step's new
 * checkpoint replaces.
 */
export function checkpointPath(dir: string, step: number, run: string, damaged: ReadonlySet<string> = new Set()): string {
  checkPath(dir, 'the checkpoint directory');
  checkInteger(step, 'the checkpoint step');
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not make the checkpoint directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const path = join(dir, `step-${String(step).padStart(8, '0')}.safetensors`);
  if (existsSync(path) && !damaged.has(path)) {
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
  checkPath(dir, 'the checkpoint directory');
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
 * Keep run `run`'s newest `keep` (>= 1) checkpoints in a directory, deleting its older ones, and
 * remove the temporary files its killed writers left behind (a process no longer running, whose
 * header names this run; never read: checkpointsIn lists complete, renamed files only). `latest`,
 * the checkpoint just written (the one FitResult names), is never deleted. Nothing else is
 * touched: other runs' checkpoints, checkpoints without a run id, other files. Returns the paths
 * deleted.
 */
export function pruneCheckpoints(dir: string, keep: number, run: string, latest?: string): string[] {
  checkPath(dir, 'the checkpoint directory');
  checkInteger(keep, 'checkpoint.keep', 1);
  if (typeof run !== 'string' || run.length === 0) invalid('a run id', 'pruneCheckpoints', run);
  const mine = checkpointRuns(dir).filter((c) => c.run === run);
  const removed = mine.slice(0, Math.max(0, mine.length - keep)).map((c) => c.path).filter((p) => p !== latest);
  // Temporary files of writers that died (kill -9 mid-checkpoint): this run's, and those cut before
  // their header was whole (killed as the write began: nothing in them to tell whose, and nothing
  // to lose). A whole header of another run, or of something else, is left alone.
  for (const f of readdirSync(dir)) {
    const m = /^\.step-\d+\.safetensors\.tmp-(\d+)$/.exec(f);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    const md = readMetadata(join(dir, f));
    if (md === null || (md.format === CHECKPOINT_FORMAT && (md.run || null) === run)) removed.push(join(dir, f));
  }
  for (const path of removed) rmSync(path, { force: true });
  return removed;
}

/** Where a fit starts: the checkpoint to load (null: a new run) and its run's id (null: a new id is made). */
export interface RunStart {
  from: string | null;
  run: string | null;
  /**
   * Newer checkpoints of the directory that failed their check (damaged, truncated, non-finite),
   * newest first, each with why: the resume goes on from the newest good one. Empty for a new run
   * or an explicit path (a damaged one is refused).
   */
  skipped: { step: number; path: string; reason: string }[];
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
 *  - true: the newest checkpoint of `dir` that passes its check (read whole: structure,
 *    checksums, metadata, finite values), which must hold some, of one run; the newer ones that
 *    fail are in `skipped` with why; none good is an error listing each;
 *  - 'auto': as true when `dir` holds checkpoints, else a new run;
 *  - a path: that checkpoint, which must pass its check; `dir` must hold no checkpoints but that run's.
 */
export function resolveStart(dir: string | null, resume: boolean | 'auto' | string = false): RunStart {
  if (dir !== null) checkPath(dir, 'the checkpoint directory (checkpoint.dir)');
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
    return { from: null, run: null, skipped: [] };
  }
  if (resume === true || resume === 'auto') {
    if (!dir) throw new DeepwellError('INVALID_ARGUMENT', `Expected options.checkpoint.dir to resume from (resume: ${describe(resume)}) but the trainer has no checkpoint directory`);
    const ours = files.filter((c) => c.run !== undefined);
    if (!ours.length) {
      if (resume === 'auto') return { from: null, run: null, skipped: [] };
      const what = !existsSync(dir) ? 'does not exist' : files.length ? `holds only files that are not Deepwell checkpoints (steps ${steps(files)})` : 'holds none';
      throw new DeepwellError('INVALID_ARGUMENT', `Expected checkpoints to resume from in ${dir} but it ${what}; resume: 'auto' resumes when there are checkpoints and starts a new run otherwise`);
    }
    const runs = new Set(ours.map((c) => c.run).filter((r) => r !== null));
    if (runs.size > 1) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected the checkpoints of one run in ${dir} to resume but it holds several (${byRun(ours)}); pass the checkpoint to resume as resume: '<path>' with a checkpoint.dir of its own`);
    }
    // Newest first, every step file: the first that passes its check is the start; a newer damaged
    // one is skipped and said; another program's safetensors (intact, another format) is passed over.
    const skipped: RunStart['skipped'] = [];
    for (const c of [...files].reverse()) {
      try {
        verifyCheckpoint(c.path);
        return { from: c.path, run: c.run ?? null, skipped };
      } catch (e) {
        if (!DeepwellError.is(e)) throw e;
        if (e.details.foreign !== true) skipped.push({ step: c.step, path: c.path, reason: e.message });
      }
    }
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a checkpoint that loads to resume from in ${dir} but every one fails its check: ${skipped.map((s) => `step ${s.step}: ${s.reason}`).join('; ')}`, { details: { dir, skipped } });
  }
  if (!existsSync(resume)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a checkpoint file for resume but ${resume} does not exist`);
  verifyCheckpoint(resume);
  const run = runOf(resume) ?? null;
  const others = files.filter((c) => c.run !== run);
  if (others.length) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected ${dir} to hold no checkpoints but those of the run being resumed (${runName(run)}, ${resume}) but it holds others (${byRun(others)}); set checkpoint.dir to that run's directory or an empty one (nothing was deleted or overwritten)`);
  }
  return { from: resume, run, skipped: [] };
}
