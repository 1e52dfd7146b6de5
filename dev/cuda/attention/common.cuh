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
#include "attention/flash_params.h"

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

// Element strides of a tensor's rows: the kernels' own type (flash_params.h), so a harness passes
// the strides it checks with.
using Strides = dw::attention::Stride3;

struct Shape {
  int B, H, Hkv, Sq, Sk, D;
  bool causal;
  float scale;  // 0: 1 / sqrt(D)
  float sc() const { return scale > 0 ? scale : 1.f / std::sqrt(float(D)); }
  int64_t nq() const { return int64_t(B) * H * Sq * D; }
  int64_t nk() const { return int64_t(B) * Hkv * Sk * D; }
  // Contiguous [B, heads, S, D] strides.
  Strides bhsd(int heads, int S) const { return {int64_t(heads) * S * D, int64_t(S) * D, D}; }
  // Contiguous [B, S, heads, D] strides.
  Strides bshd(int heads, int S) const { return {int64_t(S) * heads * D, D, int64_t(heads) * D}; }
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

// The layouts the harnesses run: q (and dq), k, v (and dk, dv) and out (and dout) contiguous
// [B, heads, S, D] (bhsd) or [B, S, heads, D] (bshd); or q, k, v (and dq, dk, dv) inside one
// [B, S, H + 2·Hkv, D] buffer as a QKV projection writes them (packed; Sq == Sk), out [B, S, H, D].
enum class Layout { bhsd, bshd, packed };
inline const char* layoutName(Layout l) { return l == Layout::bhsd ? "bhsd" : l == Layout::bshd ? "bshd" : "packed"; }

// A layout for one shape: the strides of q (and dq), k and v (and dk, dv), out (and dout), and the
// buffers: q's of qN elements, k's and v's of kN each (packed: none, 0; k and v sit in q's at kOff
// and vOff), out's of s.nq().
struct Views {
  Layout layout;
  Strides qs, ks, os;
  size_t qN, kN;
  int64_t kOff, vOff;
  bool packed() const { return layout == Layout::packed; }
  // k's (v's) first element, given q's buffer and k's (v's) own: inside q's when packed.
  template <typename P> P k(P qBuf, P kBuf) const { return packed() ? qBuf + kOff : kBuf; }
  template <typename P> P v(P qBuf, P vBuf) const { return packed() ? qBuf + vOff : vBuf; }
};

inline Views viewsOf(const Shape& s, Layout l) {
  if (l == Layout::packed) {
    const int64_t W = int64_t(s.H + 2 * s.Hkv) * s.D;
    const Strides qkv{int64_t(s.Sq) * W, s.D, W};
    return {l, qkv, qkv, s.bshd(s.H, s.Sq), size_t(s.B) * s.Sq * W, 0, int64_t(s.H) * s.D, int64_t(s.H + s.Hkv) * s.D};
  }
  const bool bhsd = l == Layout::bhsd;
  const Strides qs = bhsd ? s.bhsd(s.H, s.Sq) : s.bshd(s.H, s.Sq), ks = bhsd ? s.bhsd(s.Hkv, s.Sk) : s.bshd(s.Hkv, s.Sk);
  return {l, qs, ks, qs, size_t(s.nq()), size_t(s.nk()), 0, 0};
}

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

// One case's tensors in a layout (viewsOf): random q, k, v and dout (seeds seed .. seed + 3) on the
// host and the device; out, lse, the backward's delta and the gradients on the device. Packed, k and
// v sit inside q's buffers (host and device) and dk, dv inside dq's.
template <typename T>
struct Tensors {
  Shape s;
  Views L;
  std::vector<T> hq, hk, hv, hdo;
  DevBuf<T> q, k, v, dout, out, dq, dk, dv;
  DevBuf<float> lse, delta;
  Tensors(const Shape& shape, Layout l, uint64_t seed)
      : s(shape), L(viewsOf(shape, l)), hq(randomValues<T>(L.qN, seed)), hk(randomValues<T>(L.kN, seed + 1)), hv(randomValues<T>(L.kN, seed + 2)),
        hdo(randomValues<T>(size_t(s.nq()), seed + 3)), q(hq), k(hk), v(hv), dout(hdo), out(size_t(s.nq())), dq(L.qN), dk(L.kN), dv(L.kN),
        lse(size_t(s.B) * s.H * s.Sq), delta(size_t(s.B) * s.H * s.Sq) {}
  // k and v on the host and on the device.
  const T* hostK() const { return L.k(hq.data(), hk.data()); }
  const T* hostV() const { return L.v(hq.data(), hv.data()); }
  const T* devK() const { return L.k<const T*>(q.p, k.p); }
  const T* devV() const { return L.v<const T*>(q.p, v.p); }
  // The kernels' parameters over these tensors.
  dw::attention::FlashFwdParams fwdParams() const {
    return {q.p, devK(), devV(), out.p, lse.p, L.qs, L.ks, L.ks, L.os, s.B, s.H, s.Hkv, s.Sq, s.Sk, s.D, s.causal, s.sc()};
  }
  dw::attention::FlashBwdParams bwdParams() const {
    // dout, out, dq, dk and dv as out, q, k and v: the gradients share their tensors' strides.
    return {dout.p, q.p, devK(), devV(), out.p, lse.p, dq.p, L.k(dq.p, dk.p), L.v(dq.p, dv.p), delta.p,
            L.os, L.qs, L.ks, L.ks, L.os, L.qs, L.ks, L.ks, s.B, s.H, s.Hkv, s.Sq, s.Sk, s.D, s.causal, s.sc()};
  }
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

// A backward's dq, dk and dv (host copies of t.dq, t.dk, t.dv) against the float64 reference on the
// first and last (b, kv head) (one when they are the same), into eq, ek and ev.
template <typename T>
void checkBackward(const Tensors<T>& t, const std::vector<T>& dq, const std::vector<T>& dk, const std::vector<T>& dv, Err& eq, Err& ek, Err& ev) {
  const Shape& s = t.s;
  const Strides qs = t.L.qs, ks = t.L.ks;
  const T* gk = t.L.k(dq.data(), dk.data());
  const T* gv = t.L.v(dq.data(), dv.data());
  const int group = s.H / s.Hkv, D = s.D;
  const int heads[2][2] = {{0, 0}, {s.B - 1, s.Hkv - 1}};
  std::vector<double> rq, rk, rv;
  for (auto& bh : heads) {
    if (&bh != &heads[0] && bh[0] == 0 && bh[1] == 0) break;
    refBackwardHead(s, t.hq.data(), t.hostK(), t.hostV(), t.hdo.data(), qs, ks, t.L.os, bh[0], bh[1], rq, rk, rv);
    for (int g = 0; g < group; ++g)
      for (int i = 0; i < s.Sq; ++i)
        for (int d = 0; d < D; ++d) eq.add(toFloat(dq[bh[0] * qs.b + (bh[1] * group + g) * qs.h + i * qs.s + d]), rq[(size_t(g) * s.Sq + i) * D + d]);
    for (int j = 0; j < s.Sk; ++j)
      for (int d = 0; d < D; ++d) {
        ek.add(toFloat(gk[bh[0] * ks.b + bh[1] * ks.h + j * ks.s + d]), rk[size_t(j) * D + d]);
        ev.add(toFloat(gv[bh[0] * ks.b + bh[1] * ks.h + j * ks.s + d]), rv[size_t(j) * D + d]);
      }
  }
}

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
