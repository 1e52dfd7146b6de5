export { PACKAGE_ROOT, loadNative, nativeLoadError, nativePath, tryLoadNative } from './loader.js';
export { fromNative } from './native.js';
export type { NativeAddon } from './native.js';
export type { DevArg, GraphNodeKinds, NativeDeviceProperties, NativeLibraryResult, NativeMemoryStats, NativeStatus, NvmlStats } from './abi-types.js';
// The native ABI, generated from abi/table.mjs: the codes, the typed entry points, the table.
export { DEQUANT_FLAGS, DTYPE_CODE, EPILOGUE_CODE, FORMAT_CODE, NCCL_OP_CODE, GROUPED_EPILOGUE_CODE, FP8_CODE, QUANT_FLAGS, SCALE_MODE_CODE, SCALING_CODE, ENTRY_POINTS, bindEntries } from './abi.gen.js';
export type { EntryArg, NativeEntries } from './abi.gen.js';
// Registering CUDA kernels for an op (the calling convention every ops package uses).
export { FLOAT_STORAGE, dtypeCode, floatStorage, nativeEntries, registerCuda } from './kernels.js';
export type { CudaCall, CudaKernel, CudaParams, TensorType } from './kernels.js';
export {
  CudaBackend,
  CudaBuffer,
  Event,
  Graph,
  PinnedBuffer,
  Stream,
  cudaBackend,
  cudaStatus,
  deviceProperties,
  isCudaAvailable,
  memGetInfo,
  registerCudaBackends,
} from './cuda.js';
export type { CudaMemoryStats, CudaStatus } from './cuda.js';
export { Communicator, NCCL_UNIQUE_ID_BYTES, ncclUniqueId } from './comm.js';
export type { CommunicatorOptions, NcclDtype, NcclOp } from './comm.js';
export { findLibrary, findVendorLibraries, libraryCandidates, nvmlStats, sitePackages } from './vendor.js';
export type { VendorLibrary, VendorLibraryReport } from './vendor.js';
export { addU32, countHashMismatches, fillHash, fillHashHost, smokeHash } from './smoke.js';
