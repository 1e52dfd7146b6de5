// Ops of the 'moe' family; each op in its own file, re-exported here.
export * from './topk.js';
export * from './gather_rows.js';
export * from './scatter_add_rows.js';
export * from './moe_plan.js';
export * from './one_hot.js';
export * from './moe_sort.js';
export { groupedMatmul, groupedMatmulOp } from './grouped_matmul.js';
export { groupedMatmulWgrad, groupedMatmulWgradOp } from './grouped_matmul_wgrad.js';
export { moePermute, moePermuteOp } from './moe_permute.js';
export { moeUnpermute, moeUnpermuteOp } from './moe_unpermute.js';
export { moeWeightGrad, moeWeightGradOp } from './moe_weight_grad.js';
export { moeRoute, moeRouteBackward, moeRouteBackwardOp, moeRouteOp } from './moe_route.js';
export { moeAuxLoss, moeAuxLossOp } from './moe_aux_loss.js';
export { groupedMatmulGelu, groupedMatmulGeluOp } from './grouped_matmul_gelu.js';
export { groupedMatmulDgelu, groupedMatmulDgeluOp } from './grouped_matmul_dgelu.js';
export { groupedMatmulSwiglu, groupedMatmulSwigluOp } from './grouped_matmul_swiglu.js';
