// Ops of the 'nn' family; each op in its own file, re-exported here.
export * from './softmax.js';
export { layernormOp, layernormBackwardOp, layernorm, layernormBackward } from './layernorm.js';
export * from './add_layernorm.js';
export * from './rmsnorm.js';
export * from './embedding.js';
export * from './cross_entropy.js';
export * from './causal_mask.js';
