// Device memory: a caching allocator, checked copies, and pinned host memory.
//
// Why a cache: cudaMalloc/cudaFree synchronise the device and cost tens of microseconds; a training
// step allocates and frees the same sizes every iteration. Freed blocks go to a per-device free list
// keyed by size class and are handed out again without touching the driver, to a request of that
// size or up to a quarter smaller (as PyTorch's CUDACachingAllocator, much simplified: no block
// splitting, no per-stream pools yet, so all work
// that uses a buffer must be on one stream or synchronised before its free).
//
// Why a table of live allocations: JS passes device pointers as numbers. Every pointer that comes
// back is looked up, and every copy range checked against the allocation it falls in, so a stale,
// foreign or out-of-range pointer is an error instead of a corrupted device or a crash.
//
// Every entry point reads its arguments through its generated reader (common/abi/runtime.gen.h,
// from the ABI table): the count, the kinds and the ranges are checked there.
#include "common.h"
#include "common/abi/runtime.gen.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dw {
namespace {

constexpr int kMaxDevices = 64;
constexpr uint64_t kSmallLimit = 1ull << 20;  // up to 1 MiB: 512-byte classes
constexpr uint64_t kLargeGranule = 2ull << 20;  // above: 2 MiB classes
// The largest device (2^46) and pinned host (2^40) allocations asked for are the ABI table's caps.

uint64_t roundSize(uint64_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallLimit) return (bytes + 511) & ~uint64_t(511);
  return (bytes + kLargeGranule - 1) / kLargeGranule * kLargeGranule;
}

struct Block {
  int device;
  uint64_t size;       // rounded size: what the block holds
  uint64_t requested;  // what the caller asked for: the range copies may touch
};

struct DeviceStats {
  uint64_t inUse = 0, reserved = 0, peak = 0, allocations = 0, requested = 0;
  uint64_t deviceMallocs = 0, deviceFrees = 0, cacheHits = 0;
};

struct Allocator {
  std::mutex mu;
  std::unordered_map<uintptr_t, Block> live;
  std::multimap<uint64_t, uintptr_t> cached[kMaxDevices];  // size -> ptr
  DeviceStats stats[kMaxDevices];
};

// Fault injection (allocFault): a countdown over every device and pinned allocation; when it reaches
// zero that allocation fails as an out-of-memory would, so a test can fail each allocation site of a
// compiled step in turn and check the error is typed and nothing leaks. Off (0) unless a test arms it.
std::mutex faultMu;
int64_t faultCountdown = 0;
uint64_t allocationsSeen = 0;

// Counts an allocation; true when the armed fault fires on it.
bool injectedFault() {
  std::lock_guard<std::mutex> lock(faultMu);
  allocationsSeen++;
  if (faultCountdown > 0 && --faultCountdown == 0) return true;
  return false;
}

Allocator& allocator() {
  static Allocator* a = new Allocator();  // never destroyed: frees at exit would race the driver
  return *a;
}

