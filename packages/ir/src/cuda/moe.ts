/**
 * CUDA candidates of the 'moe' op family (native/ops/moe/), calling the typed entry points generated
 * from the ABI table (packages/kernels-native/abi/table.mjs); moe_plan takes integers only and so no
 * dtype code.
 *
 * Float tensors in one storage dtype (f32 / bf16 / f16), indices i32. The index-taking ops check
 * their indices on the device and then, unless the call says `checkIndices: false`, synchronise
 * through opsErrorCheck and throw INVALID_ARGUMENT for a bad one (see nn.ts). topk's and moe_plan's
 * integer outputs match the reference exactly (ties to the lower index; choices filled rank first,
 * then token order). moe_sort's too (a stable counting sort; its workspace holds the per-chunk
 * expert counts, sized by the native moeSortWorkspace).
 */
import type { KernelParams } from '../op.js';
import { numel } from '../types.js';
import { floatStorage, nativeEntries, registerCuda } from '@deepwell/kernels-native';
import { checkIndicesAfter, code, oneFloatStorage } from './nn.js';

const I32_MAX = 2 ** 31 - 1;
const MAX_EXPERTS = 8192;

const limit = (n: number, max: number, what: string): true | string => (n <= max ? true : `${what} ${n} is above ${max}`);
const both = (...checks: (true | string)[]): true | string => checks.find((c) => c !== true) ?? true;

registerCuda<KernelParams>({
  op: 'topk',
  name: 'topk_cuda',
  supports: (p) => both(oneFloatStorage(p), limit(p.inTypes[0]!.shape.at(-1)!, I32_MAX, 'a row length')),
  run: (call, ops) => {
    const shape = call.inTypes[0]!.shape;
    const E = shape.at(-1)!;
    const rows = numel(shape.slice(0, -1));
    const [values, indices] = call.outputs;
    ops.topk(call.stream, code(call.inTypes[0]!), rows, E, call.attrs.k as number, call.inputs[0]!, values!, indices!);
  },
});

