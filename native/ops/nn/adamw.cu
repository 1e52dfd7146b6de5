// AdamW, one tensor or many (nn family; see nn.cpp).
//
//   adamw(stream, gradDtype, lrDtype, stepDtype, n, beta1, beta2, eps, weightDecay,
//         param, grad, m, v, lr, step, param2, m2, v2, gradScale)
//       param, m, v and the outputs are f32; grad any float storage; lr and step one element each,
//       read on the device (so graph replays see new values). Each output may be the very same
//       range as any input (in place) but must not otherwise overlap one. gradScale (optional,
//       f32[1], read on the device): the gradient is multiplied by it first (g = fp32(grad * s),
//       the clipping factor); without it s = 1, which changes no bit.
//   adamwMulti(stream, gradDtype, lrDtype, stepDtype, count, beta1, beta2, eps, weightDecay, lr, step,
//              gradScale, then per tensor: n, param, grad, m, v, param2, m2, v2)
//       adamw over `count` tensors (one grad dtype, one gradScale) in a few launches (multi-tensor
//       apply).
//
// A step count < 1 skips the whole update and is recorded in the family's error word.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>
#include <vector>

namespace dw::nn {
namespace {

// One AdamW step's constants, from lr and step read on the device (so graph replays see new values).
struct AdamwMath {
  float lr, ic1, ic2, fb1, fb2, ob1, ob2, decay, eps, gs;

  // False (and the step recorded in the error word by block 0) when the step count is < 1.
  __device__ __forceinline__ bool setup(const void* lrP, int lrCode, const void* stepP, int stepCode, const float* scaleP, double b1, double b2, float epsIn,
                                        float wd, ErrWord* err) {
    lr = loadScalar(lrP, lrCode);
    gs = scaleP ? *scaleP : 1.f;
    const float t = loadScalar(stepP, stepCode);
    if (!(t >= 1.f)) {
      if (blockIdx.x == 0 && threadIdx.x == 0) raiseErr(err, kOpAdamw, 0, t, 1);
      return false;
    }
    ic1 = static_cast<float>(1.0 / (1.0 - pow(b1, static_cast<double>(t))));
    ic2 = static_cast<float>(1.0 / (1.0 - pow(b2, static_cast<double>(t))));
    fb1 = static_cast<float>(b1);
    fb2 = static_cast<float>(b2);
    ob1 = static_cast<float>(1.0 - b1);
    ob2 = static_cast<float>(1.0 - b2);
    decay = 1.f - lr * wd;
    eps = epsIn;
    return true;
  }

