// The attention kernel lab's shared harness (dev/cuda/attention/): shapes and strides, random
// inputs, a float64 CPU reference of the forward and backward, comparison, and CUDA-event timing.
// Each lab file (one per kernel version) includes this, builds standalone with nvcc and prints, per
// shape, its error against the reference and its median time and TFLOP/s.
//
// Conventions (the same as the sdpa op of @deepwell/attention-sparsek):
//   q [B, H, Sq, D], k and v [B, Hkv, Sk, D] as strided views: element (b, h, s, d) of a tensor sits
//   at b * sb + h * sh + s * ss + d (d contiguous). out as q; lse f32 [B, H, Sq], contiguous.
//   Query head h reads key/value head h / (H / Hkv). Causal: key j visible to query i when
//   j <= i + Sk - Sq (bottom right). A row that sees no key: out 0, lse -inf.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#define LAB_CHECK(x)                                                                          \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

namespace lab {

// Result lines go out as they are printed (line-buffered even into a file or pipe), so a run stopped
// by a timeout still shows every case it finished.
inline const bool kLineBuffered = std::setvbuf(stdout, nullptr, _IOLBF, 0) == 0;

struct Strides {
  int64_t b, h, s;
};

struct Shape {
  int B, H, Hkv, Sq, Sk, D;
  bool causal;
  float scale;  // 0: 1 / sqrt(D)
  float sc() const { return scale > 0 ? scale : 1.f / std::sqrt(float(D)); }
  int64_t nq() const { return int64_t(B) * H * Sq * D; }
  int64_t nk() const { return int64_t(B) * Hkv * Sk * D; }
  // Contiguous [B, heads, S, D] strides.
  Strides bhsd(int heads, int S) const { return {int64_t(heads) * S * D, int64_t(S) * D, D}; }
  int visibleEnd(int i) const {
    if (!causal) return Sk;
    int64_t e = int64_t(i) + Sk - Sq + 1;
    return int(std::max<int64_t>(0, std::min<int64_t>(Sk, e)));
  }
  // Query-key pairs that are computed (causal: visible pairs only).
  double pairs() const {
    double p = 0;
    for (int i = 0; i < Sq; ++i) p += visibleEnd(i);
    return p;
  }
  // FLOPs as FlashAttention counts them: 4 · pairs · D per head forward (two GEMMs), 2.5× that backward.
  double fwdFlops() const { return 4.0 * B * H * pairs() * D; }
  double bwdFlops() const { return 2.5 * fwdFlops(); }
};

template <typename T> inline float toFloat(T x);
template <> inline float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> inline float toFloat(__half x) { return __half2float(x); }
template <typename T> inline T fromFloat(float x);
template <> inline __nv_bfloat16 fromFloat(float x) { return __float2bfloat16_rn(x); }
template <> inline __half fromFloat(float x) { return __float2half_rn(x); }

// n values uniform in [-1, 1), rounded to T; fresh per seed.
template <typename T>
std::vector<T> randomValues(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<T> v(n);
  for (auto& x : v) x = fromFloat<T>(u(g));
  return v;
}

template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) { LAB_CHECK(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T))); }
  DevBuf(const std::vector<T>& h) : DevBuf(h.size()) { LAB_CHECK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  std::vector<T> host() const {
    std::vector<T> h(n);
    LAB_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  // Every byte 0xFF: NaN in f32, bf16 and f16, so an unwritten element fails the check.
  void poison() { LAB_CHECK(cudaMemset(p, 0xFF, std::max<size_t>(1, n) * sizeof(T))); }
};

// The float64 reference of one query row (b, h, i): out row (D values) and lse.
template <typename T>
void refRow(const Shape& s, const T* q, Strides qs, const T* k, const T* v, Strides ks, int b, int h, int i, double* out, double* lse) {
  const int hk = h / (s.H / s.Hkv);
  const int end = s.visibleEnd(i);
  std::vector<double> p(end);
  double m = -INFINITY;
  for (int j = 0; j < end; ++j) {
    double dot = 0;
    for (int d = 0; d < s.D; ++d) dot += double(toFloat(q[b * qs.b + h * qs.h + i * qs.s + d])) * toFloat(k[b * ks.b + hk * ks.h + j * ks.s + d]);
    p[j] = dot * s.sc();
    m = std::max(m, p[j]);
  }
  double l = 0;
  for (int j = 0; j < end; ++j) l += (p[j] = std::exp(p[j] - m));
  for (int d = 0; d < s.D; ++d) {
    double acc = 0;
    for (int j = 0; j < end; ++j) acc += p[j] * toFloat(v[b * ks.b + hk * ks.h + j * ks.s + d]);
    out[d] = end ? acc / l : 0;
  }
  *lse = end ? m + std::log(l) : -INFINITY;
}

// The float64 reference backward for one key/value head (b, hk) and its query heads: dq for those
// query heads' rows, dk and dv for the head's keys (dout read with strides dos). dq: [group][Sq][D], dk, dv: [Sk][D].
// The rows are spread over the host's cores (the big checks would take minutes on one): each thread
// owns every nt-th query row (dq rows are its own) and private dk, dv sums, added up in thread order.
template <typename T>
void refBackwardHead(const Shape& s, const T* q, const T* k, const T* v, const T* dout, Strides qs, Strides ks, Strides dos, int b, int hk,
                     std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv) {
  const int group = s.H / s.Hkv;
  dq.assign(size_t(group) * s.Sq * s.D, 0);
  dk.assign(size_t(s.Sk) * s.D, 0);
  dv.assign(size_t(s.Sk) * s.D, 0);
  const int rows = group * s.Sq;
  const int nt = std::max(1, std::min<int>({int(std::thread::hardware_concurrency()), 32, rows}));
  std::vector<std::vector<double>> dkT(nt, std::vector<double>(size_t(s.Sk) * s.D)), dvT(nt, std::vector<double>(size_t(s.Sk) * s.D));
  auto work = [&](int t) {
    std::vector<double> o(s.D);
    std::vector<double>& dkt = dkT[t];
    std::vector<double>& dvt = dvT[t];
    for (int r = t; r < rows; r += nt) {
      const int g = r / s.Sq, i = r % s.Sq;
      const int h = hk * group + g;
      double lse;
      refRow(s, q, qs, k, v, ks, b, h, i, o.data(), &lse);
      const T* qr = q + b * qs.b + h * qs.h + i * qs.s;
      const T* dor = dout + b * dos.b + h * dos.h + i * dos.s;
      double delta = 0;
      for (int d = 0; d < s.D; ++d) delta += toFloat(dor[d]) * o[d];
      for (int j = 0; j < s.visibleEnd(i); ++j) {
        const T* kr = k + b * ks.b + hk * ks.h + j * ks.s;
        const T* vr = v + b * ks.b + hk * ks.h + j * ks.s;
        double dot = 0, dp = 0;
        for (int d = 0; d < s.D; ++d) {
          dot += double(toFloat(qr[d])) * toFloat(kr[d]);
          dp += double(toFloat(dor[d])) * toFloat(vr[d]);
        }
        const double p = std::exp(dot * s.sc() - lse);
        const double ds = p * (dp - delta);
        for (int d = 0; d < s.D; ++d) {
          dq[(size_t(g) * s.Sq + i) * s.D + d] += s.sc() * ds * toFloat(kr[d]);
          dkt[size_t(j) * s.D + d] += s.sc() * ds * toFloat(qr[d]);
          dvt[size_t(j) * s.D + d] += p * toFloat(dor[d]);
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  for (int t = 0; t < nt; ++t)
    for (size_t x = 0; x < dk.size(); ++x) dk[x] += dkT[t][x], dv[x] += dvT[t][x];
}

// Error of a result against a float64 reference: the largest |got - ref|, relative to the largest
// |ref|; NaN (an unwritten element) makes it infinite.
struct Err {
  double maxAbs = 0, maxRef = 0;
  void add(double got, double ref) {
    const double e = std::fabs(got - ref);
    maxAbs = std::isnan(got) ? INFINITY : std::max(maxAbs, e);
    maxRef = std::max(maxRef, std::fabs(ref));
  }
  double rel() const { return maxRef > 0 ? maxAbs / maxRef : maxAbs; }
};

// Median milliseconds of `launch` over `iters` timed runs (CUDA events around each), after `warm`.
template <typename F>
float medianMs(F launch, int warm = 5, int iters = 20) {
  for (int i = 0; i < warm; ++i) launch();
  LAB_CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a);
    launch();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&ms[i], a, b);
  }
  LAB_CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[iters / 2];
}

// Microseconds per call of `launchOn(stream)` under CUDA-graph replay, as a training step runs it:
// `calls` launches captured into one graph, the graph replayed `replays` times after a warm-up, the
// median replay (CUDA events around it) divided by `calls`. No host launch cost is in the figure.
template <typename F>
float graphUs(F launchOn, int calls = 20, int replays = 50) {
  cudaStream_t st;
  LAB_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (int i = 0; i < 3; ++i) LAB_CHECK(launchOn(st));
  LAB_CHECK(cudaStreamSynchronize(st));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  LAB_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < calls; ++i) LAB_CHECK(launchOn(st));
  LAB_CHECK(cudaStreamEndCapture(st, &g));
  LAB_CHECK(cudaGraphInstantiate(&ge, g, 0));
  for (int i = 0; i < 3; ++i) LAB_CHECK(cudaGraphLaunch(ge, st));
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> us(replays);
  for (int i = 0; i < replays; ++i) {
    cudaEventRecord(a, st);
    LAB_CHECK(cudaGraphLaunch(ge, st));
    cudaEventRecord(b, st);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    us[i] = ms * 1e3f / calls;
  }
  LAB_CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(st);
  std::sort(us.begin(), us.end());
  return us[replays / 2];
}

}  // namespace lab
