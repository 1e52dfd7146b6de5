/**
 * all_reduce on CUDA (ops/collective/all_reduce.ts): the node's tensors as one NCCL group of all-reduces
 * on the step's stream (kernels-native ncclAllReduceMany, native/comm/nccl.cpp), through the
 * communicator whose handle the node carries (attribute comm, from dataParallel). NCCL's kernels
 * are captured into the step's CUDA graph like any other launch. With no communicator (comm 0,
 * allowed only for a world of one) each output is a device copy of its input, or nothing where the
 * memory plan put it in place.
 */
import { NCCL_OP_CODE, dtypeCode as code, findLibrary, registerCuda } from '@deepwell/kernels-native';
import type { KernelParams } from '../op.js';
import { numel } from '../types.js';

const DTYPES = new Set(['f32', 'bf16', 'f16', 'i32']);

registerCuda<KernelParams>({
  op: 'all_reduce',
  name: 'all_reduce_nccl',
  needs: ['ncclAllReduceMany', 'copyDtoD'],
  supports: (p) => {
    const bad = p.inTypes.find((t) => !DTYPES.has(t.dtype));
    if (bad) return `reduces f32, bf16, f16 and i32, got ${bad.dtype}`;
    if (p.attrs.comm === 0) return p.attrs.worldSize === 1 ? true : `needs a communicator for a world of ${String(p.attrs.worldSize)}`;
    const lib = findLibrary('nccl');
    return lib.found ? true : `NCCL (libnccl.so.2) was not found (${lib.tried.at(-1)?.error ?? 'no candidates'}); install nvidia-nccl or set DEEPWELL_NCCL_PATH`;
  },
  run: (call, ops) => {
    if (call.attrs.comm === 0) {
      call.inputs.forEach((x, k) => {
        const y = call.outputs[k]!;
        if (x!.base !== y.base || x!.offset !== y.offset) ops.copyDtoD(y.base, y.offset, x!.base, x!.offset, x!.bytes, call.stream);
      });
      return;
    }
    const tensors = call.inputs.map((x, k) => ({ dtype: code(call.inTypes[k]!), n: numel(call.inTypes[k]!.shape), send: x!, recv: call.outputs[k]! }));
    ops.ncclAllReduceMany(call.attrs.comm as number, call.stream, NCCL_OP_CODE[call.attrs.op as 'sum' | 'avg'], call.attrs.worldSize as number, tensors);
  },
});
