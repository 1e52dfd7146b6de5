// The addon's entry point, and what it can say about CUDA and the devices: whether CUDA is usable
// here (and why not), driver and runtime versions, and each device's properties.
//
// The addon links cudart statically, so it loads on a machine with no driver at all; status() then
// says why CUDA is unavailable instead of the load failing.
//
// Every entry point reads its arguments through its generated reader (common/abi/runtime.gen.h,
// from the ABI table): the count, the kinds and the ranges are checked there.
#include "common.h"
#include "common/abi/runtime.gen.h"

#ifndef DW_CUDA_ARCHS
#define DW_CUDA_ARCHS "unknown"
#endif

namespace dw {
namespace {

Napi::Value Status(const Napi::CallbackInfo& info) {
  abi::readStatus(info);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  int driver = 0, runtime = 0, count = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  cudaError_t e = cudaGetDeviceCount(&count);
  cudaGetLastError();
  o.Set("available", e == cudaSuccess && count > 0);
  o.Set("deviceCount", e == cudaSuccess ? count : 0);
  o.Set("driverVersion", driver);
  o.Set("runtimeVersion", runtime);
  if (e != cudaSuccess) {
    o.Set("reason", std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")");
    o.Set("cudaError", cudaGetErrorName(e));
  } else if (count == 0) {
    o.Set("reason", "no CUDA device is visible");
  }
  return o;
}

int attr(Napi::Env env, cudaDeviceAttr a, int device, const char* name) {
  int v = 0;
  DW_CUDA(env, cudaDeviceGetAttribute(&v, a, device), std::string("cudaDeviceGetAttribute(") + name + ")");
  return v;
}

Napi::Value DeviceProperties(const Napi::CallbackInfo& info) {
  const abi::DevicePropertiesArgs a = abi::readDeviceProperties(info);
  Napi::Env env = info.Env();
  const int device = static_cast<int>(a.device);
  cudaDeviceProp p;
  DW_CUDA(env, cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties(" + std::to_string(device) + ")");
  char pci[32] = {0};
  cudaDeviceGetPCIBusId(pci, sizeof pci, device);
  char uuid[37];
  const unsigned char* u = reinterpret_cast<const unsigned char*>(p.uuid.bytes);
  snprintf(uuid, sizeof uuid, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
           u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", device);
  o.Set("name", p.name);
  o.Set("major", p.major);
  o.Set("minor", p.minor);
  o.Set("multiProcessorCount", p.multiProcessorCount);
  o.Set("totalGlobalMem", static_cast<double>(p.totalGlobalMem));
  o.Set("l2CacheSize", p.l2CacheSize);
  o.Set("sharedMemPerBlockOptin", static_cast<double>(p.sharedMemPerBlockOptin));
  o.Set("sharedMemPerMultiprocessor", static_cast<double>(p.sharedMemPerMultiprocessor));
  o.Set("regsPerMultiprocessor", p.regsPerMultiprocessor);
  o.Set("maxThreadsPerMultiProcessor", p.maxThreadsPerMultiProcessor);
  o.Set("warpSize", p.warpSize);
  o.Set("memoryBusWidth", p.memoryBusWidth);
  o.Set("clockRateKHz", attr(env, cudaDevAttrClockRate, device, "clock rate"));
  o.Set("memoryClockRateKHz", attr(env, cudaDevAttrMemoryClockRate, device, "memory clock rate"));
  o.Set("eccEnabled", p.ECCEnabled != 0);
  o.Set("pciBusId", pci);
  o.Set("uuid", uuid);
  return o;
}

Napi::Value MemGetInfo(const Napi::CallbackInfo& info) {
  const abi::MemGetInfoArgs a = abi::readMemGetInfo(info);
  Napi::Env env = info.Env();
  useDevice(env, static_cast<int>(a.device));
  size_t freeB = 0, total = 0;
  DW_CUDA(env, cudaMemGetInfo(&freeB, &total), "cudaMemGetInfo");
  Napi::Object o = Napi::Object::New(env);
  o.Set("free", static_cast<double>(freeB));
  o.Set("total", static_cast<double>(total));
  return o;
}

// An empty call, to measure the cost of crossing from JS into native code (and of the reader's
// count check, which every entry point pays).
Napi::Value Nop(const Napi::CallbackInfo& info) {
  abi::readNop(info);
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Object build = Napi::Object::New(env);
  build.Set("cudaArchs", DW_CUDA_ARCHS);
  build.Set("cudartVersion", CUDART_VERSION);
  build.Set("napiVersion", NAPI_VERSION);
  exports.Set("build", build);
  def(env, exports, "status", Status);
  def(env, exports, "deviceProperties", DeviceProperties);
  def(env, exports, "memGetInfo", MemGetInfo);
  def(env, exports, "nop", Nop);
  initMemory(env, exports);
  initStreams(env, exports);
  initSmoke(env, exports);
  initVendor(env, exports);
  initComm(env, exports);
  initGemm(env, exports);
  initOps_tensor(env, exports);
  initOps_nn(env, exports);
  initOpsErrors(env, exports);
  initOps_moe(env, exports);
  initQuant(env, exports);
  initAttention(env, exports);
  return exports;
}

}  // namespace dw

static Napi::Object InitDeepwell(Napi::Env env, Napi::Object exports) { return dw::Init(env, exports); }
NODE_API_MODULE(deepwell_native, InitDeepwell)
