// Vendor libraries found at run time: cuBLASLt, NCCL and NVML are dlopen'ed, never linked, so the
// addon builds without their headers and loads without them installed. JS decides where to look (the
// CUDA toolkit, pip's nvidia-* folders, LD_LIBRARY_PATH, an environment override) and passes the
// candidates in order; this file opens the first that loads, reads its version, and keeps it open.
//
// NVML also answers live questions the CUDA runtime cannot: clocks, power, utilisation, temperature.
//
// Both entry points read their arguments through their generated readers (common/abi/runtime.gen.h,
// from the ABI table): the count and the kinds (strings, an array of strings) are checked there.
#include "common.h"
#include "common/abi/runtime.gen.h"
#include "vendor/libs_min.h"
#include "vendor/nvml_min.h"

#include <dlfcn.h>
#include <link.h>

#include <map>
#include <mutex>

namespace dw {
namespace {

std::mutex libMu;
std::map<std::string, void*> libs;  // kind -> handle

std::string loadedPath(void* handle, const std::string& fallback) {
  struct link_map* lm = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0]) return lm->l_name;
  return fallback;
}

// Reads the version of a freshly opened library; "" when the library lacks the entry point.
std::string versionOf(const std::string& kind, void* h) {
  char buf[96] = {0};
  if (kind == "cublasLt") {
    auto f = reinterpret_cast<dw_cublasLtGetVersion_t>(dlsym(h, "cublasLtGetVersion"));
    if (!f) return "";
    size_t v = f();
    snprintf(buf, sizeof buf, "%zu.%zu.%zu", v / 10000, (v / 100) % 100, v % 100);
  } else if (kind == "nccl") {
    auto f = reinterpret_cast<dw_ncclGetVersion_t>(dlsym(h, "ncclGetVersion"));
    int v = 0;
    if (!f || f(&v) != 0) return "";
    // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
    snprintf(buf, sizeof buf, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
  } else if (kind == "nvml") {
    auto init = reinterpret_cast<dw_nvmlInit_v2_t>(dlsym(h, "nvmlInit_v2"));
    auto ver = reinterpret_cast<dw_nvmlSystemGetNVMLVersion_t>(dlsym(h, "nvmlSystemGetNVMLVersion"));
    auto drv = reinterpret_cast<dw_nvmlSystemGetDriverVersion_t>(dlsym(h, "nvmlSystemGetDriverVersion"));
    if (!init || !ver || !drv || init() != 0) return "";
    char v[80] = {0}, d[80] = {0};
    ver(v, sizeof v);
    drv(d, sizeof d);
    snprintf(buf, sizeof buf, "%s (driver %s)", v, d);
  }
  return buf;
}

// openLibrary(kind, candidates[]) -> { kind, path, version, tried: [{ candidate, error }] }
Napi::Value OpenLibrary(const Napi::CallbackInfo& info) {
  const abi::OpenLibraryArgs a = abi::readOpenLibrary(info);
  Napi::Env env = info.Env();
  const std::string& kind = a.kind;
  if (kind != "cublasLt" && kind != "nccl" && kind != "nvml")
    fail(env, "INVALID_ARGUMENT", "Expected 'cublasLt', 'nccl' or 'nvml' for library kind but received '" + kind + "'");
  Napi::Object out = Napi::Object::New(env);
  Napi::Array tried = Napi::Array::New(env);
  out.Set("kind", kind);
  out.Set("path", env.Null());
  out.Set("version", env.Null());
  std::lock_guard<std::mutex> lock(libMu);
  for (const std::string& path : a.candidates) {
    dlerror();
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("candidate", path);
      const char* err = dlerror();
      t.Set("error", err ? err : "dlopen failed");
      tried.Set(tried.Length(), t);
      continue;
    }
    std::string version = versionOf(kind, h);
    if (version.empty()) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("candidate", path);
      t.Set("error", "loaded, but its version entry point is missing or failed");
      tried.Set(tried.Length(), t);
      dlclose(h);
      continue;
    }
    auto prev = libs.find(kind);
    if (prev != libs.end() && prev->second != h) dlclose(prev->second);
    libs[kind] = h;
    out.Set("path", loadedPath(h, path));
    out.Set("version", version);
    break;
  }
  out.Set("tried", tried);
  return out;
}

