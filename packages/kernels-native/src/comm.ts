/**
 * NCCL through the addon (native/comm/nccl.cpp): the communicator a data-parallel step all-reduces
 * its gradients with (issue 22). libnccl.so.2 is found at run time (findLibrary('nccl'): the CUDA
 * toolkit, pip's nvidia-nccl, DEEPWELL_NCCL_PATH); without it every call fails with
 * LIBRARY_UNAVAILABLE, saying where it looked.
 *
 *   const id = rank === 0 ? ncclUniqueId() : undefined;        // then shared by rendezvous()
 *   const comm = Communicator.create({ rank, worldSize, id, device, timeoutMs });
 *   comm.allReduce(stream, 'bf16', grads, grads, n, 'sum');     // in place
 *   comm.destroy();
 *
 * Communicators are non-blocking inside: a call NCCL has not finished within the communicator's
 * timeout aborts it and fails with TIMEOUT (a peer that never came, or stopped), and a peer's failure
 * NCCL reports is PEER_FAILED, so a job ends with a clear message instead of hanging. A collective
 * runs on the caller's stream; `check()` asks NCCL for an asynchronous error between steps.
 */
import { DeepwellError, checkInteger, checkKeys, checkOneOf, describe } from '@deepwell/core';
import { DTYPE_CODE, NCCL_OP_CODE, type NativeEntries } from './abi.gen.js';
import type { DevArg } from './abi-types.js';
import { tryLoadNative } from './loader.js';
import { findLibrary } from './vendor.js';

/** Bytes of an NCCL unique id. */
export const NCCL_UNIQUE_ID_BYTES = 128;
const OPS = ['sum', 'prod', 'max', 'min', 'avg'] as const;
export type NcclOp = (typeof OPS)[number];
const DTYPES = ['f32', 'bf16', 'f16', 'i32'] as const;
export type NcclDtype = (typeof DTYPES)[number];

/** The addon's entries with NCCL open, or a typed error saying what is missing. */
function entries(): NativeEntries {
  const addon = tryLoadNative();
  if (!addon) throw new DeepwellError('NATIVE_LOAD_FAILED', 'NCCL needs the native addon, which is not loaded');
  const lib = findLibrary('nccl');
  if (!lib.found) {
    const tried = lib.tried.slice(0, 6).map((t) => `${t.candidate}: ${t.error}`).join('; ');
    throw new DeepwellError('LIBRARY_UNAVAILABLE', `NCCL (libnccl.so.2) was not found (tried ${tried}); install nvidia-nccl or set DEEPWELL_NCCL_PATH`);
  }
  return addon;
}

/** A new NCCL unique id (rank 0 makes it; every rank passes the same bytes to Communicator.create). */
export function ncclUniqueId(): Uint8Array {
  const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES);
  entries().ncclGetUniqueId(id);
  return id;
}

export interface CommunicatorOptions {
  rank: number;
  worldSize: number;
  /** The job's NCCL unique id (128 bytes, from rank 0's ncclUniqueId()). */
  id: Uint8Array;
  /** The CUDA device of this rank (default 0). */
  device?: number;
  /** How long any one NCCL call may take, in ms, before the communicator is aborted (default 600 000). */
  timeoutMs?: number;
}

export class Communicator {
  readonly rank: number;
  readonly worldSize: number;
  readonly device: number;
  #handle: number | null;
  #ops: NativeEntries;

  private constructor(ops: NativeEntries, handle: number, rank: number, worldSize: number, device: number) {
    this.#ops = ops;
    this.#handle = handle;
    this.rank = rank;
    this.worldSize = worldSize;
    this.device = device;
  }

