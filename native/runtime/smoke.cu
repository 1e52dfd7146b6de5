// Device smoke-test kernels: the smallest real work that proves a kernel launched, ran on the
// device we meant, and wrote every element. They carry no op semantics; the runtime's tests, the
// probe's smoke test and graph capture use them.
//
//   fillHash(ptr, offset, n, seed, stream):  u32[i] = mix(seed, i)  (i < n)
//   addU32(ptr, offset, n, value, stream):   u32[i] += value
//
// The reference for fillHash is smokeHash() in packages/kernels-native/src/smoke.ts; the two must
// stay the same function.
//
// Both read their arguments through their generated readers (common/abi/runtime.gen.h, from the
// ABI table), which check the count, the kinds and the ranges (the u32 argument in [0, 2^32 - 1]).
#include "common.h"
#include "common/abi/runtime.gen.h"

namespace dw {
namespace {

__host__ __device__ inline uint32_t mix(uint32_t seed, uint32_t i) {
  uint32_t x = seed ^ (i * 0x9E3779B9u);
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

__global__ void fillHashKernel(uint32_t* out, uint64_t n, uint32_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    out[i] = mix(seed, static_cast<uint32_t>(i));
}

__global__ void addU32Kernel(uint32_t* out, uint64_t n, uint32_t value) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    out[i] += value;
}

unsigned gridFor(uint64_t n) {
  uint64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 4096 ? (blocks ? blocks : 1) : 4096);
}

// Both launchers take (ptr, offset, n, u32 argument, stream) and differ only in the kernel.
using U32Kernel = void (*)(uint32_t*, uint64_t, uint32_t);

Napi::Value launchU32(Napi::Env env, uint64_t ptr, uint64_t off, uint64_t n, uint32_t arg, cudaStream_t s, U32Kernel kernel, const char* what) {
  if (off % 4 != 0) fail(env, "INVALID_ARGUMENT", "Expected a multiple of 4 for the offset of a u32 kernel but received " + std::to_string(off));
  auto* p = static_cast<uint32_t*>(deviceRange(env, ptr, off, n * 4, what));
  if (n) kernel<<<gridFor(n), 256, 0, s>>>(p, n, arg);
  DW_CUDA(env, cudaGetLastError(), std::string(what) + " launch");
  return env.Undefined();
}

Napi::Value FillHash(const Napi::CallbackInfo& info) {
  const abi::FillHashArgs a = abi::readFillHash(info);
  return launchU32(info.Env(), a.ptr, a.offset, a.n, static_cast<uint32_t>(a.seed), a.stream, fillHashKernel, "fillHash");
}

Napi::Value AddU32(const Napi::CallbackInfo& info) {
  const abi::AddU32Args a = abi::readAddU32(info);
  return launchU32(info.Env(), a.ptr, a.offset, a.n, static_cast<uint32_t>(a.value), a.stream, addU32Kernel, "addU32");
}

}  // namespace

void initSmoke(Napi::Env env, Napi::Object exports) {
  def(env, exports, "fillHash", FillHash);
  def(env, exports, "addU32", AddU32);
}

}  // namespace dw
