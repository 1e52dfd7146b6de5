// Ops of the 'basic' family (constants, broadcasting, reshapes, GEMMs and their fused epilogues);
// each op in its own file, re-exported here.
export * from './fill.js';
export * from './add.js';
export * from './sum_to.js';
export * from './broadcast_to.js';
export * from './reshape.js';
export * from './matmul.js';
export * from './matmul_bias.js';
export * from './matmul_bias_gelu.js';
export * from './matmul_bgrad.js';
export * from './matmul_dgelu.js';
