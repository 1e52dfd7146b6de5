// The k-grouped FP8 quantizer of the expert weight gradient (quantization family; precision's
// quantize_kgrouped, whose TypeScript reference this matches bit for bit):
//
//   quantizeKgrouped(stream, dtype, R, C, E, P, x, offsets, codes, scales)
//       x [R, C] (f32, bf16 or f16), offsets i32 [E + 1] on the device (0 first, never decreasing,
//       R last). Expert e's rows are transposed into codes e4m3 [C, P] from position 128·q_e, q_e =
//       Σ_{e' < e} ceil(rows_e' / 128), padded with zero codes to a whole number of 128-token blocks;
//       each (channel, block) has one scale, scales f32 [P / 128, C]. P = 128 · (ceil(R / 128) + E),
//       the most the padded blocks can take; blocks past the last expert's are all-zero blocks.
//
// So the weight gradient's GEMM (gemm/grouped_fp8_wgrad_sm90.cuh) reads, for each expert, operands
// whose reduced index (the tokens) is contiguous, in blocks that never straddle two experts, with
// a scale per channel per block (DeepSeek-V3's 128 × 1 blocks for the backward's activations).
// A block: amax = the largest finite |v| of its 128 values (padding is 0), m = f32(448 / amax) (1
// for amax 0; FLT_MAX where the division overflows), codes of f32(v · m) (nearest even,
// saturating; NaN keeps its sign), scale f32(1 / m): formats.cuh's fp8Scale and encode, as the
// blockwise quantize.
//
// One CTA of 256 threads per (128-token block, 64 channels): it finds its expert by a block-wide
// scan of the per-expert block counts (grouped_offsets.cuh's rowTileOf), loads the 128 × 64 tile
// (16-byte loads along the channels) into shared memory as f32, takes each channel's amax with 4
// threads of 32 tokens, and writes each channel's 128 codes as one contiguous run of the transposed
// output. Bad offsets are recorded in the moe family's error word (op quantize_kgrouped) and nothing
// is written.
#include "gemm/grouped_offsets.cuh"
#include "quant/formats.cuh"
#include "quant/quant.h"

namespace dw::quant {
namespace {

constexpr int kKgThreads = 256, kKgTokens = 128, kKgChannels = 64;

template <typename T>
__global__ void __launch_bounds__(kKgThreads)
    quantizeKgroupedK(const T* x, const int* offsets, uint8_t* codes, float* scales, int R, int C, int E, long long P, bool vec, ErrWord* err) {
  __shared__ float tile[kKgTokens][kKgChannels + 1];
  __shared__ float part[4][kKgChannels];
  if (!offsetsValid(offsets, E, R, err, kOpQuantizeKgrouped)) return;
  const int tb = static_cast<int>(blockIdx.x), c0 = static_cast<int>(blockIdx.y) * kKgChannels;
  // This block's expert and its first row; expert -1 for the all-zero blocks past the last expert's.
  const RowTile at = rowTileOf<kKgTokens, kKgThreads>(offsets, E, tb);
  const int rows = at.e < 0 ? 0 : min(kKgTokens, at.rowEnd - at.row0);
  // Load: 8 channels a thread per row, rows t / 8 + 32·m.
  {
    const int cc = (threadIdx.x % 8) * 8;
    for (int r = threadIdx.x / 8; r < kKgTokens; r += kKgThreads / 8) {
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = 0.f;
      if (r < rows) {
        const T* src = x + static_cast<long long>(at.row0 + r) * C + c0 + cc;
        if (vec && c0 + cc + 8 <= C) {
          Chunk<T> ch;
#pragma unroll
          for (int k = 0; k < Chunk<T>::kVec; ++k) ch.raw[k] = __ldg(reinterpret_cast<const uint4*>(src) + k);
#pragma unroll
          for (int i = 0; i < 8; ++i) v[i] = ch.at(i);
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i)
            if (c0 + cc + i < C) v[i] = toF(src[i]);
        }
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) tile[r][cc + i] = v[i];
    }
  }
  __syncthreads();
  // Amax: channel t % 64, tokens 32·(t / 64) ..; finite values only.
  const int ch = threadIdx.x % kKgChannels, quarter = threadIdx.x / kKgChannels;
  {
    float m = 0.f;
    for (int i = 0; i < 32; ++i) {
      const float v = tile[quarter * 32 + i][ch];
      if (isfinite(v)) m = fmaxf(m, fabsf(v));
    }
    part[quarter][ch] = m;
  }
  __syncthreads();
  const float amax = fmaxf(fmaxf(part[0][ch], part[1][ch]), fmaxf(part[2][ch], part[3][ch]));
  const BlockScale s = fp8Scale<kBlk1x128>(amax);
  const int c = c0 + ch;
  if (c >= C) return;
  if (quarter == 0) scales[static_cast<long long>(tb) * C + c] = s.scaleF;
  // Codes: this thread's 32 tokens of channel c, as two 16-byte stores.
  uint32_t w[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    uint32_t word = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) word |= static_cast<uint32_t>(encode<kBlk1x128>(tile[quarter * 32 + 4 * i + b][ch], s)) << (8 * b);
    w[i] = word;
  }
  uint4* dst = reinterpret_cast<uint4*>(codes + static_cast<long long>(c) * P + static_cast<long long>(tb) * kKgTokens + quarter * 32);
  dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
  dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
}

}  // namespace

Napi::Value QuantizeKgrouped(const Napi::CallbackInfo& info) {
  const abi::QuantizeKgroupedArgs a = abi::readQuantizeKgrouped(info);
  Napi::Env env = info.Env();
  const uint64_t R = a.R, C = a.C, E = a.E, P = a.P;
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one expert for quantizeKgrouped but received 0");
  if (C < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one channel for quantizeKgrouped but received 0");
  const uint64_t want = 128 * ((R + 127) / 128 + E);
  if (P != want) fail(env, "INVALID_ARGUMENT", "Expected P = 128 · (ceil(R / 128) + E) = " + std::to_string(want) + " for quantizeKgrouped but received " + std::to_string(P));
  const int* offsets = a.offsets.ptr<int>(env, E + 1);
  uint8_t* codes = a.codes.ptr<uint8_t>(env, mulSize(env, C, P, "quantizeKgrouped codes"));
  float* scales = a.scales.ptr<float>(env, mulSize(env, P / 128, C, "quantizeKgrouped scales"));
  // The codes are stored 16 bytes at a time (P is a multiple of 128).
  if (reinterpret_cast<uintptr_t>(codes) % 16 != 0) fail(env, "INVALID_ARGUMENT", "Expected 16-byte aligned codes for quantizeKgrouped");
  const uint64_t chunks = (C + kKgChannels - 1) / kKgChannels;
  if (chunks > 65535) fail(env, "INVALID_ARGUMENT", "Expected C at most " + std::to_string(65535 * kKgChannels) + " for quantizeKgrouped but received " + std::to_string(C));
  ErrWord* err = opsErrorWord(env, kErrMoe);
  const dim3 grid(static_cast<unsigned>(P / 128), static_cast<unsigned>(chunks));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, mulSize(env, R, C, "quantizeKgrouped x"));
    // 16-byte loads where every row starts 16-byte aligned.
    const bool vec = C % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    quantizeKgroupedK<T><<<grid, kKgThreads, 0, a.stream>>>(x, offsets, codes, scales, static_cast<int>(R), static_cast<int>(C), static_cast<int>(E), static_cast<long long>(P), vec, err);
  });
  checkLaunch(env, "quantizeKgrouped");
  return env.Undefined();
}

}  // namespace dw::quant
