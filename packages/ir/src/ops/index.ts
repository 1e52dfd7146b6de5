// Every op of the standard set. Importing this module defines them all (and registers their CPU
// references in core's kernel registry).
export * from './fill.js';
export * from './add.js';
export * from './sum_to.js';
export * from './broadcast_to.js';
export * from './reshape.js';
export * from './matmul.js';
export * from './matmul_bias.js';
export * from './matmul_bias_gelu.js';
export * from './matmul_bgrad.js';
export * from './set-tensor.js';
export * from './set-nn.js';
export * from './set-moe.js';