// nvmlDeviceStats(pciBusId) -> live clocks, power, utilisation and temperature; null fields where
// NVML does not answer (some are unsupported in VMs). Requires openLibrary('nvml', ...) first.
Napi::Value NvmlDeviceStats(const Napi::CallbackInfo& info) {
  const abi::NvmlDeviceStatsArgs a = abi::readNvmlDeviceStats(info);
  Napi::Env env = info.Env();
  const std::string& bus = a.pciBusId;
  void* h;
  {
    std::lock_guard<std::mutex> lock(libMu);
    auto it = libs.find("nvml");
    if (it == libs.end()) fail(env, "LIBRARY_UNAVAILABLE", "NVML is not loaded: openLibrary('nvml', ...) found none");
    h = it->second;
  }
  auto byBus = reinterpret_cast<dw_nvmlDeviceGetHandleByPciBusId_v2_t>(dlsym(h, "nvmlDeviceGetHandleByPciBusId_v2"));
  auto errStr = reinterpret_cast<dw_nvmlErrorString_t>(dlsym(h, "nvmlErrorString"));
  dw_nvmlDevice_t dev = nullptr;
  dw_nvmlReturn_t r = byBus ? byBus(bus.c_str(), &dev) : -1;
  if (r != 0)
    fail(env, "LIBRARY_UNAVAILABLE", "NVML has no device at PCI bus " + bus + ": " + (errStr && byBus ? errStr(r) : "entry point missing"));
  Napi::Object o = Napi::Object::New(env);
  auto clock = [&](const char* sym, int type, const char* key) {
    auto f = reinterpret_cast<dw_nvmlDeviceGetClockInfo_t>(dlsym(h, sym));
    unsigned v = 0;
    o.Set(key, f && f(dev, type, &v) == 0 ? Napi::Value(Napi::Number::New(env, v)) : env.Null());
  };
  clock("nvmlDeviceGetClockInfo", DW_NVML_CLOCK_SM, "smClockMHz");
  clock("nvmlDeviceGetClockInfo", DW_NVML_CLOCK_MEM, "memClockMHz");
  clock("nvmlDeviceGetMaxClockInfo", DW_NVML_CLOCK_SM, "maxSmClockMHz");
  clock("nvmlDeviceGetMaxClockInfo", DW_NVML_CLOCK_MEM, "maxMemClockMHz");
  unsigned v = 0;
  auto power = reinterpret_cast<dw_nvmlDeviceGetPowerUsage_t>(dlsym(h, "nvmlDeviceGetPowerUsage"));
  o.Set("powerW", power && power(dev, &v) == 0 ? Napi::Value(Napi::Number::New(env, v / 1000.0)) : env.Null());
  auto limit = reinterpret_cast<dw_nvmlDeviceGetEnforcedPowerLimit_t>(dlsym(h, "nvmlDeviceGetEnforcedPowerLimit"));
  o.Set("powerLimitW", limit && limit(dev, &v) == 0 ? Napi::Value(Napi::Number::New(env, v / 1000.0)) : env.Null());
  // The board's memory as nvidia-smi reports it (cudaMemGetInfo's total leaves out what the driver keeps).
  auto meminfo = reinterpret_cast<dw_nvmlDeviceGetMemoryInfo_t>(dlsym(h, "nvmlDeviceGetMemoryInfo"));
  dw_nvmlMemory_t m{0, 0, 0};
  bool memOk = meminfo && meminfo(dev, &m) == 0;
  o.Set("memoryTotalBytes", memOk ? Napi::Value(Napi::Number::New(env, static_cast<double>(m.total))) : env.Null());
  o.Set("memoryUsedBytes", memOk ? Napi::Value(Napi::Number::New(env, static_cast<double>(m.used))) : env.Null());
  auto temp = reinterpret_cast<dw_nvmlDeviceGetTemperature_t>(dlsym(h, "nvmlDeviceGetTemperature"));
  o.Set("temperatureC", temp && temp(dev, DW_NVML_TEMPERATURE_GPU, &v) == 0 ? Napi::Value(Napi::Number::New(env, v)) : env.Null());
  auto util = reinterpret_cast<dw_nvmlDeviceGetUtilizationRates_t>(dlsym(h, "nvmlDeviceGetUtilizationRates"));
  dw_nvmlUtilization_t u{0, 0};
  bool ok = util && util(dev, &u) == 0;
  o.Set("gpuUtilization", ok ? Napi::Value(Napi::Number::New(env, u.gpu)) : env.Null());
  o.Set("memoryUtilization", ok ? Napi::Value(Napi::Number::New(env, u.memory)) : env.Null());
  return o;
}

}  // namespace

void* vendorHandle(const char* kind) {
  std::lock_guard<std::mutex> lock(libMu);
  auto it = libs.find(kind);
  return it == libs.end() ? nullptr : it->second;
}

void initVendor(Napi::Env env, Napi::Object exports) {
  def(env, exports, "openLibrary", OpenLibrary);
  def(env, exports, "nvmlDeviceStats", NvmlDeviceStats);
}

}  // namespace dw
