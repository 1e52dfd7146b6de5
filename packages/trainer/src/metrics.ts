/**
 * What a run reports: a JSONL log (one object per line: steps, evaluations, checkpoints), and a
 * progress display — a bar with ETA redrawn in place on a TTY, plain lines otherwise (CI logs).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export class JsonlLog {
  constructor(readonly path: string) {
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

export interface StepLine {
  step: number;
  total: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  mfu: number | null;
  elapsed: number;
}

export class Progress {
  readonly tty: boolean;
  #last = 0;
  constructor(readonly stream: NodeJS.WriteStream = process.stderr, readonly every = 10, tty?: boolean) {
    this.tty = tty ?? Boolean(stream.isTTY);
  }

  step(s: StepLine): void {
    const eta = s.step > 0 ? (s.elapsed / s.step) * (s.total - s.step) : NaN;
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
