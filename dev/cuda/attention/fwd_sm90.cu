// Lab harness of the Hopper flash-attention forward (native/attention/flash_fwd_sm90.cuh): for each
// shape and layout, run it on poisoned outputs, check out and lse against the float64 reference
// (lab::refRow) on all rows of small shapes or a sample (2 heads x 64 rows incl. first and last) of big
// ones, then time it. One greppable line per case; exit status 1 on any FAIL.
//
// Build (from /work/main):
//   mkdir -p dev/cuda/attention/build && nvcc -O3 -std=c++17 -arch=sm_90a -lineinfo -I/work/main/native \
//       -o dev/cuda/attention/build/fwd_sm90 dev/cuda/attention/fwd_sm90.cu
// Run: dev/cuda/attention/build/fwd_sm90 [check|small]   (check: correctness only, no timing;
//   small: only the small untimed cases, e.g. under compute-sanitizer)
//   Each correctness case runs in the production schedule and in both forced ones (key-split, ping-pong);
//   the seed's shape and two more small grids are timed in every schedule (mode=...).
#include <cstring>
#include <string>

#include "../../../native/attention/flash_fwd_sm90.cuh"
#include "common.cuh"

namespace {

using dw::attention::FlashFwdParams;
using lab::Layout;
using lab::layoutName;

struct Case {
  lab::Shape s;
  Layout layout;
  bool f16;
  bool time;
};

// Which schedule runs: the production choice (key-split under one wave, else ping-pong), or one forced.
enum class Mode { Auto, PingPong, Split, Plain };
const char* modeName(Mode m) { return m == Mode::Auto ? "auto" : m == Mode::PingPong ? "pingpong" : m == Mode::Split ? "split" : "plain"; }

template <typename T, int D>
cudaError_t launchD(const FlashFwdParams& p, Mode mode, cudaStream_t st) {
  namespace f = dw::attention::fwd90;
  switch (mode) {
    case Mode::PingPong: return f::flashForwardSm90Impl<T, D, true, false>(p, st);
    case Mode::Split: return f::flashForwardSm90Impl<T, D, false, true>(p, st);
    case Mode::Plain: return f::flashForwardSm90Impl<T, D, false, false>(p, st);
    default: return dw::attention::flashForwardSm90<T, D>(p, st);
  }
}

template <typename T>
cudaError_t launch(const FlashFwdParams& p, Mode mode, cudaStream_t st = 0) {
  return p.D == 64 ? launchD<T, 64>(p, mode, st) : launchD<T, 128>(p, mode, st);
}

template <typename T>
bool runCase(const Case& cs, bool doTime, Mode mode) {
  const lab::Shape& s = cs.s;
  const int B = s.B, H = s.H, Hkv = s.Hkv, Sq = s.Sq, Sk = s.Sk, D = s.D;
  // Element strides of q, k, v (k and v share theirs) and out, and the buffers (packed: k and v
  // inside q's, nK = 0).
  const lab::Views L = lab::viewsOf(s, cs.layout);
  const lab::Strides qs = L.qs, ks = L.ks, os = L.os;
  const size_t nQ = L.qN, nK = L.kN, nO = size_t(s.nq());
  const uint64_t seed = uint64_t(B) * 1000003 + H * 10007 + Sq * 101 + Sk + D + s.causal;
  std::vector<T> hq = lab::randomValues<T>(nQ, seed), hk, hv;
  if (nK) {
    hk = lab::randomValues<T>(nK, seed + 1);
    hv = lab::randomValues<T>(nK, seed + 2);
  }
  lab::DevBuf<T> dq(hq);
  lab::DevBuf<T> dk(nK ? hk : std::vector<T>(1)), dv(nK ? hv : std::vector<T>(1));
  const size_t guard = 4096;  // poisoned elements past out and lse that must stay untouched
  lab::DevBuf<T> dout(nO + guard);
  lab::DevBuf<float> dlse(size_t(B) * H * Sq + guard);
  dout.poison();
  dlse.poison();

  FlashFwdParams p;
  p.q = dq.p;
  p.k = L.k<const T*>(dq.p, dk.p);
  p.v = L.v<const T*>(dq.p, dv.p);
  p.out = dout.p;
  p.lse = dlse.p;
  p.qs = qs;
  p.ks = p.vs = ks;
  p.os = os;
  p.B = B;
  p.H = H;
  p.Hkv = Hkv;
  p.Sq = Sq;
  p.Sk = Sk;
  p.D = D;
  p.causal = s.causal;
  p.scale = s.sc();

  const char* ty = cs.f16 ? "f16" : "bf16";
  char head[256];
  std::snprintf(head, sizeof head, "fwd_sm90 %s mode=%s layout=%s B=%d H=%d Hkv=%d Sq=%d Sk=%d D=%d causal=%d", ty, modeName(mode), layoutName(cs.layout), B, H,
                Hkv, Sq, Sk, D, int(s.causal));
  cudaError_t e = launch<T>(p, mode);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::printf("%s err=inf lseErr=inf FAIL (%s)\n", head, cudaGetErrorString(e));
    std::fflush(stdout);
    return false;
  }
  const std::vector<T> ho = dout.host();
  const std::vector<float> hl = dlse.host();

