export { DeepwellError, describe, invalid } from './errors.js';
export type { DeepwellErrorCode, DeepwellErrorOptions } from './errors.js';
export { checkFunction, checkInteger, checkKeys, checkNumber, checkOneOf, checkShape, editDistance } from './check.js';
export type { KeyCheckOptions, NumberRange } from './check.js';
export {
  DTYPES,
  DTYPE_NAMES,
  bf16BitsToF32,
  byteSize,
  dtypeFromSafetensors,
  dtypeInfo,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  float16Unchecked,
  hostLength,
  packNibbles,
  unpackNibbles,
} from './dtype.js';
export type { DTypeInfo, DTypeName, HostArray } from './dtype.js';
export { checkRange, getBackend, hasBackend, listBackends, parseDevice, registerBackend, unregisterBackend } from './backend.js';
export type { Backend, Device, DeviceBuffer, MemoryStats } from './backend.js';
export { CpuBackend, CpuBuffer, cpuBackend } from './cpu-backend.js';
export { Tensor, keep, leakStats, scope } from './tensor.js';
export type { TensorOptions } from './tensor.js';
export { KernelRegistry, registry } from './registry.js';
export type { ExplainRow, Explanation, KernelCandidate, SummaryRow } from './registry.js';
