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
import { DeepwellError } from '@deepwell/core';

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

export class JsonlLog {
  /**
   * `owner`: the run that writes (its id) and whether it resumes. Without it the file is appended
   * to whatever it holds.
   */
  constructor(readonly path: string, owner?: { run: string; resume: boolean }) {
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
    mkdirSync(dirname(path), { recursive: true });
  }
  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
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
    this.tty = tty ?? Boolean(stream.isTTY);
  }

  step(s: StepLine): void {
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
    this.stream.write(`${this.tty ? '\r\x1b[K' : ''}${text}\n`);
  }
}
