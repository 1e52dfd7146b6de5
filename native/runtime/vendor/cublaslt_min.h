// The cuBLASLt declarations Deepwell uses, written from NVIDIA's cuBLASLt API reference; enum values
// are checked against cublasLt.h and cublas_api.h of cuBLAS 13.1 on the GPU host by
// scripts/gpu-check.sh (its output is in docs/gpu-runs/). cuBLASLt is dlopen'ed at run time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

typedef int dw_cublasStatus_t;  // CUBLAS_STATUS_SUCCESS == 0
typedef struct dw_cublasLtContext* dw_cublasLtHandle_t;
typedef struct dw_cublasLtMatmulDescOpaque* dw_cublasLtMatmulDesc_t;
typedef struct dw_cublasLtMatrixLayoutOpaque* dw_cublasLtMatrixLayout_t;
typedef struct dw_cublasLtMatmulPreferenceOpaque* dw_cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } dw_cublasLtMatmulAlgo_t;
typedef struct {
  dw_cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  dw_cublasStatus_t state;
  float wavesCount;
  int reserved[4];
} dw_cublasLtMatmulHeuristicResult_t;

// cudaDataType (library_types.h) and cublasComputeType_t (cublas_api.h). UE4M3 (NVFP4's block
// scales) is E4M3's code, read unsigned; UE8M0 and E2M1 are the block-scaled modes' (Blackwell).
// The last three are in the H200's dump of library_types.h (docs/gpu-runs/2026-12-03-flash/
// run6-stats-ab/cublaslt-fp8-enums.txt), as are VEC16_UE4M3 and VEC32_UE8M0 below.
enum {
  DW_CUDA_R_32F = 0,
  DW_CUDA_R_16F = 2,
  DW_CUDA_R_16BF = 14,
  DW_CUDA_R_8F_E4M3 = 28,
  DW_CUDA_R_8F_UE4M3 = 28,
  DW_CUDA_R_8F_E5M2 = 29,
  DW_CUDA_R_8F_UE8M0 = 30,
  DW_CUDA_R_4F_E2M1 = 33,
};
enum { DW_CUBLAS_COMPUTE_32F = 68, DW_CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum { DW_CUBLAS_OP_N = 0, DW_CUBLAS_OP_T = 1 };
// cublasLtMatmulDescAttributes_t
enum {
  DW_CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,  // cublasLtPointerMode_t (int32)
  DW_CUBLASLT_MATMUL_DESC_TRANSA = 3,
  DW_CUBLASLT_MATMUL_DESC_TRANSB = 4,
  DW_CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
  DW_CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
  DW_CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE = 10,
  DW_CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,
  DW_CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,
  DW_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER = 17,
  DW_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER = 18,
  DW_CUBLASLT_MATMUL_DESC_FAST_ACCUM = 25,  // int8_t
  DW_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,
  DW_CUBLASLT_MATMUL_DESC_A_SCALE_MODE = 31,
  DW_CUBLASLT_MATMUL_DESC_B_SCALE_MODE = 32,
};
// cublasLtPointerMode_t: where alpha and beta live (DEVICE: both device pointers). POINTER_MODE
// and these two are from NVIDIA's nvmath-python bindings of cublasLt.h (MatmulDescAttribute,
// PointerMode), not yet from the H200's dump: scripts/gpu-check.sh now prints them.
enum { DW_CUBLASLT_POINTER_MODE_HOST = 0, DW_CUBLASLT_POINTER_MODE_DEVICE = 1 };
// cublasLtMatmulMatrixScale_t (the scale modes of A_SCALE_MODE / B_SCALE_MODE)
enum {
  DW_CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F = 0,
  DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3 = 1,  // an E4M3 code per 16 of K, 128 × 4 tiles (NVFP4)
  DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0 = 2,  // an E8M0 code per 32 of K, 128 × 4 tiles (MXFP8)
  DW_CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F = 3,
  DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F = 4,
  DW_CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F = 5,
};
// cublasLtEpilogue_t
enum {
  DW_CUBLASLT_EPILOGUE_DEFAULT = 1,
  DW_CUBLASLT_EPILOGUE_BIAS = 4,
  DW_CUBLASLT_EPILOGUE_GELU = 32,
  DW_CUBLASLT_EPILOGUE_GELU_BIAS = 36,
  DW_CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 164,
  DW_CUBLASLT_EPILOGUE_DGELU = 192,
  DW_CUBLASLT_EPILOGUE_BGRADB = 512,
};
// cublasLtReductionScheme_t (split-K: where partial sums are kept)
enum { DW_CUBLASLT_REDUCTION_SCHEME_INPLACE = 1, DW_CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2, DW_CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE = 4 };
// cublasLtMatrixLayoutAttribute_t
enum { DW_CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5, DW_CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6 };
// cublasLtMatmulPreferenceAttributes_t
enum {
  DW_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
  DW_CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3,
  DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
  DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
  DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
  DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

typedef dw_cublasStatus_t (*dw_cublasLtCreate_t)(dw_cublasLtHandle_t*);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulDescCreate_t)(dw_cublasLtMatmulDesc_t*, int computeType, int scaleType);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulDescDestroy_t)(dw_cublasLtMatmulDesc_t);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulDescSetAttribute_t)(dw_cublasLtMatmulDesc_t, int attr, const void* buf, size_t size);
typedef dw_cublasStatus_t (*dw_cublasLtMatrixLayoutCreate_t)(dw_cublasLtMatrixLayout_t*, int type, uint64_t rows, uint64_t cols, int64_t ld);
typedef dw_cublasStatus_t (*dw_cublasLtMatrixLayoutDestroy_t)(dw_cublasLtMatrixLayout_t);
typedef dw_cublasStatus_t (*dw_cublasLtMatrixLayoutSetAttribute_t)(dw_cublasLtMatrixLayout_t, int attr, const void* buf, size_t size);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulPreferenceCreate_t)(dw_cublasLtMatmulPreference_t*);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulPreferenceDestroy_t)(dw_cublasLtMatmulPreference_t);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulPreferenceSetAttribute_t)(dw_cublasLtMatmulPreference_t, int attr, const void* buf, size_t size);
typedef dw_cublasStatus_t (*dw_cublasLtMatmulAlgoGetHeuristic_t)(dw_cublasLtHandle_t, dw_cublasLtMatmulDesc_t, dw_cublasLtMatrixLayout_t Adesc,
                                                                  dw_cublasLtMatrixLayout_t Bdesc, dw_cublasLtMatrixLayout_t Cdesc,
                                                                  dw_cublasLtMatrixLayout_t Ddesc, dw_cublasLtMatmulPreference_t pref,
                                                                  int requested, dw_cublasLtMatmulHeuristicResult_t* results, int* returned);
typedef dw_cublasStatus_t (*dw_cublasLtMatmul_t)(dw_cublasLtHandle_t, dw_cublasLtMatmulDesc_t, const void* alpha, const void* A,
                                                 dw_cublasLtMatrixLayout_t Adesc, const void* B, dw_cublasLtMatrixLayout_t Bdesc,
                                                 const void* beta, const void* C, dw_cublasLtMatrixLayout_t Cdesc, void* D,
                                                 dw_cublasLtMatrixLayout_t Ddesc, const dw_cublasLtMatmulAlgo_t* algo, void* workspace,
                                                 size_t workspaceSize, cudaStream_t stream);
