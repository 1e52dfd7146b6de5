// Importing this registers every CUDA candidate of the op set (they fit only where a GPU is). The
// calling convention (registerCuda, the typed entry points, DevArg) is @deepwell/kernels-native's.
import './tensor.js';
import './nn.js';
import './moe.js';
import './gemm.js';
import './grouped_gemm.js';
import './collective.js';

export { GEMM_LT_WORKSPACE } from './gemm.js';
