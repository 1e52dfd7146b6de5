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

using lab::Layout;
using lab::layoutName;

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
  lab::Tensors<T> t(s, c.layout, seed);

  auto fwd = [&](const FlashFwdParams& f) { return D == 128 ? flashForwardSm80<T, 128>(f, 0) : flashForwardSm80<T, 64>(f, 0); };
  const FlashFwdParams fp = t.fwdParams();
  t.out.poison();
  t.lse.poison();
  LAB_CHECK(fwd(fp));
  LAB_CHECK(cudaDeviceSynchronize());
  auto ho = t.out.host();
  auto hl = t.lse.host();

  // Forward check: every row of up to 4 (b, h) pairs, at most 256 rows each (first, last, spread).
  lab::Err eo, el;
  std::vector<double> ref(D);
  const int pairs[4][2] = {{0, 0}, {s.B - 1, H - 1}, {s.B / 2, H / 2}, {0, H - 1}};
  for (auto& bh : pairs) {
    const int stepRows = std::max(1, s.Sq / 256);
    for (int i = 0; i < s.Sq; i += (i + stepRows < s.Sq ? stepRows : std::max(1, s.Sq - 1 - i))) {
      double lse;
      lab::refRow(s, t.hq.data(), t.L.qs, t.hostK(), t.hostV(), t.L.ks, bh[0], bh[1], i, ref.data(), &lse);
      const T* got = ho.data() + bh[0] * t.L.os.b + bh[1] * t.L.os.h + i * t.L.os.s;
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

  const FlashBwdParams bp = t.bwdParams();
  auto runB = [&] { return D == 128 ? flashBackwardSm80<T, 128>(bp, 0) : flashBackwardSm80<T, 64>(bp, 0); };
  t.dq.poison();
  if (!t.L.packed()) t.dk.poison(), t.dv.poison();
  LAB_CHECK(runB());
  LAB_CHECK(cudaDeviceSynchronize());
  auto g1q = t.dq.host(), g1k = t.dk.host(), g1v = t.dv.host();
  LAB_CHECK(runB());
  LAB_CHECK(cudaDeviceSynchronize());
  auto g2q = t.dq.host(), g2k = t.dk.host(), g2v = t.dv.host();
  const bool same = std::memcmp(g1q.data(), g2q.data(), g1q.size() * sizeof(T)) == 0 && std::memcmp(g1k.data(), g2k.data(), g1k.size() * sizeof(T)) == 0 &&
                    std::memcmp(g1v.data(), g2v.data(), g1v.size() * sizeof(T)) == 0;
  // Backward check: the first and last (b, kv head) fully, when the head is small enough for the CPU.
  lab::Err eq, ek, ev;
  const bool checkable = double(s.Sq) * s.Sk * D * (H / Hkv) <= 2.0e9;
  if (checkable) lab::checkBackward(t, g1q, g1k, g1v, eq, ek, ev);
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
