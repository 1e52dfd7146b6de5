// lab-arch: sm_90a
// The Hopper attention backward (native/attention/flash_bwd_sm90.cuh) against the float64 reference:
// out and lse come from the verified portable forward (flash_sm80.cuh), then the sm90 backward runs
// on poisoned dq, dk, dv (and poisoned scratch / delta); dq, dk, dv are checked against
// lab::refBackwardHead, two runs must agree bitwise (the fixed dQ order), and it is timed.
//   build: bash dev/cuda/attention/build.sh bwd_sm90   (or, from the repo root:
//          nvcc -O3 -std=c++17 -arch=sm_90a -lineinfo -Inative -Xptxas -v -o dev/cuda/attention/build/bwd_sm90 dev/cuda/attention/bwd_sm90.cu)
//   run:   dev/cuda/attention/build/bwd_sm90 [--small | --race] [--no-time] [--sm80] [--case N]
//          --sm80 also times the portable backward on the timing shapes (kernel name flash_sm80);
//          --case N runs only correctness case N (0-based, both dtypes), no timing: for bisecting.
//          --race: two short cases in production and every Stats variant, for racecheck;
//          --ab: also the timing shapes in every Stats variant (how lse2 / delta reach the
//          consumers: mode=staged, mode=bulk, mode=global; production prints no mode).
// One line per case: `bwd_sm90 bf16 B=.. H=.. Hkv=.. Sq=.. Sk=.. D=.. causal=.. pass=bwd layout=..
// err=dq,dk,dv deterministic=.. PASS|FAIL ms=.. tflops=..`; the exit code is the number of failures.
#include "attention/flash_bwd_sm90.cuh"
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
};

int failures = 0;
bool alsoSm80 = false;
// The variant under test: production (flashBackwardSm90, no mode on its lines) or one bwd90::Stats
// forced (mode=staged, mode=bulk, mode=global).
using dw::attention::bwd90::Stats;
bool forced = false;
Stats variant = Stats::Staged;
const char* modeTag() {
  if (!forced) return "";
  return variant == Stats::Bulk ? " mode=bulk" : variant == Stats::Global ? " mode=global" : " mode=staged";
}

template <typename T, int D>
cudaError_t runSm90(const FlashBwdParams& bp, void* scratch, cudaStream_t st) {
  using dw::attention::bwd90::flashBackwardSm90Impl;
  if (!forced) return flashBackwardSm90<T, D>(bp, scratch, st);
  if (variant == Stats::Bulk) return flashBackwardSm90Impl<T, D, Stats::Bulk>(bp, scratch, st);
  if (variant == Stats::Global) return flashBackwardSm90Impl<T, D, Stats::Global>(bp, scratch, st);
  return flashBackwardSm90Impl<T, D, Stats::Staged>(bp, scratch, st);
}

