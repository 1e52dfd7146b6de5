// Ops of the 'moe' family; each op in its own file, re-exported here.
export * from './topk.js';
export * from './gather_rows.js';
export * from './scatter_add_rows.js';
export * from './moe_plan.js';
export * from './one_hot.js';
export * from './moe_sort.js';
export { groupedMatmul, groupedMatmulOp } from './grouped_matmul.js';
export { groupedMatmulWgrad, groupedMatmulWgradOp } from './grouped_matmul_wgrad.js';