  // Rows to check.
  std::vector<std::pair<int, int>> heads;  // (b, h)
  std::vector<int> rows;
  const bool all = double(B) * H * Sq * double(Sk) * D <= 3e8;
  if (all) {
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h) heads.push_back({b, h});
    for (int i = 0; i < Sq; ++i) rows.push_back(i);
  } else {
    heads.push_back({0, 0});
    heads.push_back({B - 1, H - 1});
    std::mt19937 g{uint32_t(seed)};
    for (int i = 0; i < std::min(Sq, 24); ++i) rows.push_back(i);
    for (int i = std::max(0, Sq - 24); i < Sq; ++i) rows.push_back(i);
    for (int i = 0; i < 16; ++i) rows.push_back(int(g() % uint32_t(Sq)));
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  }
  const T* qp = hq.data();
  const T* kp = L.k(hq.data(), hk.data());
  const T* vp = L.v(hq.data(), hv.data());
  lab::Err err;
  double lseErr = 0;
  bool lseOk = true;
  std::vector<double> ref(D);
  for (auto [b, h] : heads)
    for (int i : rows) {
      double rl;
      lab::refRow(s, qp, qs, kp, vp, ks, b, h, i, ref.data(), &rl);
      const T* got = ho.data() + b * os.b + h * os.h + int64_t(i) * os.s;
      for (int d = 0; d < D; ++d) err.add(lab::toFloat(got[d]), ref[d]);
      const double gl = hl[(size_t(b) * H + h) * Sq + i];
      if (std::isinf(rl)) {
        if (!(std::isinf(gl) && gl < 0)) lseOk = false, lseErr = INFINITY;
      } else {
        const double ae = std::isnan(gl) ? INFINITY : std::fabs(gl - rl);
        lseErr = std::max(lseErr, ae);
        if (!(ae <= 1e-3 * std::fabs(rl) + 1e-3)) lseOk = false;
      }
    }
  // Nothing written past the ends (e.g. rows >= Sq of a bshd out would land in the guard).
  bool guardOk = true;
  {
    const uint16_t* o16 = reinterpret_cast<const uint16_t*>(ho.data());
    for (size_t i = nO; i < nO + guard; ++i) guardOk &= o16[i] == 0xFFFF;
    const uint32_t* l32 = reinterpret_cast<const uint32_t*>(hl.data());
    for (size_t i = size_t(B) * H * Sq; i < hl.size(); ++i) guardOk &= l32[i] == 0xFFFFFFFFu;
  }
  const bool pass = err.rel() <= 2e-2 && lseOk && guardOk;
  std::printf("%s err=%.3e lseErr=%.3e%s %s", head, err.rel(), lseErr, guardOk ? "" : " guard=CLOBBERED", pass ? "PASS" : "FAIL");
  if (doTime && cs.time) {
    const float ms = lab::medianMs([&] { launch<T>(p, mode); });
    std::printf(" ms=%.4f tflops=%.1f", ms, s.fwdFlops() / (double(ms) * 1e-3) / 1e12);
    // Small calls: also per call inside a CUDA graph (no host launch cost), as a training step runs them.
    if (ms < 0.05f) std::printf(" graph_us=%.2f", lab::graphUs([&](cudaStream_t st) { return launch<T>(p, mode, st); }));
  }
  std::printf("\n");
  std::fflush(stdout);
  return pass;
}

}  // namespace

