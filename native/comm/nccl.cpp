// NCCL communicators (issue 22): the entry points of kernels-native's Communicator.
//
//   ncclGetUniqueId(id)                                     rank 0's id into a 128-byte view
//   ncclCommInitRank(device, worldSize, rank, id, timeoutMs) -> a handle
//   ncclAllReduce(comm, stream, dtype, op, count, send, recv)
//   ncclReduceScatter(comm, stream, dtype, op, recvCount, send, recv)    send: recvCount · worldSize
//   ncclAllGather(comm, stream, dtype, sendCount, send, recv)            recv: sendCount · worldSize
//   ncclBroadcast(comm, stream, dtype, root, count, send, recv)
//   ncclCommCheck(comm) -> "" or the communicator's asynchronous error
//   ncclCommAbort(comm), ncclCommDestroy(comm)
//
// libnccl.so.2 is dlopen'ed by runtime/vendor.cpp (openLibrary('nccl', ...)); nothing here links it.
// Communicators are non-blocking (NCCL_COMM_BLOCKING=0, set before NCCL's first use unless the
// user set it): a call that answers ncclInProgress is polled through ncclCommGetAsyncError until
// it finishes or the communicator's timeout passes, and then the communicator is aborted and the
// call fails with TIMEOUT, so a peer that never comes or dies cannot hang the process. Handles are
// ids into a table: an unknown or destroyed handle is an INVALID_ARGUMENT, never a dereference.
// NCCL's errors become DeepwellErrors: a remote or system error PEER_FAILED (a peer's failure), a
// CUDA error CUDA_ERROR, bad arguments INVALID_ARGUMENT, the rest INTERNAL, each with NCCL's text.
#include "runtime/common.h"
#include "comm/nccl_min.h"
#include "common/abi/comm.gen.h"
#include "common/abi_reader.h"

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace dw {
void* vendorHandle(const char* kind);

namespace {

struct Rec {
  nccl::Comm comm;
  int world, rank, device;
  uint64_t timeoutMs;
};
std::mutex mu;
std::map<uint64_t, Rec> comms;
uint64_t nextHandle = 1;

// Drops an aborted communicator from the table (whatever handle it had): later calls with its handle
// are refused, and ending it again is a no-op, never a second free.
void forget(nccl::Comm comm) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = comms.begin(); it != comms.end();) it = it->second.comm == comm ? comms.erase(it) : std::next(it);
}

template <typename F>
F sym(Napi::Env env, const char* name) {
  void* h = vendorHandle("nccl");
  if (h == nullptr) fail(env, "LIBRARY_UNAVAILABLE", "NCCL is not loaded: openLibrary('nccl', ...) found no libnccl.so.2 (set DEEPWELL_NCCL_PATH, or install nvidia-nccl)");
  void* f = dlsym(h, name);
  if (f == nullptr) fail(env, "LIBRARY_UNAVAILABLE", std::string("The loaded NCCL has no ") + name);
  return reinterpret_cast<F>(f);
}

const char* codeOf(nccl::Result r) {
  switch (r) {
    case nccl::kRemoteError:
    case nccl::kSystemError: return "PEER_FAILED";
    case nccl::kUnhandledCudaError: return "CUDA_ERROR";
    case nccl::kInvalidArgument:
    case nccl::kInvalidUsage: return "INVALID_ARGUMENT";
    default: return "INTERNAL";
  }
}

[[noreturn]] void failNccl(Napi::Env env, nccl::Result r, nccl::Comm comm, const std::string& what) {
  const auto errStr = sym<nccl::GetErrorStringFn>(env, "ncclGetErrorString");
  std::string text = std::string(what) + " failed: " + errStr(r);
  if (comm != nullptr) {
    void* h = vendorHandle("nccl");
    if (auto last = reinterpret_cast<nccl::GetLastErrorFn>(h ? dlsym(h, "ncclGetLastError") : nullptr)) {
      const char* detail = last(comm);
      if (detail != nullptr && detail[0] != '\0') text += std::string(" (") + detail + ")";
    }
  }
  fail(env, codeOf(r), text);
}