// Returns every cached block of `device` to the driver. Caller holds the lock.
void releaseCached(int device) {
  Allocator& a = allocator();
  cudaSetDevice(device);
  for (auto& [size, ptr] : a.cached[device]) {
    cudaFree(reinterpret_cast<void*>(ptr));
    a.stats[device].reserved -= size;
    a.stats[device].deviceFrees++;
  }
  a.cached[device].clear();
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const abi::AllocArgs a = abi::readAlloc(info);
  Napi::Env env = info.Env();
  const int device = static_cast<int>(a.device);  // the reader checked [0, 63]
  const uint64_t bytes = a.bytes;  // the reader checked [0, 2^46]
  uint64_t size = roundSize(bytes);
  Allocator& al = allocator();
  std::lock_guard<std::mutex> lock(al.mu);
  DeviceStats& s = al.stats[device];
  if (injectedFault())
    fail(env, "OUT_OF_MEMORY", "injected allocation failure (allocFault): " + std::to_string(bytes) + " bytes on cuda:" + std::to_string(device));
  uintptr_t ptr = 0;
  // Best fit among the cached blocks, up to a quarter larger than asked: an exact size match alone
  // let the cache grow without bound under sizes that vary (a new class for every size seen).
  auto it = al.cached[device].lower_bound(size);
  if (it != al.cached[device].end() && it->first - size <= size / 4) {
    size = it->first;
    ptr = it->second;
    al.cached[device].erase(it);
    s.cacheHits++;
  } else {
    useDevice(env, device);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {  // give the cache back and try once more
      cudaGetLastError();
      releaseCached(device);
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      failCuda(env, e, "cudaMalloc(" + std::to_string(size) + " bytes) on cuda:" + std::to_string(device) +
                           " with " + std::to_string(s.inUse) + " bytes in use");
    }
    ptr = reinterpret_cast<uintptr_t>(p);
    s.reserved += size;
    s.deviceMallocs++;
  }
  al.live.emplace(ptr, Block{device, size, bytes});
  s.inUse += size;
  s.requested += bytes;
  s.allocations++;
  s.peak = std::max(s.peak, s.inUse);
  return Napi::Number::New(env, static_cast<double>(ptr));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  const abi::FreeArgs args = abi::readFree(info);
  Napi::Env env = info.Env();
  const uint64_t ptr = args.ptr;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(ptr);
  if (it == a.live.end())
    fail(env, "DOUBLE_FREE", "free of device pointer 0x" + [&] {
      char b[32];
      snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(ptr));
      return std::string(b);
    }() + ", which is not a live allocation (freed already, or never allocated here)");
  Block b = it->second;
  a.live.erase(it);
  DeviceStats& s = a.stats[b.device];
  s.inUse -= b.size;
  s.requested -= b.requested;
  s.allocations--;
  a.cached[b.device].emplace(b.size, ptr);
  return env.Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  const int device = static_cast<int>(abi::readEmptyCache(info).device);
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  releaseCached(device);
  return info.Env().Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  const int device = static_cast<int>(abi::readMemoryStats(info).device);
  Napi::Env env = info.Env();
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  const DeviceStats& s = a.stats[device];
  Napi::Object o = Napi::Object::New(env);
  o.Set("inUse", static_cast<double>(s.inUse));
  o.Set("reserved", static_cast<double>(s.reserved));
  o.Set("peak", static_cast<double>(s.peak));
  o.Set("allocations", static_cast<double>(s.allocations));
  o.Set("requested", static_cast<double>(s.requested));
  o.Set("cachedBlocks", static_cast<double>(a.cached[device].size()));
  o.Set("deviceMallocs", static_cast<double>(s.deviceMallocs));
  o.Set("deviceFrees", static_cast<double>(s.deviceFrees));
  o.Set("cacheHits", static_cast<double>(s.cacheHits));
  return o;
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  const int device = static_cast<int>(abi::readResetPeak(info).device);
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.stats[device].peak = a.stats[device].inUse;
  return info.Env().Undefined();
}

// ---- pinned host memory -------------------------------------------------------------------------
// Handed to JS as an external ArrayBuffer. Freed by freeHost() (which detaches the buffer) or, as a
// backstop, when the ArrayBuffer is collected.
std::mutex pinnedMu;
std::map<uintptr_t, uint64_t> pinned;  // base -> bytes

bool takePinned(void* p) {
  std::lock_guard<std::mutex> lock(pinnedMu);
  return pinned.erase(reinterpret_cast<uintptr_t>(p)) == 1;
}

bool isPinnedRange(const uint8_t* p, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(pinnedMu);
  auto it = pinned.upper_bound(reinterpret_cast<uintptr_t>(p));
  if (it == pinned.begin()) return false;
  --it;
  uintptr_t q = reinterpret_cast<uintptr_t>(p);
  return q >= it->first && q + bytes <= it->first + it->second;
}

Napi::Value HostAlloc(const Napi::CallbackInfo& info) {
  const uint64_t bytes = abi::readHostAlloc(info).bytes;
  Napi::Env env = info.Env();
  if (bytes == 0) fail(env, "INVALID_ARGUMENT", "Expected a pinned allocation size of at least 1 byte but received 0");
  if (injectedFault()) fail(env, "OUT_OF_MEMORY", "injected allocation failure (allocFault): " + std::to_string(bytes) + " pinned bytes");
  void* p = nullptr;
  DW_CUDA(env, cudaHostAlloc(&p, bytes, cudaHostAllocPortable), "cudaHostAlloc(" + std::to_string(bytes) + " bytes)");
  {
    std::lock_guard<std::mutex> lock(pinnedMu);
    pinned[reinterpret_cast<uintptr_t>(p)] = bytes;
  }
  return Napi::ArrayBuffer::New(env, p, bytes, [](Napi::Env, void* data) {
    if (takePinned(data)) cudaFreeHost(data);
  });
}

Napi::Value HostFree(const Napi::CallbackInfo& info) {
  abi::readHostFree(info);
  Napi::Env env = info.Env();
  // The reader checked the count and that `buffer` is host memory, but its view has no ArrayBuffer
  // to detach (a freed pinned buffer must not stay readable from JS): the one argument taken past
  // the reader, until the table has a kind for an ArrayBuffer itself.
  Napi::Value buffer = info[0];
  if (!buffer.IsArrayBuffer())
    fail(env, "INVALID_ARGUMENT", "Expected the ArrayBuffer returned by hostAlloc() for freeHost");
  Napi::ArrayBuffer ab = buffer.As<Napi::ArrayBuffer>();
  void* p = ab.Data();
  if (p == nullptr || !takePinned(p))
    fail(env, "DOUBLE_FREE", "freeHost of a buffer that is not live pinned memory (freed already, or not from hostAlloc)");
  ab.Detach();
  DW_CUDA(env, cudaFreeHost(p), "cudaFreeHost");
  return env.Undefined();
}

