// lab-arch: sm_90a
// The portable mma.sync attention kernels (native/attention/flash_sm80.cuh): forward and backward
// against the float64 reference, bitwise determinism of the backward, and timing.
//   build: bash dev/cuda/attention/build.sh   (or, from the repo root:
//          nvcc -O3 -std=c++17 -arch=sm_90a -lineinfo -Inative -o dev/cuda/attention/build/flash_sm80 dev/cuda/attention/flash_sm80.cu)
//   run:   dev/cuda/attention/build/flash_sm80 [--small] [--no-time]
// One line per case: `flash_sm80 bf16 B=.. H=.. Hkv=.. Sq=.. Sk=.. D=.. causal=.. pass=fwd|bwd layout=..
// err=.. PASS|FAIL ms=.. tflops=..`; the exit code is the number of failures.
#include "attention/flash_sm80.cuh"
#include "common.cuh"

#include <cstring>
#include <string>

using namespace dw::attention;

namespace {

enum class Layout { bhsd, bshd, packed };
const char* layoutName(Layout l) { return l == Layout::bhsd ? "bhsd" : l == Layout::bshd ? "bshd" : "packed"; }

struct Case {
  lab::Shape s;
  Layout layout;
  bool fwdOnly;
};

int failures = 0;

template <typename T>
void runCase(const Case& c, const char* dt, bool time, uint64_t seed) {
  const lab::Shape& s = c.s;
  const int H = s.H, Hkv = s.Hkv, D = s.D;
  // Buffers and strides per layout: q (and dq), k, v (and dk, dv), out (and dout) always [B, Sq, H, D]
  // for bshd/packed, [B, H, Sq, D] for bhsd.
  size_t qN, kN;
  Stride3 qs, ks, os;
  int64_t kOff = 0, vOff = 0;
  if (c.layout == Layout::bhsd) {
    qs = {int64_t(H) * s.Sq * D, int64_t(s.Sq) * D, D};
    ks = {int64_t(Hkv) * s.Sk * D, int64_t(s.Sk) * D, D};
    os = qs;
    qN = s.nq();
    kN = s.nk();
  } else if (c.layout == Layout::bshd) {
    qs = {int64_t(s.Sq) * H * D, D, int64_t(H) * D};
    ks = {int64_t(s.Sk) * Hkv * D, D, int64_t(Hkv) * D};
    os = qs;
    qN = s.nq();
    kN = s.nk();
  } else {
    const int64_t W = int64_t(H + 2 * Hkv) * D;
    qs = ks = {int64_t(s.Sq) * W, D, W};
    os = {int64_t(s.Sq) * H * D, D, int64_t(H) * D};
    qN = size_t(s.B) * s.Sq * W;
    kN = 0;
    kOff = int64_t(H) * D;
    vOff = int64_t(H + Hkv) * D;
  }
  const bool packed = c.layout == Layout::packed;
  auto hq = lab::randomValues<T>(qN, seed);
  auto hk = lab::randomValues<T>(packed ? 0 : kN, seed + 1);
  auto hv = lab::randomValues<T>(packed ? 0 : kN, seed + 2);
  auto hdo = lab::randomValues<T>(s.nq(), seed + 3);
  lab::DevBuf<T> dq_(hq), dk_(hk), dv_(hv), ddo(hdo), dout(s.nq()), dgq(qN), dgk(packed ? 0 : kN), dgv(packed ? 0 : kN);
  lab::DevBuf<float> dlse(size_t(s.B) * H * s.Sq), ddelta(size_t(s.B) * H * s.Sq);
  const T* qp = dq_.p;
  const T* kp = packed ? dq_.p + kOff : dk_.p;
  const T* vp = packed ? dq_.p + vOff : dv_.p;
  T* gqp = dgq.p;
  T* gkp = packed ? dgq.p + kOff : dgk.p;
  T* gvp = packed ? dgq.p + vOff : dgv.p;
  const T* hqp = hq.data();
  const T* hkp = packed ? hq.data() + kOff : hk.data();
  const T* hvp = packed ? hq.data() + vOff : hv.data();

  auto fwd = [&](const FlashFwdParams& f) { return D == 128 ? flashForwardSm80<T, 128>(f, 0) : flashForwardSm80<T, 64>(f, 0); };
  FlashFwdParams fp{qp, kp, vp, dout.p, dlse.p, qs, ks, ks, os, s.B, H, Hkv, s.Sq, s.Sk, D, s.causal, s.sc()};
  dout.poison();
  dlse.poison();
  LAB_CHECK(fwd(fp));
  LAB_CHECK(cudaDeviceSynchronize());
  auto ho = dout.host();
  auto hl = dlse.host();

  // Forward check: every row of up to 4 (b, h) pairs, at most 256 rows each (first, last, spread).
  lab::Err eo, el;
  std::vector<double> ref(D);
  const int pairs[4][2] = {{0, 0}, {s.B - 1, H - 1}, {s.B / 2, H / 2}, {0, H - 1}};
  for (auto& bh : pairs) {
    const int stepRows = std::max(1, s.Sq / 256);
    for (int i = 0; i < s.Sq; i += (i + stepRows < s.Sq ? stepRows : std::max(1, s.Sq - 1 - i))) {
      double lse;
      lab::refRow(s, hqp, {qs.b, qs.h, qs.s}, hkp, hvp, {ks.b, ks.h, ks.s}, bh[0], bh[1], i, ref.data(), &lse);
      const T* got = ho.data() + bh[0] * os.b + bh[1] * os.h + i * os.s;
      for (int d = 0; d < D; ++d) eo.add(lab::toFloat(got[d]), ref[d]);
      const float gl = hl[(size_t(bh[0]) * H + bh[1]) * s.Sq + i];
      if (std::isinf(lse)) el.add(std::isinf(gl) && gl < 0 ? 0 : INFINITY, 0);
      else el.add(gl, lse);
      if (i == s.Sq - 1) break;
    }
  }
  // bf16 rounds each of P and out once (2^-8 relative); the check allows a few of those.
  const double tolO = sizeof(T) == 2 && std::is_same<T, __nv_bfloat16>::value ? 2e-2 : 4e-3;
  bool okF = eo.rel() <= tolO && el.maxAbs <= 1e-3 * std::max(1.0, el.maxRef);
  float msF = 0;
  if (time) msF = lab::medianMs([&] { fwd(fp); });
  std::printf("flash_sm80 %s B=%d H=%d Hkv=%d Sq=%d Sk=%d D=%d causal=%d pass=fwd layout=%s err=%.2e lseErr=%.2e %s ms=%.4f tflops=%.1f\n", dt, s.B, H, Hkv, s.Sq,
              s.Sk, D, int(s.causal), layoutName(c.layout), eo.rel(), el.maxAbs, okF ? "PASS" : "FAIL", msF, time ? s.fwdFlops() / (msF * 1e-3) / 1e12 : 0.0);
  failures += !okF;
  if (c.fwdOnly) return;

  FlashBwdParams bp{ddo.p, qp, kp, vp, dout.p, dlse.p, gqp, gkp, gvp, ddelta.p, os, qs, ks, ks, os, qs, ks, ks, s.B, H, Hkv, s.Sq, s.Sk, D, s.causal, s.sc()};
  auto runB = [&] { return D == 128 ? flashBackwardSm80<T, 128>(bp, 0) : flashBackwardSm80<T, 64>(bp, 0); };
  dgq.poison();
  if (!packed) dgk.poison(), dgv.poison();
  LAB_CHECK(runB());
  LAB_CHECK(cudaDeviceSynchronize());
  auto g1q = dgq.host(), g1k = dgk.host(), g1v = dgv.host();
  LAB_CHECK(runB());
  LAB_CHECK(cudaDeviceSynchronize());
  auto g2q = dgq.host(), g2k = dgk.host(), g2v = dgv.host();
  const bool same = std::memcmp(g1q.data(), g2q.data(), g1q.size() * sizeof(T)) == 0 && std::memcmp(g1k.data(), g2k.data(), g1k.size() * sizeof(T)) == 0 &&
                    std::memcmp(g1v.data(), g2v.data(), g1v.size() * sizeof(T)) == 0;
  // Backward check: the first and last (b, kv head) fully, when the head is small enough for the CPU.
  lab::Err eq, ek, ev;
  const bool checkable = double(s.Sq) * s.Sk * D * (H / Hkv) <= 2.0e9;
  if (checkable) {
    const T* gq = g1q.data();
    const T* gk = packed ? g1q.data() + kOff : g1k.data();
    const T* gv = packed ? g1q.data() + vOff : g1v.data();
    const int heads[2][2] = {{0, 0}, {s.B - 1, Hkv - 1}};
    std::vector<double> rq, rk, rv;
    for (auto& bh : heads) {
      lab::refBackwardHead(s, hqp, hkp, hvp, hdo.data(), {qs.b, qs.h, qs.s}, {ks.b, ks.h, ks.s}, {os.b, os.h, os.s}, bh[0], bh[1], rq, rk, rv);
      const int group = H / Hkv;
      for (int g = 0; g < group; ++g)
        for (int i = 0; i < s.Sq; ++i)
          for (int d = 0; d < D; ++d) eq.add(lab::toFloat(gq[bh[0] * qs.b + (bh[1] * group + g) * qs.h + i * qs.s + d]), rq[(size_t(g) * s.Sq + i) * D + d]);
      for (int j = 0; j < s.Sk; ++j)
        for (int d = 0; d < D; ++d) {
          ek.add(lab::toFloat(gk[bh[0] * ks.b + bh[1] * ks.h + j * ks.s + d]), rk[size_t(j) * D + d]);
          ev.add(lab::toFloat(gv[bh[0] * ks.b + bh[1] * ks.h + j * ks.s + d]), rv[size_t(j) * D + d]);
        }
    }
  }
  const double tolG = std::is_same<T, __nv_bfloat16>::value ? 3e-2 : 6e-3;
  const bool okB = same && (!checkable || (eq.rel() <= tolG && ek.rel() <= tolG && ev.rel() <= tolG));
  float msB = 0;
  if (time) msB = lab::medianMs([&] { runB(); });
  std::printf("flash_sm80 %s B=%d H=%d Hkv=%d Sq=%d Sk=%d D=%d causal=%d pass=bwd layout=%s err=%.2e,%.2e,%.2e%s deterministic=%d %s ms=%.4f tflops=%.1f\n", dt, s.B,
              H, Hkv, s.Sq, s.Sk, D, int(s.causal), layoutName(c.layout), eq.rel(), ek.rel(), ev.rel(), checkable ? "" : "(unchecked)", int(same),
              okB ? "PASS" : "FAIL", msB, time ? s.bwdFlops() / (msB * 1e-3) / 1e12 : 0.0);
  failures += !okB;
}

}  // namespace

