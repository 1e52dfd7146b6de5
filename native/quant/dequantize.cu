// Dequantize (quantization family; see quant.cpp).
//
//   dequantize(stream, fmt, outDtype, R, C, flags, data, scales, globalScale, out)
//       The stored [R, C] matrix's values (C divisible by 8): out [R, C], or [C, R] with flags & 1
//       (the transpose, i.e. a columnwise result's original layout); flags & 4 (kGemm): the
//       scales in the layout the format's GEMM reads, as quantize writes it (quantize.cu): MX and
//       NVFP4 in 128 x 4 tiles, fp8-block1x128 f32 [C / 128, R], fp8-block128x128 f32
//       [R / 128, L4] (L = C / 128 rounded up to a multiple of 4); not for tensorwise FP8.
#include "quant/quant.h"

#include "quant/formats.cuh"

#include <string>

namespace dw::quant {
namespace {

// dequantize's flags (the ABI table's): the stored matrix is the transpose of the result (a
// columnwise part); scales in the GEMM's layout of the format.
constexpr int kTranspose = abi::dequant_flags::transpose;
constexpr int kGemm = abi::dequant_flags::gemm;
static_assert(kGemm == kGemmLayout, "one bit means the GEMM layout in both entries (checkGemmLayout)");

struct DArgs {
  const uint8_t* data;
  const uint8_t* scales;
  const float* globalScale;
  void* out;
  uint64_t R, C;
  int transpose, gemm;
};

template <int F>
__device__ __forceinline__ float scaleValue(const DArgs& a, uint64_t r, uint64_t c) {
  constexpr int B = blockOf(F);
  if constexpr (isTensorwise(F)) return *a.globalScale;
  else if constexpr (F == kBlk1x128) return reinterpret_cast<const float*>(a.scales)[blockFp8Index<F>(r, c / 128, a.R, a.C / 128, a.gemm)];
  else if constexpr (F == kBlk128x128) return reinterpret_cast<const float*>(a.scales)[blockFp8Index<F>(r / 128, c / 128, (a.R + 127) / 128, (a.C + 127) / 128, a.gemm)];
  else {
    const uint64_t n = a.C / B;
    const uint32_t code = a.scales[a.gemm ? tiledIndex(r, c / B, n) : r * n + c / B];
    if constexpr (isMx(F)) return code == 0xff ? __uint_as_float(0x7fffffff) : pow2(static_cast<int>(code) - 127);
    else return decE4M3(code);
  }
}

// One thread per 8 consecutive stored elements (one block's scale: blocks are >= 16 long), codes
// read as one 8- or 4-byte word; the values go out as one vector, or down a column (transpose).
template <typename T, int F>
__global__ void dequantizeK(DArgs a) {
  const uint64_t chunksPerRow = a.C / 8, n = a.R * chunksPerRow, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += stride) {
    const uint64_t r = t / chunksPerRow, c = (t % chunksPerRow) * 8, k = r * a.C + c;
    uint32_t codes[8];
    if constexpr (isFp4(F)) {
      const uint32_t w = *reinterpret_cast<const uint32_t*>(a.data + k / 2);
      for (int i = 0; i < 8; ++i) codes[i] = (w >> (4 * i)) & 15;
    } else {
      const uint2 w = *reinterpret_cast<const uint2*>(a.data + k);
      for (int i = 0; i < 8; ++i) codes[i] = ((i < 4 ? w.x : w.y) >> (8 * (i % 4))) & 255;
    }
    const float sc = scaleValue<F>(a, r, c);
    T out[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float v = decElem<F>(codes[i]) * sc;  // exact product, rounded once
      if constexpr (F == kNvfp4) v = __fmul_rn(v, *a.globalScale);
      out[i] = fromF<T>(v);
    }
    if (!a.transpose) {
#pragma unroll
      for (int k2 = 0; k2 < static_cast<int>(sizeof(T)) / 2; ++k2) reinterpret_cast<uint4*>(static_cast<T*>(a.out) + k)[k2] = reinterpret_cast<const uint4*>(out)[k2];
    } else {
      for (int i = 0; i < 8; ++i) static_cast<T*>(a.out)[(c + i) * a.R + r] = out[i];
    }
  }
}

}  // namespace

Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  const abi::DequantizeArgs a = abi::readDequantize(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int f = a.format;
  const int dtype = a.outDtype;
  const uint64_t R = a.R, C = a.C;
  const int flags = static_cast<int>(a.flags);
  const bool gemm = flags & kGemm;
  checkGemmLayout(env, f, flags, "dequantize");
  if (blockOf(f) && C % blockOf(f) != 0)
    fail(env, "SHAPE_MISMATCH", "Expected a stored row length divisible by " + std::to_string(blockOf(f)) + " for " + fmtName(f) + " but received " + std::to_string(C));
  if (f == kBlk128x128 && R % 128 != 0) fail(env, "SHAPE_MISMATCH", "Expected both dimensions divisible by 128 for fp8-block128x128 but received " + std::to_string(R) + " x " + std::to_string(C));
  if (C % 8 != 0) fail(env, "SHAPE_MISMATCH", "Expected a stored row length divisible by 8 for dequantize but received " + std::to_string(C));
  const bool global = isTensorwise(f) || f == kNvfp4;
  DArgs d{};
  d.R = R, d.C = C, d.transpose = flags & kTranspose, d.gemm = gemm;
  d.data = a.data.ptr<const uint8_t>(env, codeBytes(f, R, C));
  const uint64_t sb = scaleBytes(f, R, C, gemm);
  d.scales = sb ? a.scales.ptr<const uint8_t>(env, sb) : a.scales.optPtr<const uint8_t>(env, 0);
  d.globalScale = global ? a.globalScale.ptr<const float>(env, 1) : a.globalScale.optPtr<const float>(env, 1);
  d.out = a.out.ptr<void>(env, R * C, dtypeBytes(dtype));
  if (reinterpret_cast<uintptr_t>(d.out) % 16 != 0 || reinterpret_cast<uintptr_t>(d.data) % 8 != 0)
    fail(env, "INVALID_ARGUMENT", "Expected dequantize's out aligned to 16 bytes and data to 8");
  if (R * C == 0) return env.Undefined();
  dispatchFormat(env, f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    DW_DISPATCH_FLOAT(env, dtype, T, dequantizeK<T, F><<<blocksFor(R * C / 8), 256, 0, s>>>(d));
  });
  checkLaunch(env, "dequantize");
  return env.Undefined();
}

}  // namespace dw::quant
