// The parameters of the fast attention kernels (flash_*.cuh), shared by every version and by the
// kernel lab (dev/cuda/attention/). Plain C++: no N-API here, so the lab builds them standalone.
//
//   Element (b, h, s, d) of q, k, v, out (and of dout, dq, dk, dv) sits at
//   b * stride.b + h * stride.h + s * stride.s + d: d contiguous, the rest any strides (contiguous
//   [B, heads, S, D], [B, S, heads, D], or q, k and v inside one packed QKV projection output).
//   lse (and the backward's delta) are f32 [B, H, Sq], contiguous.
//   Query head h reads key/value head h / (H / Hkv). Causal: key j is visible to query i when
//   j <= i + Sk - Sq (bottom right). A row that sees no key gets out 0 and lse -inf.
#pragma once
#include <cstdint>

namespace dw {
namespace attention {

struct Stride3 {
  int64_t b, h, s;
};

struct FlashFwdParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;
  Stride3 qs, ks, vs, os;
  int B, H, Hkv, Sq, Sk, D;
  bool causal;
  float scale;  // already resolved (never 0)
};

struct FlashBwdParams {
  const void* dout;
  const void* q;
  const void* k;
  const void* v;
  const void* out;
  const float* lse;
  void* dq;
  void* dk;
  void* dv;
  float* delta;  // workspace: f32 [B, H, Sq], written by the backward's first kernel
  Stride3 dos, qs, ks, vs, os, dqs, dks, dvs;
  int B, H, Hkv, Sq, Sk, D;
  bool causal;
  float scale;
};

}  // namespace attention
}  // namespace dw