// Polls a non-blocking communicator until its pending work finishes (or its error), up to the
// timeout; a timeout aborts it and fails with TIMEOUT.
// During ncclCommInitRank (abortOnTimeout false) the communicator is not aborted: on the H200
// (2026-12-05) ncclCommAbort of an init whose peer never came did not return (NCCL's bootstrap still
// waits in accept), so the call fails with TIMEOUT and leaves the half-made communicator to the
// process's exit, which the error tells the caller to do.
void settle(Napi::Env env, nccl::Result r, nccl::Comm comm, uint64_t timeoutMs, const std::string& what, bool abortOnTimeout = true) {
  if (r == nccl::kSuccess) return;
  if (r != nccl::kInProgress) failNccl(env, r, comm, what);
  const auto asyncErr = sym<nccl::CommGetAsyncErrorFn>(env, "ncclCommGetAsyncError");
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    nccl::Result state = nccl::kInProgress;
    const nccl::Result q = asyncErr(comm, &state);
    if (q != nccl::kSuccess) failNccl(env, q, comm, what + " (ncclCommGetAsyncError)");
    if (state == nccl::kSuccess) return;
    if (state != nccl::kInProgress) failNccl(env, state, comm, what);
    if (std::chrono::steady_clock::now() > until) {
      if (!abortOnTimeout) {
        fail(env, "TIMEOUT", what + " did not finish within " + std::to_string(timeoutMs) +
                                 " ms (a peer that never came?); the half-made communicator cannot be ended safely while NCCL waits for its peers: end this process");
      }
      sym<nccl::CommFn>(env, "ncclCommAbort")(comm);
      forget(comm);
      fail(env, "TIMEOUT", what + " did not finish within " + std::to_string(timeoutMs) + " ms (a peer that never came or stopped?); the communicator was aborted");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Rec lookup(Napi::Env env, uint64_t handle, const char* what) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = comms.find(handle);
  if (it == comms.end()) fail(env, "INVALID_ARGUMENT", std::string("Expected a live communicator handle for ") + what + " but received " + std::to_string(handle) + " (never created, destroyed, or aborted after a failure)");
  return it->second;
}

int ncclType(Napi::Env env, int dtype) {
  switch (dtype) {
    case abi::dtype::f32: return nccl::kFloat32;
    case abi::dtype::bf16: return nccl::kBfloat16;
    case abi::dtype::f16: return nccl::kFloat16;
    case abi::dtype::i32: return nccl::kInt32;
    default: fail(env, "INVALID_DTYPE", "Expected f32, bf16, f16 or i32 for an NCCL collective but received dtype code " + std::to_string(dtype));
  }
}
size_t bytesOf(int dtype) { return dtype == abi::dtype::f32 || dtype == abi::dtype::i32 ? 4 : 2; }

Napi::Value GetUniqueId(const Napi::CallbackInfo& info) {
  const abi::NcclGetUniqueIdArgs a = abi::readNcclGetUniqueId(info);
  Napi::Env env = info.Env();
  if (a.id.bytes != sizeof(nccl::UniqueId)) fail(env, "INVALID_ARGUMENT", "Expected a view of 128 bytes for the NCCL unique id but received " + std::to_string(a.id.bytes));
  nccl::UniqueId id{};
  const nccl::Result r = sym<nccl::GetUniqueIdFn>(env, "ncclGetUniqueId")(&id);
  if (r != nccl::kSuccess) failNccl(env, r, nullptr, "ncclGetUniqueId");
  std::memcpy(a.id.data, id.internal, sizeof id.internal);
  return env.Undefined();
}

Napi::Value CommInitRank(const Napi::CallbackInfo& info) {
  const abi::NcclCommInitRankArgs a = abi::readNcclCommInitRank(info);
  Napi::Env env = info.Env();
  if (a.rank >= a.worldSize) fail(env, "INVALID_ARGUMENT", "Expected a rank in [0, " + std::to_string(a.worldSize) + ") for ncclCommInitRank but received " + std::to_string(a.rank));
  if (a.id.bytes != sizeof(nccl::UniqueId)) fail(env, "INVALID_ARGUMENT", "Expected a view of 128 bytes for the NCCL unique id but received " + std::to_string(a.id.bytes));
  // Non-blocking by NCCL's config (blocking = 0), and inside a group: outside one NCCL runs the init
  // job on the calling thread whatever the config (src/group.cc ncclAsyncLaunch), which on the H200
  // (2026-12-05) left a rank whose peer never came blocked in the bootstrap for good. In a group,
  // ncclGroupEnd answers ncclInProgress and the init runs on NCCL's thread while settle() polls it
  // against the timeout.
  const auto init = sym<nccl::CommInitRankConfigFn>(env, "ncclCommInitRankConfig");
  const auto groupStart = sym<nccl::GroupFn>(env, "ncclGroupStart");
  const auto groupEnd = sym<nccl::GroupFn>(env, "ncclGroupEnd");
  useDevice(env, static_cast<int>(a.device));
  nccl::UniqueId id{};
  std::memcpy(id.internal, a.id.data, sizeof id.internal);
  nccl::ConfigV217 config{sizeof(nccl::ConfigV217), nccl::kConfigMagic, nccl::kConfigVersion217, 0, nccl::kConfigUndefInt, nccl::kConfigUndefInt, nccl::kConfigUndefInt, nullptr};
  nccl::Comm comm = nullptr;
  nccl::Result r = groupStart();
  if (r != nccl::kSuccess) failNccl(env, r, nullptr, "ncclGroupStart (ncclCommInitRank)");
  const nccl::Result ri = init(&comm, static_cast<int>(a.worldSize), id, static_cast<int>(a.rank), &config);
  r = groupEnd();
  if (ri != nccl::kSuccess && ri != nccl::kInProgress) r = ri;
  if (comm == nullptr) failNccl(env, r == nccl::kSuccess ? nccl::kInternalError : r, nullptr, "ncclCommInitRank");
  const std::string what = "ncclCommInitRank (rank " + std::to_string(a.rank) + " of " + std::to_string(a.worldSize) + ")";
  settle(env, r, comm, a.timeoutMs, what, false);
  std::lock_guard<std::mutex> lock(mu);
  const uint64_t handle = nextHandle++;
  comms[handle] = Rec{comm, static_cast<int>(a.worldSize), static_cast<int>(a.rank), static_cast<int>(a.device), a.timeoutMs};
  return Napi::Number::New(env, static_cast<double>(handle));
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  const abi::NcclAllReduceArgs a = abi::readNcclAllReduce(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclAllReduce");
  const int t = ncclType(env, static_cast<int>(a.dtype));
  useDevice(env, c.device);
  const size_t b = bytesOf(static_cast<int>(a.dtype));
  settle(env, sym<nccl::AllReduceFn>(env, "ncclAllReduce")(a.send.ptr<void>(env, a.count, b), a.recv.ptr<void>(env, a.count, b), a.count, t, static_cast<int>(a.op), c.comm, a.stream), c.comm,
         c.timeoutMs, "ncclAllReduce");
  return env.Undefined();
}

// One bucket of a data-parallel step: the tensors' all-reduces as one NCCL group (one launch). Every
// pointer and size is checked before NCCL sees any; a failure inside the group still ends it.
Napi::Value AllReduceMany(const Napi::CallbackInfo& info) {
  const abi::NcclAllReduceManyArgs a = abi::readNcclAllReduceMany(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclAllReduceMany");
  if (a.worldSize != static_cast<uint64_t>(c.world)) {
    fail(env, "INVALID_ARGUMENT", "Expected the communicator's world of " + std::to_string(c.world) + " ranks for ncclAllReduceMany (the step was built for " + std::to_string(a.worldSize) +
                                      ")");
  }
  if (a.tensors.empty()) fail(env, "INVALID_ARGUMENT", "Expected at least one tensor for ncclAllReduceMany but received none");
  struct Call {
    const void* send;
    void* recv;
    size_t n;
    int type;
  };
  std::vector<Call> calls;
  calls.reserve(a.tensors.size());
  for (const auto& t : a.tensors) {
    const size_t b = bytesOf(static_cast<int>(t.dtype));
    calls.push_back({t.send.ptr<void>(env, t.n, b), t.recv.ptr<void>(env, t.n, b), static_cast<size_t>(t.n), ncclType(env, static_cast<int>(t.dtype))});
  }
  useDevice(env, c.device);
  const auto start = sym<nccl::GroupFn>(env, "ncclGroupStart");
  const auto end = sym<nccl::GroupFn>(env, "ncclGroupEnd");
  const auto allReduce = sym<nccl::AllReduceFn>(env, "ncclAllReduce");
  nccl::Result r = start();
  if (r != nccl::kSuccess) failNccl(env, r, c.comm, "ncclGroupStart");
  for (const Call& k : calls) {
    r = allReduce(k.send, k.recv, k.n, k.type, static_cast<int>(a.op), c.comm, a.stream);
    if (r != nccl::kSuccess && r != nccl::kInProgress) {
      end();
      failNccl(env, r, c.comm, "ncclAllReduce (in ncclAllReduceMany)");
    }
  }
  settle(env, end(), c.comm, c.timeoutMs, "ncclAllReduceMany (ncclGroupEnd of " + std::to_string(calls.size()) + " all-reduces)");
  return env.Undefined();
}

// ncclStreamWait(comm, stream): the stream done, or the communicator aborted with a typed error.
Napi::Value StreamWait(const Napi::CallbackInfo& info) {
  const abi::NcclStreamWaitArgs a = abi::readNcclStreamWait(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclStreamWait");
  useDevice(env, c.device);
  const auto asyncErr = sym<nccl::CommGetAsyncErrorFn>(env, "ncclCommGetAsyncError");
  const auto abortComm = [&]() {
    sym<nccl::CommFn>(env, "ncclCommAbort")(c.comm);
    forget(c.comm);
  };
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(c.timeoutMs);
  const auto spinUntil = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
  for (;;) {
    const cudaError_t q = cudaStreamQuery(a.stream);
    if (q == cudaSuccess) return env.Undefined();
    if (q != cudaErrorNotReady) {
      cudaGetLastError();
      fail(env, "CUDA_ERROR", std::string("ncclStreamWait: the stream failed: ") + cudaGetErrorString(q));
    }
    nccl::Result state = nccl::kSuccess;
    const nccl::Result r = asyncErr(c.comm, &state);
    if (r != nccl::kSuccess || (state != nccl::kSuccess && state != nccl::kInProgress)) {
      const nccl::Result bad = r != nccl::kSuccess ? r : state;
      const auto errStr = sym<nccl::GetErrorStringFn>(env, "ncclGetErrorString");
      const std::string text = errStr(bad);
      abortComm();
      fail(env, "PEER_FAILED", "NCCL communicator (rank " + std::to_string(c.rank) + " of " + std::to_string(c.world) + ") failed while the step ran: " + text +
                                   "; the communicator was aborted (a peer stopped?)");
    }
    if (std::chrono::steady_clock::now() > until) {
      abortComm();
      fail(env, "TIMEOUT", "ncclStreamWait: the step did not finish within " + std::to_string(c.timeoutMs) + " ms (rank " + std::to_string(c.rank) + " of " + std::to_string(c.world) +
                               "; a peer that stopped?); the communicator was aborted");
    }
    // Every step ends here (the compiled step's wait): spin for the first 2 ms, then sleep in steps
    // of 20 µs, so the wait adds at most that to a step, while a failure (seconds) is still seen.
    if (std::chrono::steady_clock::now() > spinUntil) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  const abi::NcclReduceScatterArgs a = abi::readNcclReduceScatter(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclReduceScatter");
  const int t = ncclType(env, static_cast<int>(a.dtype));
  const uint64_t total = a.recvCount * static_cast<uint64_t>(c.world);
  useDevice(env, c.device);
  const size_t b = bytesOf(static_cast<int>(a.dtype));
  settle(env, sym<nccl::ReduceScatterFn>(env, "ncclReduceScatter")(a.send.ptr<void>(env, total, b), a.recv.ptr<void>(env, a.recvCount, b), a.recvCount, t, static_cast<int>(a.op), c.comm, a.stream),
         c.comm, c.timeoutMs, "ncclReduceScatter");
  return env.Undefined();
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  const abi::NcclAllGatherArgs a = abi::readNcclAllGather(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclAllGather");
  const int t = ncclType(env, static_cast<int>(a.dtype));
  const uint64_t total = a.sendCount * static_cast<uint64_t>(c.world);
  useDevice(env, c.device);
  const size_t b = bytesOf(static_cast<int>(a.dtype));
  settle(env, sym<nccl::AllGatherFn>(env, "ncclAllGather")(a.send.ptr<void>(env, a.sendCount, b), a.recv.ptr<void>(env, total, b), a.sendCount, t, c.comm, a.stream), c.comm, c.timeoutMs,
         "ncclAllGather");
  return env.Undefined();
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  const abi::NcclBroadcastArgs a = abi::readNcclBroadcast(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclBroadcast");
  if (a.root >= static_cast<uint64_t>(c.world)) fail(env, "INVALID_ARGUMENT", "Expected a root in [0, " + std::to_string(c.world) + ") for ncclBroadcast but received " + std::to_string(a.root));
  const int t = ncclType(env, static_cast<int>(a.dtype));
  useDevice(env, c.device);
  const size_t b = bytesOf(static_cast<int>(a.dtype));
  settle(env, sym<nccl::BroadcastFn>(env, "ncclBroadcast")(a.send.ptr<void>(env, a.count, b), a.recv.ptr<void>(env, a.count, b), a.count, t, static_cast<int>(a.root), c.comm, a.stream), c.comm,
         c.timeoutMs, "ncclBroadcast");
  return env.Undefined();
}

Napi::Value CommCheck(const Napi::CallbackInfo& info) {
  const abi::NcclCommCheckArgs a = abi::readNcclCommCheck(info);
  Napi::Env env = info.Env();
  const Rec c = lookup(env, a.comm, "ncclCommCheck");
  nccl::Result state = nccl::kSuccess;
  const nccl::Result q = sym<nccl::CommGetAsyncErrorFn>(env, "ncclCommGetAsyncError")(c.comm, &state);
  if (q != nccl::kSuccess) failNccl(env, q, c.comm, "ncclCommGetAsyncError");
  if (state == nccl::kSuccess || state == nccl::kInProgress) return Napi::String::New(env, "");
  return Napi::String::New(env, std::string(codeOf(state)) + ": " + sym<nccl::GetErrorStringFn>(env, "ncclGetErrorString")(state));
}

// Abort (any state, returns at once) or destroy (after pending work); the handle is dead after either.
Napi::Value endComm(Napi::Env env, uint64_t handle, bool abort) {
  const char* what = abort ? "ncclCommAbort" : "ncclCommDestroy";
  {
    // A handle this process issued whose communicator has ended (aborted after a failure): nothing to do.
    std::lock_guard<std::mutex> lock(mu);
    if (handle >= 1 && handle < nextHandle && comms.find(handle) == comms.end()) return env.Undefined();
  }
  const Rec c = lookup(env, handle, what);
  {
    std::lock_guard<std::mutex> lock(mu);
    comms.erase(handle);
  }
  useDevice(env, c.device);
  const nccl::Result r = sym<nccl::CommFn>(env, what)(c.comm);
  if (r != nccl::kSuccess && r != nccl::kInProgress) failNccl(env, r, nullptr, what);
  return env.Undefined();
}
Napi::Value CommAbort(const Napi::CallbackInfo& info) { return endComm(info.Env(), abi::readNcclCommAbort(info).comm, true); }
Napi::Value CommDestroy(const Napi::CallbackInfo& info) { return endComm(info.Env(), abi::readNcclCommDestroy(info).comm, false); }

}  // namespace

void initComm(Napi::Env env, Napi::Object exports) {
  def(env, exports, "ncclGetUniqueId", GetUniqueId);
  def(env, exports, "ncclCommInitRank", CommInitRank);
  def(env, exports, "ncclAllReduceMany", AllReduceMany);
  def(env, exports, "ncclStreamWait", StreamWait);
  def(env, exports, "ncclAllReduce", AllReduce);
  def(env, exports, "ncclReduceScatter", ReduceScatter);
  def(env, exports, "ncclAllGather", AllGather);
  def(env, exports, "ncclBroadcast", Broadcast);
  def(env, exports, "ncclCommCheck", CommCheck);
  def(env, exports, "ncclCommAbort", CommAbort);
  def(env, exports, "ncclCommDestroy", CommDestroy);
}

}  // namespace dw