template <typename T>
void runCase(const Case& c, const char* dt, bool time, uint64_t seed) {
  const lab::Shape& s = c.s;
  const int H = s.H, Hkv = s.Hkv, D = s.D;
  lab::Tensors<T> t(s, c.layout, seed);

  // out and lse from the verified portable forward.
  const FlashFwdParams fp = t.fwdParams();
  LAB_CHECK((D == 128 ? flashForwardSm80<T, 128>(fp, 0) : flashForwardSm80<T, 64>(fp, 0)));
  LAB_CHECK(cudaDeviceSynchronize());

  const FlashBwdParams bp = t.bwdParams();
  lab::DevBuf<uint8_t> scratch(flashBackwardSm90Scratch(bp));
  auto runB = [&] { return D == 128 ? runSm90<T, 128>(bp, scratch.p, 0) : runSm90<T, 64>(bp, scratch.p, 0); };
  t.dq.poison();
  if (!t.L.packed()) t.dk.poison(), t.dv.poison();
  scratch.poison();
  t.delta.poison();
  const cudaError_t launched = runB();
  if (launched != cudaSuccess) {
    std::printf("bwd_sm90 %s B=%d H=%d Hkv=%d Sq=%d Sk=%d D=%d causal=%d pass=bwd layout=%s refused: %s FAIL ms=0 tflops=0\n", dt, s.B, H, Hkv, s.Sq,
                s.Sk, D, int(s.causal), layoutName(c.layout), cudaGetErrorString(launched));
    ++failures;
    return;
  }
  LAB_CHECK(cudaDeviceSynchronize());
  auto g1q = t.dq.host(), g1k = t.dk.host(), g1v = t.dv.host();
  scratch.poison();
  LAB_CHECK(runB());
  LAB_CHECK(cudaDeviceSynchronize());
  auto g2q = t.dq.host(), g2k = t.dk.host(), g2v = t.dv.host();
  const bool same = std::memcmp(g1q.data(), g2q.data(), g1q.size() * sizeof(T)) == 0 && std::memcmp(g1k.data(), g2k.data(), g1k.size() * sizeof(T)) == 0 &&
                    std::memcmp(g1v.data(), g2v.data(), g1v.size() * sizeof(T)) == 0;
  // The first and last (b, kv head) fully, when the head is small enough for the CPU.
  lab::Err eq, ek, ev;
  const bool checkable = double(s.Sq) * s.Sk * D * (H / Hkv) <= 2.2e9;
  if (checkable) {
    lab::checkBackward(t, g1q, g1k, g1v, eq, ek, ev);
  } else {
    // Too big for the CPU reference: at least every output must be written (no NaN left of the poison).
    for (auto x : g1q) eq.add(lab::toFloat(x), 0);
    for (auto x : g1k) ek.add(lab::toFloat(x), 0);
    for (auto x : g1v) ev.add(lab::toFloat(x), 0);
  }
  const double tolG = std::is_same<T, __nv_bfloat16>::value ? 3e-2 : 6e-3;
  const bool written = std::isfinite(eq.maxAbs) && std::isfinite(ek.maxAbs) && std::isfinite(ev.maxAbs);
  const bool okB = same && written && (!checkable || (eq.rel() <= tolG && ek.rel() <= tolG && ev.rel() <= tolG));
  float msB = 0;
  if (time) msB = lab::medianMs([&] { runB(); });
  // Small calls: also per call inside a CUDA graph (no host launch cost), as a training step runs them.
  char graph[32] = "";
  if (time && msB < 0.05f) {
    auto onStream = [&](cudaStream_t st) { return D == 128 ? runSm90<T, 128>(bp, scratch.p, st) : runSm90<T, 64>(bp, scratch.p, st); };
    std::snprintf(graph, sizeof graph, " graph_us=%.2f", lab::graphUs(onStream));
  }
  std::printf("bwd_sm90 %s%s B=%d H=%d Hkv=%d Sq=%d Sk=%d D=%d causal=%d pass=bwd layout=%s err=%.2e,%.2e,%.2e%s deterministic=%d %s ms=%.4f tflops=%.1f%s\n", dt,
              modeTag(), s.B, H,
              Hkv, s.Sq, s.Sk, D, int(s.causal), layoutName(c.layout), checkable ? eq.rel() : 0.0, checkable ? ek.rel() : 0.0, checkable ? ev.rel() : 0.0,
              checkable ? "" : "(unchecked)", int(same), okB ? "PASS" : "FAIL", msB, time ? s.bwdFlops() / (msB * 1e-3) / 1e12 : 0.0, graph);
  failures += !okB;
  if (time && alsoSm80) {
    auto run80 = [&] { return D == 128 ? flashBackwardSm80<T, 128>(bp, 0) : flashBackwardSm80<T, 64>(bp, 0); };
    const float ms80 = lab::medianMs([&] { run80(); });
    std::printf("flash_sm80 %s B=%d H=%d Hkv=%d Sq=%d Sk=%d D=%d causal=%d pass=bwd layout=%s (timing only) ms=%.4f tflops=%.1f\n", dt, s.B, H, Hkv, s.Sq,
                s.Sk, D, int(s.causal), layoutName(c.layout), ms80, s.bwdFlops() / (ms80 * 1e-3) / 1e12);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool small = false, race = false, time = true, ab = false;
  int only = -1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--small")) small = true;
    if (!std::strcmp(argv[i], "--race")) race = true;
    if (!std::strcmp(argv[i], "--case") && i + 1 < argc) only = std::atoi(argv[++i]), time = false;
    if (!std::strcmp(argv[i], "--no-time")) time = false;
    if (!std::strcmp(argv[i], "--sm80")) alsoSm80 = true;
    if (!std::strcmp(argv[i], "--ab")) ab = true;
  }
  if (small || race) time = false;
  // --race: two short cases (both head dims, a partial block, causal and not) for compute-sanitizer's
  // racecheck, which is slow on a kernel whose CTAs wait on each other's semaphores.
  if (race) {
    for (int v = -1; v < 3; ++v) {  // production, then every variant forced
      forced = v >= 0;
      variant = Stats(v < 0 ? 0 : v);
      runCase<__nv_bfloat16>({{1, 2, 1, 130, 130, 64, true, 0}, Layout::bhsd}, "bf16", false, 77);
      runCase<__nv_bfloat16>({{1, 2, 1, 130, 130, 128, false, 0}, Layout::bhsd}, "bf16", false, 78);
    }
    std::printf("bwd_sm90: %d failure(s)\n", failures);
    return failures;
  }
  // Correctness cases: tiny, MQA, GQA 4:1, Sq < Sk and Sq > Sk (causal bottom right: rows that see no
  // key), partial blocks, bshd and packed strides, a scale of one's own.
  std::vector<Case> checks = {
      {{1, 1, 1, 1, 1, 64, false, 0}, Layout::bhsd},       {{1, 1, 1, 1, 1, 128, true, 0}, Layout::bhsd},
      {{2, 4, 1, 77, 77, 64, true, 0}, Layout::bhsd},      {{2, 4, 1, 77, 77, 128, true, 0}, Layout::bhsd},
      {{1, 8, 2, 1000, 1000, 128, true, 0}, Layout::bhsd}, {{1, 8, 2, 1000, 1000, 64, true, 0}, Layout::bhsd},
      {{1, 4, 4, 333, 1000, 128, true, 0}, Layout::bhsd},  {{1, 4, 4, 333, 1000, 64, true, 0}, Layout::bhsd},
      {{1, 4, 4, 1000, 333, 64, true, 0}, Layout::bhsd},   {{1, 4, 4, 1000, 333, 128, true, 0}, Layout::bhsd},
      {{2, 3, 3, 77, 130, 128, false, 0.3f}, Layout::bshd}, {{1, 4, 1, 1000, 1000, 64, false, 0}, Layout::bshd},
      {{2, 6, 2, 300, 300, 128, true, 0}, Layout::packed},  {{2, 6, 2, 300, 300, 64, false, 0}, Layout::packed},
  };
  if (!small) {
    checks.push_back({{1, 2, 2, 4096, 4096, 64, false, 0}, Layout::bhsd});
    checks.push_back({{1, 2, 2, 4096, 4096, 64, true, 0}, Layout::bhsd});
    checks.push_back({{1, 1, 1, 4096, 4096, 128, false, 0}, Layout::bhsd});
  }
  int n = 0;
  for (auto& c : checks) {
    if (only < 0 || only == n) {
      runCase<__nv_bfloat16>(c, "bf16", false, 1000 + 17 * n);
      if (n % 2 == 0 || small || only == n) runCase<__half>(c, "f16", false, 5000 + 17 * n);
    }
    ++n;
  }
  if (time) {
    const std::vector<lab::Shape> timed = {
        {16, 12, 12, 1024, 1024, 64, true, 0}, {4, 16, 16, 4096, 4096, 128, true, 0}, {4, 16, 16, 4096, 4096, 128, false, 0},
        {8, 16, 16, 2048, 2048, 64, true, 0},  {1, 32, 32, 16384, 16384, 128, true, 0}, {2, 32, 8, 8192, 8192, 128, true, 0},
        {1, 8, 8, 512, 512, 64, true, 0},
    };
    for (auto& s : timed) runCase<__nv_bfloat16>({s, Layout::bhsd}, "bf16", true, 9000 + n++);
    if (ab) {  // the other variants on the same shapes and seeds, checked and timed
      for (Stats v : {Stats::Staged, Stats::Bulk, Stats::Global}) {
        forced = true;
        variant = v;
        int m = n - int(timed.size());
        for (auto& s : timed) runCase<__nv_bfloat16>({s, Layout::bhsd}, "bf16", true, 9000 + m++);
      }
      forced = false;
    }
    runCase<__nv_bfloat16>({{16, 12, 12, 1024, 1024, 64, true, 0}, Layout::packed}, "bf16", true, 9100);
  }
  std::printf("bwd_sm90: %d failure(s)\n", failures);
  return failures;
}
