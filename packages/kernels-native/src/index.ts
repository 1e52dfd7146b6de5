export { PACKAGE_ROOT, loadNative, nativeLoadError, nativePath, tryLoadNative } from './loader.js';
export { fromNative } from './native.js';
export type { NativeAddon, NativeDeviceProperties, NativeMemoryStats, NativeStatus, NvmlStats } from './native.js';
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
export { findLibrary, findVendorLibraries, libraryCandidates, nvmlStats, sitePackages } from './vendor.js';
export type { VendorLibrary, VendorLibraryReport } from './vendor.js';
export { addU32, fillHash, smokeHash } from './smoke.js';
