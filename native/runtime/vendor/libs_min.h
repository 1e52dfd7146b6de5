// Version entry points of the vendor libraries Deepwell loads at run time, written from their API
// references and checked against cublasLt.h (cuBLAS 13.1) and nccl.h (NCCL 2.28) on the GPU host.
// Using the libraries comes with the kernels that need them; here we only find them and read versions.
#pragma once
#include <cstddef>

typedef size_t (*dw_cublasLtGetVersion_t)(void);        // e.g. 130100 for 13.1.0
typedef int (*dw_ncclGetVersion_t)(int* version);      // ncclResult_t; e.g. 22805 for 2.28.5