  /** Joins the communicator of `worldSize` ranks (every rank calls it with the same id). */
  static create(options: CommunicatorOptions): Communicator {
    if (typeof options !== 'object' || options === null) throw new DeepwellError('INVALID_ARGUMENT', 'Expected communicator options ({ rank, worldSize, id })');
    checkKeys(options, ['rank', 'worldSize', 'id', 'device', 'timeoutMs'], 'Communicator.create');
    const worldSize = checkInteger(options.worldSize, 'worldSize of Communicator.create', 1, 65536);
    const rank = checkInteger(options.rank, 'rank of Communicator.create', 0, worldSize - 1);
    const device = checkInteger(options.device ?? 0, 'device of Communicator.create', 0, 63);
    const timeoutMs = checkInteger(options.timeoutMs ?? 600_000, 'timeoutMs of Communicator.create', 1, 86_400_000);
    if (!(options.id instanceof Uint8Array) || options.id.length !== NCCL_UNIQUE_ID_BYTES) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected the NCCL unique id (a Uint8Array of ${NCCL_UNIQUE_ID_BYTES} bytes) for id of Communicator.create but received ${options.id instanceof Uint8Array ? `${options.id.length} bytes` : describe(options.id)}`);
    }
    const ops = entries();
    const handle = ops.ncclCommInitRank(device, worldSize, rank, options.id, timeoutMs);
    return new Communicator(ops, handle, rank, worldSize, device);
  }

  /**
   * This communicator's handle in this process: what the IR's all_reduce nodes carry (attribute
   * comm, set by dataParallel) to find it. DISPOSED once destroyed or aborted.
   */
  get handle(): number {
    return this.#live('handle');
  }

  #live(what: string): number {
    if (this.#handle === null) throw new DeepwellError('DISPOSED', `Communicator.${what}: the communicator was destroyed or aborted`);
    return this.#handle;
  }

  /** recv = op over the ranks of send (count elements each); in place when recv is send. */
  allReduce(stream: number, dtype: NcclDtype, send: DevArg, recv: DevArg, count: number, op: NcclOp = 'sum'): void {
    this.#ops.ncclAllReduce(this.#live('allReduce'), stream, dtypeCode(dtype), opCode(op), count, send, recv);
  }

  /** recv (recvCount elements) = op over the ranks of this rank's slice of send (recvCount · worldSize). */
  reduceScatter(stream: number, dtype: NcclDtype, send: DevArg, recv: DevArg, recvCount: number, op: NcclOp = 'sum'): void {
    this.#ops.ncclReduceScatter(this.#live('reduceScatter'), stream, dtypeCode(dtype), opCode(op), recvCount, send, recv);
  }

  /** recv (sendCount · worldSize elements) = every rank's send, in rank order. */
  allGather(stream: number, dtype: NcclDtype, send: DevArg, recv: DevArg, sendCount: number): void {
    this.#ops.ncclAllGather(this.#live('allGather'), stream, dtypeCode(dtype), sendCount, send, recv);
  }

  /** recv on every rank = root's send (count elements). */
  broadcast(stream: number, dtype: NcclDtype, send: DevArg, recv: DevArg, count: number, root = 0): void {
    this.#ops.ncclBroadcast(this.#live('broadcast'), stream, dtypeCode(dtype), checkInteger(root, 'root of Communicator.broadcast', 0, this.worldSize - 1), count, send, recv);
  }

  /**
   * Waits until `stream` (whose work includes this communicator's collectives) is done, watching NCCL
   * meanwhile: a peer's failure aborts the communicator and throws PEER_FAILED, the communicator's
   * timeout passing aborts it and throws TIMEOUT, so a rank never hangs on a peer that stopped. A
   * compiled data-parallel step waits this way at the end of every run().
   */
  waitStream(stream: number): void {
    const h = this.#live('waitStream');
    try {
      this.#ops.ncclStreamWait(h, stream);
    } catch (e) {
      if (DeepwellError.is(e) && (e.code === 'PEER_FAILED' || e.code === 'TIMEOUT')) this.#handle = null; // aborted natively
      throw e;
    }
  }

  /** Throws (PEER_FAILED, CUDA_ERROR, ...) if NCCL holds an asynchronous error for this communicator. */
  check(): void {
    const err = this.#ops.ncclCommCheck(this.#live('check'));
    if (err !== '') {
      const [code, ...text] = err.split(': ');
      throw new DeepwellError(code as 'PEER_FAILED', `NCCL communicator (rank ${this.rank} of ${this.worldSize}): ${text.join(': ')}`);
    }
  }

  /** Ends the communicator at once, whatever it was doing (after a peer's failure). */
  abort(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#ops.ncclCommAbort(h);
  }

  /** Ends the communicator once its pending work is done. */
  destroy(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#ops.ncclCommDestroy(h);
  }
}

function dtypeCode(d: NcclDtype): number {
  return DTYPE_CODE[checkOneOf(d, DTYPES, 'the dtype of an NCCL collective')];
}
function opCode(op: NcclOp): number {
  return NCCL_OP_CODE[checkOneOf(op, OPS, 'the reduction of an NCCL collective')];
}