registerCuda<KernelParams>({
  op: 'topk_backward',
  name: 'topk_backward_cuda',
  supports: (p: KernelParams) => both(oneFloatStorage(p), limit(p.attrs.size as number, I32_MAX, 'size'), limit(p.inTypes[0]!.shape.at(-1)!, I32_MAX, 'k')),
  run: (call, ops) => {
    const shape = call.inTypes[0]!.shape;
    const k = shape.at(-1)!;
    const rows = numel(shape.slice(0, -1));
    ops.topkBackward(call.stream, code(call.inTypes[0]!), rows, k, call.attrs.size as number, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'gather_rows',
  name: 'gather_rows_cuda',
  supports: (p) => both(oneFloatStorage(p), limit(p.inTypes[0]!.shape[1]!, I32_MAX, 'a row length')),
  run: (call, ops) => {
    const [R, D] = call.inTypes[0]!.shape as [number, number];
    const M = call.inTypes[1]!.shape[0]!;
    ops.gatherRows(call.stream, code(call.inTypes[0]!), M, R, D, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'scatter_add_rows',
  name: 'scatter_add_rows_cuda',
  supports: (p) => both(oneFloatStorage(p), limit(p.inTypes[0]!.shape[1]!, I32_MAX, 'a row length')),
  run: (call, ops) => {
    const [M, D] = call.inTypes[0]!.shape as [number, number];
    ops.scatterAddRows(call.stream, code(call.inTypes[0]!), M, call.attrs.rows as number, D, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'moe_plan',
  name: 'moe_plan_cuda',
  supports: (p) => {
    const [N, k] = p.inTypes[0]!.shape as [number, number];
    const E = p.attrs.numExperts as number;
    const C = p.attrs.capacity as number;
    return both(
      oneFloatStorage(p),
      limit(E, MAX_EXPERTS, 'numExperts (the per-expert counters live in shared memory)'),
      limit(N * k, I32_MAX, 'tokens x k'),
      limit(E * C, I32_MAX, 'numExperts x capacity'),
    );
  },
  run: (call, ops) => {
    const [N, k] = call.inTypes[0]!.shape as [number, number];
    const [dispatch, combine] = call.outputs;
    ops.moePlan(call.stream, N, k, call.attrs.numExperts as number, call.attrs.capacity as number, call.inputs[0]!, dispatch!, combine!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'one_hot',
  name: 'one_hot_cuda',
  supports: (p) => both(oneFloatStorage(p), limit(p.attrs.classes as number, I32_MAX, 'classes')),
  run: (call, ops) => {
    const P = numel(call.inTypes[0]!.shape);
    ops.oneHot(call.stream, code(call.outTypes[0]!), P, call.attrs.classes as number, call.inputs[0]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'moe_sort',
  name: 'moe_sort_cuda',
  needs: ['moeSort', 'moeSortWorkspace'],
  supports: (p) => {
    const [N, k] = p.inTypes[0]!.shape as [number, number];
    return both(limit(p.attrs.numExperts as number, MAX_EXPERTS, 'numExperts (the per-expert counters live in shared memory)'), limit(N * k, I32_MAX, 'tokens x k'));
  },
  workspace: (p) => {
    const [N, k] = p.inTypes[0]!.shape as [number, number];
    return nativeEntries().entries!.moeSortWorkspace(N, k, p.attrs.numExperts as number);
  },
  run: (call, ops) => {
    const [N, k] = call.inTypes[0]!.shape as [number, number];
    const [order, slot, offsets] = call.outputs;
    ops.moeSort(call.stream, N, k, call.attrs.numExperts as number, call.inputs[0]!, order!, slot!, offsets!, call.workspace);
    checkIndicesAfter(call, ops);
  },
});

// Dropless MoE's dispatch and combine (native/ops/moe/permute.cu): one warp per output row, 16-byte
// accesses where the rows allow; weights (optional) of any float dtype. The kernels check order and
// slot (from one moe_sort) and record a bad entry, thrown here through opsErrorCheck.
const routed = (p: KernelParams, what: string): true | string => {
  const [N, k] = p.inTypes[2]!.shape as [number, number];
  return limit(N * k, I32_MAX, `${what} tokens x k`);
};

registerCuda<KernelParams>({
  op: 'moe_permute',
  name: 'moe_permute_cuda',
  needs: ['moePermute'],
  supports: (p) => both(oneFloatStorage(p, [3]), routed(p, 'moe_permute')),
  run: (call, ops) => {
    const [N, k] = call.inTypes[2]!.shape as [number, number];
    const D = call.inTypes[0]!.shape[1]!;
    const w = call.inTypes[3];
    ops.moePermute(call.stream, code(call.inTypes[0]!), w ? code(w) : 0, N, k, D, call.inputs[0]!, call.inputs[1]!, call.inputs[2]!, call.inputs[3] ?? null, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'moe_unpermute',
  name: 'moe_unpermute_cuda',
  needs: ['moeUnpermute'],
  supports: (p) => both(oneFloatStorage(p, [3]), routed(p, 'moe_unpermute')),
  run: (call, ops) => {
    const [N, k] = call.inTypes[2]!.shape as [number, number];
    const D = call.inTypes[0]!.shape[1]!;
    const w = call.inTypes[3];
    ops.moeUnpermute(call.stream, code(call.inTypes[0]!), w ? code(w) : 0, N, k, D, call.inputs[0]!, call.inputs[1]!, call.inputs[2]!, call.inputs[3] ?? null, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'moe_weight_grad',
  name: 'moe_weight_grad_cuda',
  needs: ['moeWeightGrad'],
  supports: (p) => {
    const [N, k] = p.inTypes[3]!.shape as [number, number];
    return both(oneFloatStorage(p, [], [0]), limit(N * k, I32_MAX, 'moe_weight_grad tokens x k'));
  },
  run: (call, ops) => {
    const [N, k] = call.inTypes[3]!.shape as [number, number];
    const D = call.inTypes[0]!.shape[1]!;
    ops.moeWeightGrad(call.stream, code(call.inTypes[0]!), N, k, D, call.inputs[0]!, call.inputs[1]!, call.inputs[2]!, call.inputs[3]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

// The router (native/ops/moe/route.cu): softmax and top-k in one warp per token (FP32 whatever the
// logits' storage), their gradient likewise, and the load-balancing loss (a block per expert, the
// last block adding the products in expert order; its workspace from moeAuxLossWorkspace).
registerCuda<KernelParams>({
  op: 'moe_route',
  name: 'moe_route_cuda',
  needs: ['moeRoute'],
  supports: (p) => both(floatStorage(p), limit(p.inTypes[0]!.shape[1]!, MAX_EXPERTS, 'the experts')),
  run: (call, ops) => {
    const [N, E] = call.inTypes[0]!.shape as [number, number];
    const [probs, weights, chosen] = call.outputs;
    ops.moeRoute(call.stream, code(call.inTypes[0]!), N, E, call.attrs.k as number, call.inputs[0]!, probs!, weights!, chosen!);
  },
});

registerCuda<KernelParams>({
  op: 'moe_route_backward',
  name: 'moe_route_backward_cuda',
  needs: ['moeRouteBackward'],
  supports: (p) => limit(p.inTypes[0]!.shape[1]!, MAX_EXPERTS, 'the experts'),
  run: (call, ops) => {
    const [N, E] = call.inTypes[0]!.shape as [number, number];
    const k = call.inTypes[1]!.shape[1]!;
    ops.moeRouteBackward(call.stream, N, E, k, call.inputs[0]!, call.inputs[1]!, call.inputs[2]!, call.inputs[3] ?? null, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'moe_aux_loss',
  name: 'moe_aux_loss_cuda',
  needs: ['moeAuxLoss', 'moeAuxLossWorkspace'],
  supports: (p) => both(floatStorage(p), limit(p.inTypes[0]!.shape[1]!, MAX_EXPERTS, 'the experts'), limit(p.inTypes[1]!.shape[1]!, MAX_EXPERTS, 'k'), limit(numel(p.inTypes[1]!.shape), I32_MAX, 'tokens x k')),
  workspace: (p) => nativeEntries().entries!.moeAuxLossWorkspace(p.inTypes[0]!.shape[1]!),
  run: (call, ops) => {
    const [N, E] = call.inTypes[0]!.shape as [number, number];
    const k = call.inTypes[1]!.shape[1]!;
    const [loss, fractions] = call.outputs;
    ops.moeAuxLoss(call.stream, code(call.inTypes[0]!), N, E, k, call.inputs[0]!, call.inputs[1]!, loss!, fractions!, call.workspace);
    checkIndicesAfter(call, ops);
  },
});
