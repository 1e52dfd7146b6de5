/**
 * What a run reports: a JSONL log (one object per line: steps, evaluations, checkpoints), and a
 * progress display — a bar with ETA redrawn in place on a TTY, plain lines otherwise (CI logs).
 *
 * A log belongs to one run: the Trainer's first record carries the run's id. Given its owner, the
 * log refuses to append to another run's file — a new run refuses any file that already holds
 * records, a resumed run appends only to its own run's log (or one written before logs had ids) —
 * so two unrelated runs never interleave in one file, and nothing is overwritten.
 */
import { appendFileSync, closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { DeepwellError, checkInteger, checkKeys, checkNumber, describe, invalid } from '@deepwell/core';

/** The first record of a JSONL file: undefined when the file is missing or empty, null when its first line is not a JSON object. */
function firstRecord(path: string): Record<string, unknown> | null | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(1 << 16);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n === 0) return undefined;
    const text = buf.subarray(0, n).toString('utf8');
    const line = text.slice(0, text.includes('\n') ? text.indexOf('\n') : undefined);
    try {
      const v = JSON.parse(line) as unknown;
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  } finally {
    closeSync(fd);
  }
}

// Set by the classes' static blocks: marks a log or a progress display as the Trainer's, whose
// write and step then skip their argument checks (see trusted below).
let trustLog: (log: JsonlLog) => void;
let trustProgress: (p: Progress) => void;

export class JsonlLog {
  /**
   * `owner`: the run that writes (its id) and whether it resumes. Without it the file is appended
   * to whatever it holds.
   */
  constructor(readonly path: string, owner?: { run: string; resume: boolean }) {
    if (typeof path !== 'string' || path.length === 0) invalid('a file path (a non-empty string)', 'JsonlLog path', path);
    if (owner !== undefined) {
      checkKeys(owner, ['run', 'resume'], 'JsonlLog owner', { noun: 'key' });
      if (typeof owner.run !== 'string' || owner.run.length === 0) invalid("the run's id (a non-empty string)", 'JsonlLog owner.run', owner.run);
      if (typeof owner.resume !== 'boolean') invalid('a boolean', 'JsonlLog owner.resume', owner.resume);
    }
    if (owner) {
      const first = firstRecord(path);
      if (first !== undefined) {
        const theirs = typeof first?.run === 'string' ? first.run : null;
        if (!owner.resume || first === null || (theirs !== null && theirs !== owner.run)) {
          const whose = first === null ? 'something that is not a JSONL log' : `the log of another run (${theirs ? `run ${theirs}` : 'a run without an id'}${owner.resume ? `; this run is ${owner.run}` : ''})`;
          throw new DeepwellError('INVALID_ARGUMENT', `Expected a new file for log.jsonl${owner.resume ? " or this run's own log" : ''} but ${path} holds ${whose}; resume that run, or choose another log.jsonl path (nothing was appended or overwritten)`);
        }
      }
    }
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (e) {
      throw new DeepwellError('INVALID_ARGUMENT', `Could not make the folder of the log ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Append one record (a JSON object) as a line. */
  write(record: Record<string, unknown>): void {
    if (!this.#trusted && (typeof record !== 'object' || record === null || Array.isArray(record))) invalid('a record (a JSON object)', 'JsonlLog write', record);
    this.#append(record);
  }

  /** Made by the Trainer for its own records (objects by construction): write skips its check. */
  #trusted = false;

  static {
    trustLog = (log) => void (log.#trusted = true);
  }

  #append(record: Record<string, unknown>): void {
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch (e) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a record JSON can hold for JsonlLog write but received ${describe(record)}: ${(e as Error).message}`, { cause: e });
    }
    try {
      appendFileSync(this.path, `${line}\n`);
    } catch (e) {
      throw new DeepwellError('INVALID_ARGUMENT', `Could not append to the log ${this.path}: ${(e as Error).message}`, { cause: e });
    }
  }
}