int main(int argc, char** argv) {
  bool small = false, time = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--small")) small = true;
    if (!std::strcmp(argv[i], "--no-time")) time = false;
  }
  if (small) time = false;
  // Correctness cases.
  std::vector<Case> checks = {
      {{1, 1, 1, 1, 1, 64, false, 0}, Layout::bhsd, false},     {{2, 4, 1, 77, 77, 64, true, 0}, Layout::bhsd, false},
      {{1, 8, 2, 1000, 1000, 128, true, 0}, Layout::bhsd, false}, {{1, 4, 4, 333, 1000, 128, true, 0}, Layout::bhsd, false},
      {{1, 4, 4, 1000, 333, 64, true, 0}, Layout::bhsd, false},   {{2, 3, 3, 77, 130, 128, false, 0.3f}, Layout::bshd, false},
      {{1, 4, 1, 1000, 1000, 64, false, 0}, Layout::bshd, false},   {{2, 6, 2, 300, 300, 128, true, 0}, Layout::packed, false},
  };
  if (!small) {
    checks.push_back({{1, 2, 2, 4096, 4096, 64, true, 0}, Layout::bhsd, false});
    checks.push_back({{1, 2, 1, 4096, 4096, 128, false, 0}, Layout::bhsd, false});
  }
  int n = 0;
  for (auto& c : checks) {
    runCase<__nv_bfloat16>(c, "bf16", false, 1000 + 17 * n);
    if (n % 2 == 0) runCase<__half>(c, "f16", false, 5000 + 17 * n);
    ++n;
  }
  if (time) {
    const std::vector<lab::Shape> timed = {
        {16, 12, 12, 1024, 1024, 64, true, 0}, {4, 16, 16, 4096, 4096, 128, true, 0}, {4, 16, 16, 4096, 4096, 128, false, 0},
        {8, 16, 16, 2048, 2048, 64, true, 0},  {1, 32, 32, 16384, 16384, 128, true, 0}, {2, 32, 8, 8192, 8192, 128, true, 0},
        {1, 8, 8, 512, 512, 64, true, 0},
    };
    for (auto& s : timed) runCase<__nv_bfloat16>({s, Layout::bhsd, false}, "bf16", true, 9000 + n++);
    // GPT-2's own layout: q, k, v read inside the QKV projection's output.
    runCase<__nv_bfloat16>({{16, 12, 12, 1024, 1024, 64, true, 0}, Layout::packed, false}, "bf16", true, 9100);
  }
  std::printf("flash_sm80: %d failure(s)\n", failures);
  return failures;
}
