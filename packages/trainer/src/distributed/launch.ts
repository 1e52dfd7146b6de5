/**
 * One machine's launcher (`deepwell launch --gpus N script.js …`): one Node process per GPU, with
 * the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT) and a fresh DEEPWELL_JOB_TOKEN, so a script reads its place with distributedEnv()
 * whether this, torchrun (`torchrun --no-python node script.js`) or srun started it.
 *
 * Each rank's output lines are prefixed with "[rank] ". The first rank to fail (a non-zero exit or a
 * signal) ends the job: the others get SIGTERM, then SIGKILL after `graceMs`, and the launch resolves
 * with that rank's exit code and a message naming it, so a dead rank never leaves the others hanging
 * in a collective. SIGINT / SIGTERM to the launcher go to every rank.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { DeepwellError, checkInteger, checkKeys, describe } from '@deepwell/core';

export interface LaunchOptions {
  /** Processes (one per GPU), 1 to 64. */
  gpus: number;
  /** The script each process runs (with Node), and its arguments. */
  script: string;
  args?: string[];
  /** MASTER_PORT (default: a free port of this machine). */
  masterPort?: number;
  /** Extra environment for every rank (over this process's). */
  env?: Record<string, string>;
  /** How long the others get after SIGTERM before SIGKILL, when one rank fails (default 5000 ms). */
  graceMs?: number;
  /** Where each prefixed output line goes (default: this process's stdout / stderr). */
  out?: (line: string) => void;
  err?: (line: string) => void;
}

export interface LaunchResult {
  /** 0 when every rank exited 0; else the first failed rank's exit code (1 for a signal). */
  code: number;
  /** The first rank that failed, or null. */
  failedRank: number | null;
  message: string;
}

/** A free TCP port of this machine (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function lineSplitter(rank: number, write: (line: string) => void): (chunk: Buffer | string) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      write(`[${rank}] ${buf.slice(0, nl)}`);
      buf = buf.slice(nl + 1);
    }
  };
}

/** Starts the job (see the file's comment); resolves when every rank has exited. */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  if (typeof options !== 'object' || options === null) throw new DeepwellError('INVALID_ARGUMENT', 'Expected launch options ({ gpus, script })');
  checkKeys(options, ['gpus', 'script', 'args', 'masterPort', 'env', 'graceMs', 'out', 'err'], 'launch');
  const gpus = checkInteger(options.gpus, 'gpus of launch', 1, 64);
  if (typeof options.script !== 'string' || options.script === '') throw new DeepwellError('INVALID_ARGUMENT', `Expected a script path for script of launch but received ${describe(options.script)}`);
  const args = options.args ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new DeepwellError('INVALID_ARGUMENT', 'Expected an array of strings for args of launch');
  const graceMs = checkInteger(options.graceMs ?? 5000, 'graceMs of launch', 0, 600_000);
  const env = options.env ?? {};
  if (typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a record of strings for env of launch');
  const port = options.masterPort !== undefined ? checkInteger(options.masterPort, 'masterPort of launch', 1, 65535) : await freePort();
  const out = options.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = options.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  const token = randomBytes(16).toString('hex');

  return new Promise((resolve) => {
    const children: ChildProcess[] = [];
    let failed: { rank: number; code: number; why: string } | null = null;
    let left = gpus;
    let killTimer: NodeJS.Timeout | null = null;
    const forward = (sig: NodeJS.Signals) => () => children.forEach((c) => c.exitCode === null && c.kill(sig));
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    const stopOthers = () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      killTimer = setTimeout(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')), graceMs);
    };
    for (let rank = 0; rank < gpus; rank++) {
      const child = spawn(process.execPath, [options.script, ...args], {
        env: { ...process.env, ...env, RANK: String(rank), WORLD_SIZE: String(gpus), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(gpus), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), DEEPWELL_JOB_TOKEN: token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      child.stdout!.on('data', lineSplitter(rank, out));
      child.stderr!.on('data', lineSplitter(rank, err));
      child.on('error', (e) => {
        if (!failed) {
          failed = { rank, code: 1, why: `could not start: ${e.message}` };
          stopOthers();
        }
      });
      child.on('exit', (code, signal) => {
        if (!failed && (code !== 0 || signal !== null)) {
          failed = { rank, code: code ?? 1, why: signal ? `was killed by ${signal}` : `exited with code ${code}` };
          stopOthers();
        }
        if (--left === 0) {
          if (killTimer) clearTimeout(killTimer);
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          const f = failed as { rank: number; code: number; why: string } | null;
          resolve(
            f
              ? { code: f.code === 0 ? 1 : f.code, failedRank: f.rank, message: `rank ${f.rank} of ${gpus} ${f.why}; the other ranks were stopped` }
              : { code: 0, failedRank: null, message: `${gpus} ranks finished` },
          );
        }
      });
    }
  });
}