// ---- copies -------------------------------------------------------------------------------------
Napi::Value CopyHtoD(const Napi::CallbackInfo& info) {  // (ptr, offset, view) blocking
  const abi::CopyHtoDArgs a = abi::readCopyHtoD(info);
  Napi::Env env = info.Env();
  const HostView src = a.src;
  void* dst = deviceRange(env, a.ptr, a.offset, src.bytes, "host-to-device copy");
  DW_CUDA(env, cudaMemcpy(dst, src.data, src.bytes, cudaMemcpyHostToDevice),
          "cudaMemcpy host-to-device (" + std::to_string(src.bytes) + " bytes)");
  return env.Undefined();
}

Napi::Value CopyDtoH(const Napi::CallbackInfo& info) {  // (view, ptr, offset) blocking
  const abi::CopyDtoHArgs a = abi::readCopyDtoH(info);
  Napi::Env env = info.Env();
  const HostView dst = a.dst;
  void* src = deviceRange(env, a.ptr, a.offset, dst.bytes, "device-to-host copy");
  DW_CUDA(env, cudaMemcpy(dst.data, src, dst.bytes, cudaMemcpyDeviceToHost),
          "cudaMemcpy device-to-host (" + std::to_string(dst.bytes) + " bytes)");
  return env.Undefined();
}

Napi::Value CopyDtoD(const Napi::CallbackInfo& info) {  // (dst, dstOff, src, srcOff, bytes, stream)
  const abi::CopyDtoDArgs a = abi::readCopyDtoD(info);
  Napi::Env env = info.Env();
  const uint64_t bytes = a.bytes;
  cudaStream_t stream = a.stream;
  void* dst = deviceRange(env, a.dst, a.dstOffset, bytes, "device-to-device copy destination");
  void* src = deviceRange(env, a.src, a.srcOffset, bytes, "device-to-device copy source");
  DW_CUDA(env, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream),
          "cudaMemcpyAsync device-to-device (" + std::to_string(bytes) + " bytes)");
  return env.Undefined();
}

