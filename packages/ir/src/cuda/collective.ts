/**
 * The collectives on CUDA (ops/collective/): all_reduce as one NCCL group of all-reduces
 * (kernels-native ncclAllReduceMany), reduce_scatter and all_gather (ZeRO-1's) as NCCL's
 * reduce-scatter and all-gather, all on the step's stream (native/comm/nccl.cpp), through the
 * communicator whose handle the node carries (attribute comm, from dataParallel). NCCL's kernels
 * are captured into the step's CUDA graph like any other launch. With no communicator (comm 0,
 * allowed only for a world of one) each output is a device copy of its input, or nothing where the
 * memory plan put it in place.
 */
import { NCCL_OP_CODE, dtypeCode as code, findLibrary, registerCuda, type DevArg } from '@deepwell/kernels-native';
import type { KernelParams } from '../op.js';
import { numel } from '../types.js';

const DTYPES = new Set(['f32', 'bf16', 'f16', 'i32']);

/** Whether NCCL can take a collective node: its dtypes, a communicator for a world of several, the library found. */
function supportsCollective(p: KernelParams): true | string {
  const bad = p.inTypes.find((t) => !DTYPES.has(t.dtype));
  if (bad) return `moves f32, bf16, f16 and i32, got ${bad.dtype}`;
  if (p.attrs.comm === 0) return p.attrs.worldSize === 1 ? true : `needs a communicator for a world of ${String(p.attrs.worldSize)}`;
  const lib = findLibrary('nccl');
  return lib.found ? true : `NCCL (libnccl.so.2) was not found (${lib.tried.at(-1)?.error ?? 'no candidates'}); install nvidia-nccl or set DEEPWELL_NCCL_PATH`;
}

/** A world of one without a communicator: y = x as a device copy (none where they share storage). */
function copyThrough(x: DevArg & { bytes: number }, y: DevArg, stream: number, copy: (dst: number, dstOff: number, src: number, srcOff: number, bytes: number, stream: number) => void): void {
  if (x.base !== y.base || x.offset !== y.offset) copy(y.base, y.offset, x.base, x.offset, x.bytes, stream);
}

registerCuda<KernelParams>({
  op: 'all_reduce',
  name: 'all_reduce_nccl',
  needs: ['ncclAllReduceMany', 'copyDtoD'],
  supports: supportsCollective,
  run: (call, ops) => {
    if (call.attrs.comm === 0) {
      call.inputs.forEach((x, k) => copyThrough(x!, call.outputs[k]!, call.stream, ops.copyDtoD));
      return;
    }
    const tensors = call.inputs.map((x, k) => ({ dtype: code(call.inTypes[k]!), n: numel(call.inTypes[k]!.shape), send: x!, recv: call.outputs[k]! }));
    ops.ncclAllReduceMany(call.attrs.comm as number, call.stream, NCCL_OP_CODE[call.attrs.op as 'sum' | 'avg'], call.attrs.worldSize as number, tensors);
  },
});

registerCuda<KernelParams>({
  op: 'reduce_scatter',
  name: 'reduce_scatter_nccl',
  needs: ['ncclReduceScatter', 'copyDtoD'],
  supports: supportsCollective,
  run: (call, ops) => {
    const [x, y] = [call.inputs[0]!, call.outputs[0]!];
    if (call.attrs.comm === 0) return copyThrough(x, y, call.stream, ops.copyDtoD);
    ops.ncclReduceScatter(call.attrs.comm as number, call.stream, code(call.inTypes[0]!), NCCL_OP_CODE[call.attrs.op as 'sum' | 'avg'], numel(call.outTypes[0]!.shape), x, y);
  },
});

registerCuda<KernelParams>({
  op: 'all_gather',
  name: 'all_gather_nccl',
  needs: ['ncclAllGather', 'copyDtoD'],
  supports: supportsCollective,
  run: (call, ops) => {
    const [x, y] = [call.inputs[0]!, call.outputs[0]!];
    if (call.attrs.comm === 0) return copyThrough(x, y, call.stream, ops.copyDtoD);
    ops.ncclAllGather(call.attrs.comm as number, call.stream, code(call.inTypes[0]!), numel(call.inTypes[0]!.shape), x, y);
  },
});