int main(int argc, char** argv) {
  const bool small = argc > 1 && std::strcmp(argv[1], "small") == 0;  // the untimed cases only (for compute-sanitizer)
  const bool doTime = !(argc > 1 && (std::strcmp(argv[1], "check") == 0 || small));
  auto S = [](int B, int H, int Hkv, int Sq, int Sk, int D, bool causal) { return lab::Shape{B, H, Hkv, Sq, Sk, D, causal, 0.f}; };
  const Layout L0 = Layout::bhsd;
  std::vector<Case> cases = {
      // correctness: edges, GQA/MQA, Sq != Sk, partial tiles
      {S(1, 1, 1, 1, 1, 64, false), L0, false, false},
      {S(1, 1, 1, 1, 1, 128, true), L0, false, false},
      {S(2, 4, 1, 77, 77, 64, true), L0, false, false},
      {S(2, 4, 1, 77, 77, 64, true), L0, true, false},
      {S(1, 8, 2, 1000, 1000, 128, true), L0, false, false},
      {S(1, 4, 4, 333, 1000, 128, true), L0, false, false},
      {S(1, 2, 2, 300, 100, 128, true), L0, false, false},  // Sq > Sk: rows that see no key
      {S(1, 2, 1, 129, 257, 64, false), L0, false, false},
      {S(1, 3, 3, 200, 131, 128, false), L0, true, false},
      {S(2, 4, 4, 4096, 4096, 64, false), L0, false, false},
      // layouts
      {S(2, 4, 2, 300, 300, 128, true), Layout::bshd, false, false},
      {S(2, 6, 2, 257, 257, 64, false), Layout::bshd, false, false},
      {S(2, 4, 2, 300, 300, 128, true), Layout::packed, false, false},
      {S(1, 8, 8, 1024, 1024, 64, true), Layout::packed, false, true},
      {S(2, 16, 16, 2048, 2048, 128, true), Layout::bshd, false, true},
      // timing shapes
      {S(16, 12, 12, 1024, 1024, 64, true), L0, false, true},
      {S(4, 16, 16, 4096, 4096, 128, true), L0, false, true},
      {S(4, 16, 16, 4096, 4096, 128, false), L0, false, true},
      {S(4, 16, 16, 4096, 4096, 128, false), L0, true, true},
      {S(8, 16, 16, 2048, 2048, 64, true), L0, false, true},
      {S(8, 16, 16, 2048, 2048, 64, false), L0, false, true},
      {S(1, 32, 32, 16384, 16384, 128, true), L0, false, true},
      {S(2, 32, 8, 8192, 8192, 128, true), L0, false, true},
      {S(1, 8, 8, 512, 512, 64, true), L0, false, true},
  };
  int fails = 0;
  auto run = [&](const Case& c, bool time, Mode mode) { fails += !(c.f16 ? runCase<__half>(c, time, mode) : runCase<__nv_bfloat16>(c, time, mode)); };
  for (const Case& c : cases) {
    if (small && c.time) continue;
    run(c, doTime, Mode::Auto);
    // The correctness cases in both schedules, whichever the production choice is.
    if (!c.time) run(c, false, Mode::Split), run(c, false, Mode::PingPong);
  }
  // The seed's configuration (and one wave's worth) in every schedule, for the A/B.
  if (doTime)
    for (Mode m : {Mode::PingPong, Mode::Split, Mode::Plain}) {
      run({S(1, 8, 8, 512, 512, 64, true), L0, false, true}, true, m);
      run({S(1, 8, 8, 1024, 1024, 64, true), L0, false, true}, true, m);
      run({S(1, 16, 16, 2048, 2048, 128, true), L0, false, true}, true, m);
    }
  std::printf("fwd_sm90 summary: %d case(s) failed\n", fails);
  return fails ? 1 : 0;
}
