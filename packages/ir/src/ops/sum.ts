// The reduction helper moved with sum to ops/tensor/sum.ts; packages/ir/src/cuda/tensor.ts still
// imports it from here until the CUDA calling-convention rewrite updates that import.
export { reduction } from './tensor/sum.js';
