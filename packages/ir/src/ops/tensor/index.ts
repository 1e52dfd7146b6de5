// Ops of the 'tensor' family; each op in its own file, re-exported here.
export { mulOp, mul } from './mul.js';
export { scaleOp, scale } from './scale.js';
export { biasAddOp, biasAdd } from './bias_add.js';
export { geluOp, gelu, geluScalar } from './gelu.js';
export { geluBackwardOp, geluBackward } from './gelu_backward.js';
export { siluOp, silu } from './silu.js';
export { siluBackwardOp, siluBackward } from './silu_backward.js';
export { swigluOp, swiglu } from './swiglu.js';
export { transposeOp, transpose, inversePerm } from './transpose.js';
export { sliceOp, slice } from './slice.js';
export { sliceBackwardOp, sliceBackward } from './slice_backward.js';
export { concatOp, concat } from './concat.js';
export { sumOp, sum } from './sum.js';
export { meanOp, mean } from './mean.js';
export { maxOp, max } from './max.js';
export { maxBackwardOp, maxBackward } from './max_backward.js';
export { castOp, cast } from './cast.js';
export type { CastDType } from './cast.js';