// Async copies need pinned memory: a pageable source would make them silently synchronous (and
// the caller could reuse the buffer before the copy read it).
Napi::Value CopyHtoDAsync(const Napi::CallbackInfo& info) {  // (ptr, offset, pinnedView, stream)
  const abi::CopyHtoDAsyncArgs a = abi::readCopyHtoDAsync(info);
  Napi::Env env = info.Env();
  const HostView src = a.src;
  cudaStream_t stream = a.stream;
  if (!isPinnedRange(src.data, src.bytes))
    fail(env, "INVALID_ARGUMENT", "Expected pinned memory from hostAlloc() for an async copy source but received pageable memory");
  void* dst = deviceRange(env, a.ptr, a.offset, src.bytes, "async host-to-device copy");
  DW_CUDA(env, cudaMemcpyAsync(dst, src.data, src.bytes, cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync host-to-device (" + std::to_string(src.bytes) + " bytes)");
  return env.Undefined();
}

Napi::Value CopyDtoHAsync(const Napi::CallbackInfo& info) {  // (pinnedView, ptr, offset, stream)
  const abi::CopyDtoHAsyncArgs a = abi::readCopyDtoHAsync(info);
  Napi::Env env = info.Env();
  const HostView dst = a.dst;
  cudaStream_t stream = a.stream;
  if (!isPinnedRange(dst.data, dst.bytes))
    fail(env, "INVALID_ARGUMENT", "Expected pinned memory from hostAlloc() for an async copy destination but received pageable memory");
  void* src = deviceRange(env, a.ptr, a.offset, dst.bytes, "async device-to-host copy");
  DW_CUDA(env, cudaMemcpyAsync(dst.data, src, dst.bytes, cudaMemcpyDeviceToHost, stream),
          "cudaMemcpyAsync device-to-host (" + std::to_string(dst.bytes) + " bytes)");
  return env.Undefined();
}

Napi::Value MemsetAsync(const Napi::CallbackInfo& info) {  // (ptr, offset, byteValue, bytes, stream)
  const abi::MemsetAsyncArgs a = abi::readMemsetAsync(info);
  Napi::Env env = info.Env();
  const int value = static_cast<int>(a.value);  // the reader checked [0, 255]
  const uint64_t bytes = a.bytes;
  cudaStream_t stream = a.stream;
  void* dst = deviceRange(env, a.ptr, a.offset, bytes, "memset");
  DW_CUDA(env, cudaMemsetAsync(dst, value, bytes, stream), "cudaMemsetAsync (" + std::to_string(bytes) + " bytes)");
  return env.Undefined();
}

// The position of the first id (i32) outside [0, limit) that is not `allow` (when hasAllow), or -1:
// the compiled step's check of its index inputs before a step runs. One pass a compiler vectorizes,
// block by block, the position looked for only in a block that holds a miss (a JavaScript loop took
// about 30 us for GPT-2's 2 x 16,384 ids; a step's whole host budget is 50).
Napi::Value FirstBadId(const Napi::CallbackInfo& info) {
  const abi::FirstBadIdArgs a = abi::readFirstBadId(info);
  Napi::Env env = info.Env();
  if (a.ids.bytes % sizeof(int32_t) != 0 || reinterpret_cast<uintptr_t>(a.ids.data) % alignof(int32_t) != 0)
    fail(env, "INVALID_ARGUMENT", "Expected an Int32Array of ids (4-byte elements, aligned) but received " + std::to_string(a.ids.bytes) + " bytes");
  const int32_t* ids = reinterpret_cast<const int32_t*>(a.ids.data);
  const size_t n = a.ids.bytes / sizeof(int32_t);
  const uint32_t limit = static_cast<uint32_t>(a.limit);
  const int32_t allow = static_cast<int32_t>(a.allow);
  const uint32_t useAllow = a.hasAllow ? 1u : 0u;
  auto bad = [&](int32_t v) -> uint32_t { return static_cast<uint32_t>(static_cast<uint32_t>(v) >= limit) & ~(useAllow & static_cast<uint32_t>(v == allow)); };
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = b + kBlock < n ? b + kBlock : n;
    uint32_t any = 0;
    for (size_t i = b; i < e; i++) any |= bad(ids[i]);
    if (any & 1u)
      for (size_t i = b; i < e; i++)
        if (bad(ids[i]) & 1u) return Napi::Number::New(env, static_cast<double>(i));
  }
  return Napi::Number::New(env, -1);
}

// Pointer query for tests and debugging: {device, bytes, capacity} of a live allocation, or null.
Napi::Value Lookup(const Napi::CallbackInfo& info) {
  const uint64_t ptr = abi::readLookup(info).ptr;
  Napi::Env env = info.Env();
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(ptr);
  if (it == a.live.end()) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", it->second.device);
  o.Set("bytes", static_cast<double>(it->second.requested));
  o.Set("capacity", static_cast<double>(it->second.size));
  return o;
}

Napi::Value AllocFault(const Napi::CallbackInfo& info) {
  const int32_t after = abi::readAllocFault(info).after;
  Napi::Env env = info.Env();
  if (after < 0) fail(env, "INVALID_ARGUMENT", "Expected a count >= 0 for allocFault's after but received " + std::to_string(after));
  std::lock_guard<std::mutex> lock(faultMu);
  const uint64_t seen = allocationsSeen;
  allocationsSeen = 0;
  faultCountdown = after;
  return Napi::Number::New(env, static_cast<double>(seen));
}

}  // namespace

void* deviceRange(Napi::Env env, uint64_t ptr, uint64_t offset, uint64_t bytes, const char* what) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(ptr);
  if (it == a.live.end())
    fail(env, "INVALID_ARGUMENT", std::string("Expected a live device allocation for ") + what +
                                      " but received a pointer that is not one (freed, or never allocated here)");
  const Block& b = it->second;
  if (offset > b.requested || bytes > b.requested - offset)
    fail(env, "SHAPE_MISMATCH", std::string("Expected at most ") + std::to_string(offset > b.requested ? 0 : b.requested - offset) +
                                    " bytes for " + what + " at offset " + std::to_string(offset) + " of a " +
                                    std::to_string(b.requested) + "-byte allocation but received " + std::to_string(bytes));
  useDevice(env, b.device);
  return reinterpret_cast<uint8_t*>(ptr) + offset;
}

void initMemory(Napi::Env env, Napi::Object exports) {
  def(env, exports, "alloc", Alloc);
  def(env, exports, "free", Free);
  def(env, exports, "emptyCache", EmptyCache);
  def(env, exports, "memoryStats", MemoryStats);
  def(env, exports, "resetPeak", ResetPeak);
  def(env, exports, "hostAlloc", HostAlloc);
  def(env, exports, "hostFree", HostFree);
  def(env, exports, "copyHtoD", CopyHtoD);
  def(env, exports, "copyDtoH", CopyDtoH);
  def(env, exports, "copyDtoD", CopyDtoD);
  def(env, exports, "copyHtoDAsync", CopyHtoDAsync);
  def(env, exports, "copyDtoHAsync", CopyDtoHAsync);
  def(env, exports, "memsetAsync", MemsetAsync);
  def(env, exports, "firstBadId", FirstBadId);
  def(env, exports, "lookup", Lookup);
  def(env, exports, "allocFault", AllocFault);
}

}  // namespace dw
