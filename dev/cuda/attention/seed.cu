// Lab harness for the seed's configuration (B1 H8 S512 D64 causal, bf16, [B, H, S, D]): a shape too
// small to fill the GPU, where what counts is the latency of one call inside a training step's CUDA
// graph. Every forward variant (the Hopper kernel as production picks it and in each schedule, the
// portable kernel at each query-block size) is
// checked against the float64 reference on all rows of two heads, then timed under CUDA-graph
// replay (lab::graphUs: 20 calls a graph, median of 50 replays) and with events around one launch;
// then the backward, both kernels, the same way (its gradients are checked by bwd_sm90 / flash_sm80).
// One greppable line per variant: `seed fwd|bwd <variant> ... PASS|FAIL graph_us=.. event_us=..`.
//   bash dev/cuda/attention/build.sh seed && dev/cuda/attention/build/seed [B H S D]
#include <cstring>

#include "../../../native/attention/flash_bwd_sm90.cuh"
#include "../../../native/attention/flash_fwd_sm90.cuh"
#include "../../../native/attention/flash_sm80.cuh"
#include "common.cuh"

namespace {

using dw::attention::FlashBwdParams;
using dw::attention::FlashFwdParams;
using T = __nv_bfloat16;
int failures = 0;

template <int D>
void run(const lab::Shape& s) {
  namespace at = dw::attention;
  const lab::Strides qs = s.bhsd(s.H, s.Sq), ks = s.bhsd(s.Hkv, s.Sk);
  const at::Stride3 q3{qs.b, qs.h, qs.s}, k3{ks.b, ks.h, ks.s};
  auto hq = lab::randomValues<T>(s.nq(), 11), hk = lab::randomValues<T>(s.nk(), 12), hv = lab::randomValues<T>(s.nk(), 13);
  auto hdo = lab::randomValues<T>(s.nq(), 14);
  lab::DevBuf<T> q(hq), k(hk), v(hv), dout(hdo), out(s.nq()), dq(s.nq()), dk(s.nk()), dv(s.nk());
  lab::DevBuf<float> lse(size_t(s.B) * s.H * s.Sq), delta(size_t(s.B) * s.H * s.Sq);
  const FlashFwdParams fp{q.p, k.p, v.p, out.p, lse.p, q3, k3, k3, q3, s.B, s.H, s.Hkv, s.Sq, s.Sk, D, s.causal, s.sc()};
  const char* shape = "";
  char shapeBuf[96];
  std::snprintf(shapeBuf, sizeof shapeBuf, "B=%d H=%d Hkv=%d S=%d D=%d causal=%d", s.B, s.H, s.Hkv, s.Sq, D, int(s.causal));
  shape = shapeBuf;

  // Forward variants: the Hopper kernel, the portable one at 32, 64 and 128 query rows a CTA.
  struct Fwd {
    const char* name;
    cudaError_t (*fn)(const FlashFwdParams&, cudaStream_t);
  };
  const Fwd fwds[] = {
      {"sm90", at::flashForwardSm90<T, D>},
      {"sm90_pingpong", at::fwd90::flashForwardSm90Impl<T, D, true, false>},
      {"sm90_split", at::fwd90::flashForwardSm90Impl<T, D, false, true>},
      {"sm90_split_pdl", at::fwd90::flashForwardSm90Impl<T, D, false, true, true>},  // programmatic dependent launch
      {"sm80_bm32", at::sm80::forwardWith<T, D, 2, 64>},
      {"sm80_bm64", at::sm80::forwardWith<T, D, 4, 64>},
      {"sm80_bm128", at::sm80::forwardWith<T, D, 8, 64>},
      {"production", at::flashForwardSm80<T, D>},
  };
  std::vector<double> ref(D);
  for (const Fwd& f : fwds) {
    out.poison();
    lse.poison();
    const cudaError_t e = f.fn(fp, 0);
    if (e != cudaSuccess) {
      std::printf("seed fwd %s %s refused: %s FAIL\n", f.name, shape, cudaGetErrorString(e));
      ++failures;
      continue;
    }
    LAB_CHECK(cudaDeviceSynchronize());
    auto ho = out.host();
    auto hl = lse.host();
    lab::Err err;
    double lseErr = 0;
    for (int h : {0, s.H - 1})
      for (int i = 0; i < s.Sq; ++i) {
        double rl;
        lab::refRow(s, hq.data(), qs, hk.data(), hv.data(), ks, s.B - 1, h, i, ref.data(), &rl);
        const size_t row = (size_t(s.B - 1) * s.H + h) * s.Sq + i;
        for (int d = 0; d < D; ++d) err.add(lab::toFloat(ho[row * D + d]), ref[d]);
        lseErr = std::max(lseErr, std::isnan(hl[row]) ? INFINITY : std::fabs(hl[row] - rl));
      }
    const bool ok = err.rel() <= 2e-2 && lseErr <= 1e-3 * 8;
    failures += !ok;
    const float gus = lab::graphUs([&](cudaStream_t st) { return f.fn(fp, st); });
    const float eus = 1e3f * lab::medianMs([&] { f.fn(fp, 0); });
    std::printf("seed fwd %s %s err=%.2e lseErr=%.2e %s graph_us=%.2f event_us=%.2f\n", f.name, shape, err.rel(), lseErr, ok ? "PASS" : "FAIL", gus, eus);
    std::fflush(stdout);
  }

  // Backward: both kernels, timed (out and lse from the last forward).
  LAB_CHECK((at::flashForwardSm80<T, D>(fp, 0)));
  const FlashBwdParams bp{dout.p, q.p, k.p, v.p, out.p, lse.p, dq.p, dk.p, dv.p, delta.p, q3, q3, k3, k3, q3, q3, k3, k3,
                          s.B, s.H, s.Hkv, s.Sq, s.Sk, D, s.causal, s.sc()};
  lab::DevBuf<uint8_t> scratch(at::flashBackwardSm90Scratch(bp));
  auto bwd90 = [&](cudaStream_t st) { return at::flashBackwardSm90<T, D>(bp, scratch.p, st); };
  auto bwd80 = [&](cudaStream_t st) { return at::flashBackwardSm80<T, D>(bp, st); };
  for (int which = 0; which < 2; ++which) {
    auto call = [&](cudaStream_t st) { return which == 0 ? bwd90(st) : bwd80(st); };
    const cudaError_t e = call(0);
    if (e != cudaSuccess) {
      std::printf("seed bwd %s %s refused: %s FAIL\n", which == 0 ? "sm90" : "sm80", shape, cudaGetErrorString(e));
      ++failures;
      continue;
    }
    LAB_CHECK(cudaDeviceSynchronize());
    const float gus = lab::graphUs(call);
    const float eus = 1e3f * lab::medianMs([&] { call(0); });
    std::printf("seed bwd %s %s PASS graph_us=%.2f event_us=%.2f\n", which == 0 ? "sm90" : "sm80", shape, gus, eus);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  lab::Shape s{1, 8, 8, 512, 512, 64, true, 0};
  if (argc == 5) s = {std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[3]), std::atoi(argv[4]), true, 0};
  if (s.D == 128) run<128>(s);
  else run<64>(s);
  std::printf("seed: %d failure(s)\n", failures);
  return failures;
}
