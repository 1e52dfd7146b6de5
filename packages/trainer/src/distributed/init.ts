/**
 * initDistributed(): this process's place in a data-parallel job and its NCCL communicator, from the
 * launcher's environment (torchrun, SLURM or `deepwell launch`; distributedEnv): rank 0 makes the NCCL
 * unique id, the TCP rendezvous (rendezvous.ts, with the job's token) hands it to every rank, and each
 * joins the communicator on its local GPU. What the Trainer's `distributed` option takes:
 *
 *   const dist = await initDistributed();
 *   const train = new TokenLoader({ shards, batchSize, seqLen, rank: dist.rank, worldSize: dist.worldSize });
 *   new Trainer({ model, train, steps, distributed: { communicator: dist.communicator } }).fit();
 *   dist.communicator?.destroy();
 *
 * A job of one (no launcher's variables) gets no communicator unless `nccl: true` asks for one (a
 * world of one through NCCL). A peer that never comes is a TIMEOUT within `timeoutMs`, one that dies
 * a PEER_FAILED; the communicator's own timeout (`timeoutMs` too) bounds every later NCCL wait.
 */
import { DeepwellError, checkInteger, checkKeys, describe } from '@deepwell/core';
import { Communicator, ncclUniqueId, NCCL_UNIQUE_ID_BYTES } from '@deepwell/kernels-native';
import { distributedEnv, type DistributedEnv } from './env.js';
import { rendezvous } from './rendezvous.js';

export interface InitDistributedOptions {
  /** The environment to read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** How long the rendezvous and each NCCL wait may take, in ms (default 600 000). */
  timeoutMs?: number;
  /** A job of one: make a communicator anyway (the NCCL path with one rank). Default false. */
  nccl?: boolean;
}

export interface DistributedContext extends DistributedEnv {
  /** This rank's communicator, or undefined in a job of one without `nccl`. */
  communicator: Communicator | undefined;
  /** The CUDA device this rank trains on: its local rank. */
  device: `cuda:${number}`;
}

export async function initDistributed(options: InitDistributedOptions = {}): Promise<DistributedContext> {
  if (typeof options !== 'object' || options === null) throw new DeepwellError('INVALID_ARGUMENT', `Expected initDistributed options ({ env, timeoutMs, nccl }) but received ${describe(options)}`);
  checkKeys(options, ['env', 'timeoutMs', 'nccl'], 'initDistributed');
  const timeoutMs = checkInteger(options.timeoutMs ?? 600_000, 'timeoutMs of initDistributed', 1, 86_400_000);
  if (options.nccl !== undefined && typeof options.nccl !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for nccl of initDistributed but received ${describe(options.nccl)}`);
  const env = distributedEnv(options.env ?? process.env);
  const device = `cuda:${env.localRank}` as const;
  if (env.worldSize === 1 && !options.nccl) return { ...env, communicator: undefined, device };
  // Rank 0's id reaches every rank through the rendezvous; the others' own ids are never used.
  const payload = env.rank === 0 ? ncclUniqueId() : new Uint8Array(0);
  const id = await rendezvous({ rank: env.rank, worldSize: env.worldSize, masterAddr: env.masterAddr, masterPort: env.masterPort, token: env.token, timeoutMs, payload });
  if (id.length !== NCCL_UNIQUE_ID_BYTES) throw new DeepwellError('PEER_FAILED', `initDistributed: Expected the NCCL unique id (${NCCL_UNIQUE_ID_BYTES} bytes) from rank 0 but received ${id.length} bytes`);
  const communicator = Communicator.create({ rank: env.rank, worldSize: env.worldSize, id, device: env.localRank, timeoutMs });
  return { ...env, communicator, device };
}