const fmtTime = (s: number) => {
  if (!Number.isFinite(s)) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return `${h ? `${h}:` : ''}${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
};

/** One step as the progress display shows it. */
export interface StepLine {
  /** The step's number. */
  step: number;
  /** The run's last step. */
  total: number;
  /** Steps run so far by this process (default: step); the ETA is elapsed / done per step, so a resumed run's counts from its first step. */
  done?: number;
  /** The step's loss. */
  loss: number;
  /** The step's learning rate. */
  lr: number;
  /** The step's throughput. */
  tokensPerSecond: number;
  /** Model FLOPs utilisation, or null (the CPU). */
  mfu: number | null;
  /** Seconds since this process's first step. */
  elapsed: number;
}

export class Progress {
  readonly tty: boolean;
  #last = 0;
  constructor(readonly stream: NodeJS.WriteStream = process.stderr, readonly every = 10, tty?: boolean) {
    if (typeof (stream as { write?: unknown } | null)?.write !== 'function') invalid('a writable stream (with write)', 'Progress stream', stream);
    checkInteger(every, 'Progress every', 1, 2 ** 31 - 1);
    if (tty !== undefined && typeof tty !== 'boolean') invalid('a boolean', 'Progress tty', tty);
    this.tty = tty ?? Boolean(stream.isTTY);
  }

  step(s: StepLine): void {
    if (!this.#trusted) checkStepLine(s);
    this.#show(s);
  }

  /** Made by the Trainer for its own step lines (well formed by construction): step skips its checks. */
  #trusted = false;

  static {
    trustProgress = (p) => void (p.#trusted = true);
  }

  #show(s: StepLine): void {
    const done = s.done ?? s.step;
    const eta = done > 0 ? (s.elapsed / done) * (s.total - s.step) : NaN;
    const stats = `loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}  ${Math.round(s.tokensPerSecond).toLocaleString('en')} tok/s${s.mfu !== null ? `  MFU ${(100 * s.mfu).toFixed(1)}%` : ''}`;
    if (this.tty) {
      const now = Date.now();
      if (now - this.#last < 100 && s.step !== s.total) return;
      this.#last = now;
      const width = 24;
      const done = Math.round((width * s.step) / s.total);
      this.stream.write(`\r[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${s.step}/${s.total}  ${stats}  ETA ${fmtTime(eta)}\x1b[K${s.step === s.total ? '\n' : ''}`);
    } else if (s.step === 1 || s.step % this.every === 0 || s.step === s.total) {
      this.stream.write(`step ${s.step}/${s.total}  ${stats}  elapsed ${fmtTime(s.elapsed)}  ETA ${fmtTime(eta)}\n`);
    }
  }

  line(text: string): void {
    if (typeof text !== 'string') invalid('a string', 'Progress line', text);
    this.stream.write(`${this.tty ? '\r\x1b[K' : ''}${text}\n`);
  }
}

/**
 * For the Trainer (internal, not exported from the package): its own log or progress display, whose
 * write / step skip the per-call argument checks (its records and step lines are well formed by
 * construction). One a user makes checks every call.
 */
export function trusted<T extends JsonlLog | Progress>(x: T): T {
  if (x instanceof JsonlLog) trustLog(x);
  else trustProgress(x as Progress);
  return x;
}

function checkStepLine(s: StepLine): void {
  if (typeof s !== 'object' || s === null) invalid('a step line { step, total, loss, lr, tokensPerSecond, mfu, elapsed }', 'Progress step', s);
  checkKeys(s, ['step', 'total', 'done', 'loss', 'lr', 'tokensPerSecond', 'mfu', 'elapsed'], 'Progress step', { noun: 'key' });
  checkInteger(s.total, 'Progress step total', 1);
  checkInteger(s.step, 'Progress step step', 0, s.total);
  if (s.done !== undefined) checkInteger(s.done, 'Progress step done', 0, s.step);
  // The loss and the rate as they are (a diverged step's NaN is shown as NaN); times and counts finite.
  for (const k of ['loss', 'lr'] as const) if (typeof s[k] !== 'number') invalid('a number', `Progress step ${k}`, s[k]);
  // Rates of a step timed at 0 ms may be Infinity: shown, not refused.
  const rate = (v: unknown, what: string) => (typeof v !== 'number' || !(v >= 0)) && invalid('a number >= 0', `Progress step ${what}`, v);
  rate(s.tokensPerSecond, 'tokensPerSecond');
  if (s.mfu !== null) rate(s.mfu, 'mfu');
  checkNumber(s.elapsed, 'Progress step elapsed', { min: 0 });
}

/**
 * A run's per-step losses, kept compactly (16 bytes a step in two growing Float64Arrays, against
 * about 90 for an array of { step, loss } objects): a 10,000-step run's history stays well under a
 * megabyte of host memory. `list()` makes the objects FitResult and the checkpoint record carry.
 */
export class LossHistory {
  #steps = new Float64Array(1024);
  #losses = new Float64Array(1024);
  #n = 0;

  get length(): number {
    return this.#n;
  }

  push(step: number, loss: number): void {
    if (this.#n === this.#steps.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#steps = grow(this.#steps);
      this.#losses = grow(this.#losses);
    }
    this.#steps[this.#n] = step;
    this.#losses[this.#n] = loss;
    this.#n++;
  }

  /** Appends a series (a checkpoint's), in order. */
  pushSeries(series: { steps: Float64Array; losses: Float64Array }): void {
    for (let i = 0; i < series.steps.length; i++) this.push(series.steps[i]!, series.losses[i]!);
  }

  /** The history as views of its own arrays (no copy: valid until the next push or truncation). */
  series(): { steps: Float64Array; losses: Float64Array } {
    return { steps: this.#steps.subarray(0, this.#n), losses: this.#losses.subarray(0, this.#n) };
  }

  /** Drops every record after `step` (a rewind to a checkpoint or snapshot). */
  truncateAfter(step: number): void {
    let n = 0;
    for (let i = 0; i < this.#n; i++) {
      if (this.#steps[i]! <= step) {
        this.#steps[n] = this.#steps[i]!;
        this.#losses[n] = this.#losses[i]!;
        n++;
      }
    }
    this.#n = n;
  }

  list(): { step: number; loss: number }[] {
    return Array.from({ length: this.#n }, (_, i) => ({ step: this.#steps[i]!, loss: this.#losses[i]! }));
  }

  points(): (readonly [number, number])[] {
    return Array.from({ length: this.#n }, (_, i) => [this.#steps[i]!, this.#losses[i]!] as const);
  }
}