  __device__ __forceinline__ void operator()(float pv, float gIn, float mv, float vv, float& po, float& mo, float& vo) const {
    const float gv = __fmul_rn(gIn, gs);  // rounded on its own, as mul(grad, scale) stored it
    mo = fb1 * mv + ob1 * gv;
    vo = fb2 * vv + ob2 * gv * gv;
    po = pv * decay - (lr * (mo * ic1)) / (sqrtf(vo * ic2) + eps);
  }
};

// Elements [begin, end) of one tensor, threads `first`, `first + step`, ...: float4 (and 4 grad
// values) at a time for the part from begin that is a multiple of 4 long when VEC (begin is a
// multiple of 4 and the pointers 16-byte aligned), one at a time for the rest.
// Every input element is read before the same element of any output is written, by the same thread,
// so outputs may be the inputs themselves (no __restrict__ here on purpose).
template <typename G, bool VEC>
__device__ __forceinline__ void adamwRange(const AdamwMath& am, const float* p, const G* g, const float* m, const float* v, float* p2, float* m2, float* v2,
                                           int64_t begin, int64_t end, int64_t first, int64_t step) {
  int64_t done = begin;
  if constexpr (VEC) {
    const int64_t c0 = begin / 4, c1 = c0 + (end - begin) / 4;
    for (int64_t c = c0 + first; c < c1; c += step) {
      const float4 pv = reinterpret_cast<const float4*>(p)[c];
      const float4 mv = reinterpret_cast<const float4*>(m)[c];
      const float4 vv = reinterpret_cast<const float4*>(v)[c];
      float gv[4];
      loadF<G, 4>(g + c * 4, gv);
      float4 po, mo, vo;
      am(pv.x, gv[0], mv.x, vv.x, po.x, mo.x, vo.x);
      am(pv.y, gv[1], mv.y, vv.y, po.y, mo.y, vo.y);
      am(pv.z, gv[2], mv.z, vv.z, po.z, mo.z, vo.z);
      am(pv.w, gv[3], mv.w, vv.w, po.w, mo.w, vo.w);
      reinterpret_cast<float4*>(p2)[c] = po;
      reinterpret_cast<float4*>(m2)[c] = mo;
      reinterpret_cast<float4*>(v2)[c] = vo;
    }
    done = c1 * 4;
  }
  for (int64_t i = done + first; i < end; i += step) {
    float po, mo, vo;
    am(p[i], toF(g[i]), m[i], v[i], po, mo, vo);
    p2[i] = po;
    m2[i] = mo;
    v2[i] = vo;
  }
}

template <typename G, bool VEC>
__global__ void __launch_bounds__(256)
    adamwK(const float* p, const G* g, const float* m, const float* v, float* p2, float* m2, float* v2, int64_t n, const void* lrP, int lrCode,
           const void* stepP, int stepCode, const float* scaleP, double b1, double b2, float eps, float wd, ErrWord* err) {
  AdamwMath am;
  if (!am.setup(lrP, lrCode, stepP, stepCode, scaleP, b1, b2, eps, wd, err)) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  adamwRange<G, VEC>(am, p, g, m, v, p2, m2, v2, 0, n, tid, stride);
}

// Multi-tensor AdamW: up to kAdamwBatch tensors per launch, passed by value as the kernel's
// parameters (so a captured graph holds them). Each block updates one chunk of kAdamwChunk elements
// of one tensor; start[k] is the first block of tensor k (a prefix sum).
constexpr int kAdamwBatch = 32;
constexpr int64_t kAdamwChunk = 8192;
// One tensor's AdamW operands.
struct AdamwOperands {
  const float* p;
  const void* g;
  const float* m;
  const float* v;
  float* p2;
  float* m2;
  float* v2;
};
struct AdamwTensor {
  AdamwOperands a;
  int64_t n;
};
struct AdamwBatch {
  AdamwTensor t[kAdamwBatch];
  int start[kAdamwBatch + 1];
  int vec[kAdamwBatch];
  int count;
};
static_assert(sizeof(AdamwBatch) < 4000, "kernel parameters are limited to 4 KiB");

template <typename G>
__global__ void __launch_bounds__(256)
    adamwMultiK(const AdamwBatch batch, const void* lrP, int lrCode, const void* stepP, int stepCode, const float* scaleP, double b1, double b2, float eps, float wd,
                ErrWord* err) {
  AdamwMath am;
  if (!am.setup(lrP, lrCode, stepP, stepCode, scaleP, b1, b2, eps, wd, err)) return;
  const int blk = static_cast<int>(blockIdx.x);
  int k = 0;
  while (k + 1 < batch.count && batch.start[k + 1] <= blk) k++;
  const AdamwOperands& e = batch.t[k].a;
  const int64_t n = batch.t[k].n;
  const int64_t begin = static_cast<int64_t>(blk - batch.start[k]) * kAdamwChunk;
  const int64_t end = begin + kAdamwChunk < n ? begin + kAdamwChunk : n;
  const G* g = static_cast<const G*>(e.g);
  if (batch.vec[k])
    adamwRange<G, true>(am, e.p, g, e.m, e.v, e.p2, e.m2, e.v2, begin, end, threadIdx.x, blockDim.x);
  else
    adamwRange<G, false>(am, e.p, g, e.m, e.v, e.p2, e.m2, e.v2, begin, end, threadIdx.x, blockDim.x);
}

// Each output must be an input's very range (in place) or overlap none of the inputs, and the
// outputs must not overlap each other.
// gradScale (4 bytes, may be null) must not overlap an output at all: every block reads it.
void checkAdamwOverlap(Napi::Env env, const AdamwOperands& a, uint64_t n, size_t gBytes, const void* lr, size_t lrBytes, const void* step, size_t stepBytes,
                       const float* scale, const std::string& what) {
  const uint64_t fb = n * 4;
  const void* ins[6] = {a.p, a.g, a.m, a.v, lr, step};
  const uint64_t inBytes[6] = {fb, n * gBytes, fb, fb, lrBytes, stepBytes};
  const char* inNames[6] = {"param", "grad", "m", "v", "lr", "step"};
  const void* outs[3] = {a.p2, a.m2, a.v2};
  const char* outNames[3] = {"param2", "m2", "v2"};
  for (int o = 0; o < 3; o++) {
    if (scale && n > 0 && reinterpret_cast<uintptr_t>(outs[o]) < reinterpret_cast<uintptr_t>(scale) + 4 &&
        reinterpret_cast<uintptr_t>(scale) < reinterpret_cast<uintptr_t>(outs[o]) + fb)
      fail(env, "INVALID_ARGUMENT", "Expected " + what + " output '" + outNames[o] + "' not to overlap input 'gradScale'");
    for (int k = 0; k < 6; k++)
      if (badOverlap(outs[o], fb, ins[k], inBytes[k]))
        fail(env, "INVALID_ARGUMENT", "Expected " + what + " output '" + outNames[o] + "' to be the same range as input '" + inNames[k] +
                                          "' or not to overlap it, but it overlaps it partly");
    for (int q = o + 1; q < 3; q++)
      if (n > 0 && reinterpret_cast<uintptr_t>(outs[o]) < reinterpret_cast<uintptr_t>(outs[q]) + fb &&
          reinterpret_cast<uintptr_t>(outs[q]) < reinterpret_cast<uintptr_t>(outs[o]) + fb)
        fail(env, "INVALID_ARGUMENT", "Expected " + what + " outputs '" + outNames[o] + "' and '" + outNames[q] + "' not to overlap");
  }
}

bool adamwVec(const AdamwOperands& a, size_t gBytes) {
  return aligned16(a.p) && aligned16(a.m) && aligned16(a.v) && aligned16(a.p2) && aligned16(a.m2) && aligned16(a.v2) &&
         (reinterpret_cast<uintptr_t>(a.g) % (4 * gBytes)) == 0;
}

// The arguments shared by adamw and adamwMulti (A: abi::AdamwArgs or abi::AdamwMultiArgs): the
// dtype codes of grad, lr and step (float codes: the readers checked them), beta1, beta2, eps and
// weightDecay.
struct AdamwHyper {
  int gdt, lrdt, stepdt;
  double b1, b2;
  float eps, wd;
};

template <typename A>
AdamwHyper adamwHyper(const A& a) {
  return {a.gradDtype, a.lrDtype, a.stepDtype, a.beta1, a.beta2, static_cast<float>(a.eps), static_cast<float>(a.weightDecay)};
}

}  // namespace

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const abi::AdamwArgs a = abi::readAdamw(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t n = a.n;
  const AdamwHyper h = adamwHyper(a);
  mulSize(env, n, 4, "adamw param");
  DW_DISPATCH_FLOAT(env, h.gdt, G, {
    const AdamwOperands t{a.param.ptr<float>(env, n),  a.grad.ptr<G>(env, n), a.m.ptr<float>(env, n),  a.v.ptr<float>(env, n),
                          a.param2.ptr<float>(env, n), a.m2.ptr<float>(env, n), a.v2.ptr<float>(env, n)};
    const void* lr = a.lr.ptr<void>(env, 1, dtypeBytes(h.lrdt));
    const void* step = a.step.ptr<void>(env, 1, dtypeBytes(h.stepdt));
    const float* scale = a.gradScale.optPtr<float>(env, 1);
    if (n == 0) return env.Undefined();
    checkAdamwOverlap(env, t, n, sizeof(G), lr, dtypeBytes(h.lrdt), step, dtypeBytes(h.stepdt), scale, "adamw");
    ErrWord* err = opsErrorWord(env, kErrNn);
    const bool vec = adamwVec(t, sizeof(G));
    const uint64_t work = vec ? (n + 3) / 4 : n;
    const unsigned grid = capBlocks((work + 255) / 256, static_cast<uint64_t>(smCount()) * 8);
    const G* g = static_cast<const G*>(t.g);
    if (vec)
      adamwK<G, true><<<grid, 256, 0, s>>>(t.p, g, t.m, t.v, t.p2, t.m2, t.v2, static_cast<int64_t>(n), lr, h.lrdt, step, h.stepdt, scale, h.b1, h.b2, h.eps, h.wd, err);
    else
      adamwK<G, false><<<grid, 256, 0, s>>>(t.p, g, t.m, t.v, t.p2, t.m2, t.v2, static_cast<int64_t>(n), lr, h.lrdt, step, h.stepdt, scale, h.b1, h.b2, h.eps, h.wd, err);
    checkLaunch(env, "adamw");
  });
  return env.Undefined();
}

// adamwMulti(stream, gradDtype, lrDtype, stepDtype, count, beta1, beta2, eps, weightDecay, lr, step,
//            gradScale, then per tensor: n, param, grad, m, v, param2, m2, v2)
// Every tensor is checked before anything is launched; then one launch per kAdamwBatch tensors.
Napi::Value AdamwMulti(const Napi::CallbackInfo& info) {
  const abi::AdamwMultiArgs a = abi::readAdamwMulti(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t count = a.count;
  const AdamwHyper h = adamwHyper(a);
  const void* lr = a.lr.ptr<void>(env, 1, dtypeBytes(h.lrdt));
  const void* step = a.step.ptr<void>(env, 1, dtypeBytes(h.stepdt));
  const float* scale = a.gradScale.optPtr<float>(env, 1);
  DW_DISPATCH_FLOAT(env, h.gdt, G, {
    std::vector<AdamwOperands> ts(count);
    std::vector<uint64_t> ns(count);
    for (uint64_t k = 0; k < count; k++) {
      const abi::AdamwMultiArgs_Tensors& e = a.tensors[k];
      const std::string what = "adamw_multi tensor " + std::to_string(k);
      const uint64_t n = e.n;
      mulSize(env, n, 4, what.c_str());
      ts[k] = {e.param.ptr<float>(env, n),  e.grad.ptr<G>(env, n), e.m.ptr<float>(env, n),  e.v.ptr<float>(env, n),
               e.param2.ptr<float>(env, n), e.m2.ptr<float>(env, n), e.v2.ptr<float>(env, n)};
      ns[k] = n;
      checkAdamwOverlap(env, ts[k], n, sizeof(G), lr, dtypeBytes(h.lrdt), step, dtypeBytes(h.stepdt), scale, what);
    }
    ErrWord* err = opsErrorWord(env, kErrNn);
    AdamwBatch batch{};
    auto launch = [&]() {
      if (batch.count == 0) return;
      adamwMultiK<G><<<static_cast<unsigned>(batch.start[batch.count]), 256, 0, s>>>(batch, lr, h.lrdt, step, h.stepdt, scale, h.b1, h.b2, h.eps, h.wd, err);
      checkLaunch(env, "adamw_multi");
      batch = AdamwBatch{};
    };
    for (uint64_t k = 0; k < count; k++) {
      if (ns[k] == 0) continue;
      const uint64_t blocks = (ns[k] + kAdamwChunk - 1) / kAdamwChunk;
      if (batch.count == kAdamwBatch || static_cast<uint64_t>(batch.start[batch.count]) + blocks > 0x7fffffffu) launch();
      if (blocks > 0x7fffffffu) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 chunks of " + std::to_string(kAdamwChunk) + " elements per tensor for adamw_multi");
      const AdamwOperands& t = ts[k];
      const int c = batch.count;
      batch.t[c] = {t, static_cast<int64_t>(ns[k])};
      batch.vec[c] = adamwVec(t, sizeof(G)) ? 1 : 0;
      batch.start[c + 1] = batch.start[c] + static_cast<int>(blocks);
      batch.count = c + 1;
    }
    launch();
  });
  return env.Undefined();
}

}  // namespace dw::nn
