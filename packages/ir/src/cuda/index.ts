// Importing this registers every CUDA candidate of the op set (they fit only where a GPU is).
import './tensor.js';
import './nn.js';
import './moe.js';
import './gemm.js';

export { DTYPE_CODE, FLOAT_STORAGE, at, floatStorage, nativeOps, registerCuda } from './kernels.js';
export type { CudaCall, CudaKernel, DevArg, NativeOps } from './kernels.js';
