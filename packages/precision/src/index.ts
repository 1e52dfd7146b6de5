export { ELEMENTS, E8M0_NAN, decodeE8m0, decodeElement, elementFormat, encodeE8m0, encodeElement, encodeElements } from './elements.js';
export type { ElementFormat, ElementName, EncodeOptions } from './elements.js';
export { dequantizeMx, dequantizeNvfp4, mxExponent, quantizeMx, quantizeNvfp4 } from './blocks.js';
export type { MxBlocks, Nvfp4Blocks, ScaleMode } from './blocks.js';
export { FORMATS, dequantize, quantize } from './quantize.js';
export type { Format, QuantizeOptions, Quantized } from './quantize.js';
export { fakeQuantOp } from './ops/fake_quant.js';
export { PrecisionPolicy, RECIPES, support } from './policy.js';
export type { LayerDecision, PolicyOptions, PolicyRule, Recipe } from './policy.js';
