/**
 * Where this process sits in a distributed job, read from the environment the usual launchers set:
 *
 *   torchrun / torch.distributed   RANK, WORLD_SIZE, LOCAL_RANK (LOCAL_WORLD_SIZE), MASTER_ADDR,
 *                                  MASTER_PORT; the job token from TORCHELASTIC_RUN_ID
 *   SLURM (srun)                   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST (the
 *                                  first node is rank 0's host unless MASTER_ADDR says otherwise),
 *                                  MASTER_PORT or a port derived from SLURM_JOB_ID, the token from
 *                                  SLURM_JOB_ID
 *   deepwell launch                the torchrun names (it sets them), DEEPWELL_JOB_TOKEN
 *
 * DEEPWELL_JOB_TOKEN, where set, is the token under any launcher. With none of these set the process
 * is a job of one (rank 0 of 1). Every value is checked; a bad one is an INVALID_ARGUMENT naming the
 * variable, never a silent default.
 */
import { DeepwellError, describe } from '@deepwell/core';

export interface DistributedEnv {
  /** Which launcher's variables were read. */
  launcher: 'torchrun' | 'slurm' | 'none';
  rank: number;
  worldSize: number;
  localRank: number;
  /** Rank 0's host and port: where the rendezvous listens. */
  masterAddr: string;
  masterPort: number;
  /** Shared by every process of one job, refused from any other (the rendezvous checks it). */
  token: string;
}

type Env = Readonly<Record<string, string | undefined>>;

function intVar(env: Env, name: string, min: number, max = 2 ** 31 - 1): number {
  const raw = env[name];
  const v = raw !== undefined && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new DeepwellError('INVALID_ARGUMENT', `Expected an integer in [${min}, ${max}] for the environment variable ${name} but received ${raw === undefined ? 'nothing (unset)' : describe(raw)}`);
  return v;
}

/**
 * The first host of a SLURM node list ("node[01-04,07],gpu2" → "node01"), as scontrol show hostnames
 * would list it first. Brackets hold comma-separated numbers or ranges; zero padding is kept.
 */
export function firstSlurmHost(list: string): string {
  if (typeof list !== 'string' || list.trim() === '') throw new DeepwellError('INVALID_ARGUMENT', `Expected a SLURM node list (SLURM_JOB_NODELIST, e.g. "node[01-04]") but received ${describe(list)}`);
  const s = list.trim();
  const open = s.indexOf('[');
  const comma = s.indexOf(',');
  if (open < 0 || (comma >= 0 && comma < open)) return comma >= 0 ? s.slice(0, comma) : s;
  const close = s.indexOf(']', open);
  const first = close > open ? s.slice(open + 1, close).split(',')[0]!.split('-')[0]! : '';
  if (!/^\d+$/.test(first)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a SLURM node list (SLURM_JOB_NODELIST, e.g. "node[01-04]") but received ${JSON.stringify(list)}`);
  return s.slice(0, open) + first;
}

/** The job's place from `env` (default process.env); see the file's comment. */
export function distributedEnv(env: Env = process.env): DistributedEnv {
  if (typeof env !== 'object' || env === null) throw new DeepwellError('INVALID_ARGUMENT', `Expected an environment (a record of strings) but received ${describe(env)}`);
  const token = (fallback: string | undefined) => env.DEEPWELL_JOB_TOKEN ?? fallback ?? '';
  const port = (fallback: number) => (env.MASTER_PORT !== undefined ? intVar(env, 'MASTER_PORT', 1, 65535) : fallback);
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    const worldSize = intVar(env, 'WORLD_SIZE', 1);
    const rank = intVar(env, 'RANK', 0, worldSize - 1);
    const localRank = env.LOCAL_RANK !== undefined ? intVar(env, 'LOCAL_RANK', 0, worldSize - 1) : rank;
    if (worldSize > 1 && (env.MASTER_ADDR === undefined || env.MASTER_ADDR.trim() === '')) throw new DeepwellError('INVALID_ARGUMENT', 'Expected MASTER_ADDR (rank 0\'s host) in the environment with WORLD_SIZE > 1 but it is unset');
    if (worldSize > 1 && env.MASTER_PORT === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'Expected MASTER_PORT (rank 0\'s port) in the environment with WORLD_SIZE > 1 but it is unset');
    return { launcher: 'torchrun', rank, worldSize, localRank, masterAddr: (env.MASTER_ADDR ?? '127.0.0.1').trim(), masterPort: port(29500), token: token(env.TORCHELASTIC_RUN_ID) };
  }
  if (env.SLURM_PROCID !== undefined || env.SLURM_NTASKS !== undefined) {
    const worldSize = intVar(env, 'SLURM_NTASKS', 1);
    const rank = intVar(env, 'SLURM_PROCID', 0, worldSize - 1);
    const localRank = env.SLURM_LOCALID !== undefined ? intVar(env, 'SLURM_LOCALID', 0, worldSize - 1) : 0;
    const jobId = env.SLURM_JOB_ID !== undefined ? intVar(env, 'SLURM_JOB_ID', 0, Number.MAX_SAFE_INTEGER) : null;
    let masterAddr = env.MASTER_ADDR?.trim();
    if (!masterAddr) {
      if (worldSize > 1 && env.SLURM_JOB_NODELIST === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'Expected SLURM_JOB_NODELIST or MASTER_ADDR in the environment with SLURM_NTASKS > 1 but neither is set');
      masterAddr = env.SLURM_JOB_NODELIST !== undefined ? firstSlurmHost(env.SLURM_JOB_NODELIST) : '127.0.0.1';
    }
    // One port per job, so two jobs sharing a node do not meet: 20000 + the job id mod 20000.
    const derived = jobId !== null ? 20000 + (jobId % 20000) : 29500;
    return { launcher: 'slurm', rank, worldSize, localRank, masterAddr, masterPort: port(derived), token: token(jobId !== null ? String(jobId) : undefined) };
  }
  return { launcher: 'none', rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: port(29500), token: token(undefined) };
}
