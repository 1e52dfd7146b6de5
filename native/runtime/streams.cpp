// Streams, events and CUDA graphs, handed to JS as small integer handles.
//
// Handles rather than raw pointers so that a stale or made-up handle is a clear error: every handle
// is looked up in its table, and a destroyed one is gone from it. Handle 0 is the legacy default
// stream. Graphs are captured from a stream and instantiated at once; JS keeps the executable.
//
// Every entry point reads its arguments through its generated reader (common/abi/runtime.gen.h,
// from the ABI table): the count, the kinds and the ranges are checked there. A `stream` argument
// comes out of the reader as the cudaStream_t of a live handle (streamFromHandle below; a dead or
// made-up handle fails there), the legacy default stream for handle 0.
#include "common.h"
#include "common/abi/runtime.gen.h"
#include "runtime/graph_memset.h"

#include <mutex>
#include <unordered_map>
#include <vector>

namespace dw {
namespace {

template <typename T>
struct HandleTable {
  std::mutex mu;
  std::unordered_map<uint64_t, T> items;
  uint64_t next = 1;
  uint64_t add(T v) {
    std::lock_guard<std::mutex> lock(mu);
    items.emplace(next, v);
    return next++;
  }
  bool get(uint64_t h, T* out) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = items.find(h);
    if (it == items.end()) return false;
    *out = it->second;
    return true;
  }
  bool take(uint64_t h, T* out) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = items.find(h);
    if (it == items.end()) return false;
    *out = it->second;
    items.erase(it);
    return true;
  }
  // The first item for which `match` holds, taken out of the table when `erase`.
  template <typename F>
  bool findIf(F match, bool erase, T* out) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = items.begin(); it != items.end(); ++it) {
      if (!match(it->second)) continue;
      *out = it->second;
      if (erase) items.erase(it);
      return true;
    }
    return false;
  }
};

struct StreamEntry { cudaStream_t stream; int device; };
struct EventEntry { cudaEvent_t event; int device; };
struct GraphEntry { cudaGraphExec_t exec; int device; uint64_t nodes; };

HandleTable<StreamEntry>& streams() { static auto* t = new HandleTable<StreamEntry>(); return *t; }
HandleTable<EventEntry>& events() { static auto* t = new HandleTable<EventEntry>(); return *t; }
HandleTable<GraphEntry>& graphs() { static auto* t = new HandleTable<GraphEntry>(); return *t; }

[[noreturn]] void badHandle(Napi::Env env, const char* kind, uint64_t h) {
  fail(env, "INVALID_ARGUMENT", std::string("Expected a live ") + kind + " handle but received " + std::to_string(h) +
                                    " (destroyed, or never created)");
}

// The live event of handle `h` (read by the entry point's reader).
EventEntry eventOf(Napi::Env env, uint64_t h) {
  EventEntry e;
  if (!events().get(h, &e)) badHandle(env, "event", h);
  return e;
}

// The table entry of a created stream the reader gave as its cudaStream_t (the default stream, 0,
// has none: "a live stream handle ... received 0"), taken out of the table when `take`.
StreamEntry streamEntryOf(Napi::Env env, cudaStream_t stream, bool take) {
  if (stream == nullptr) badHandle(env, "stream", 0);
  StreamEntry s;
  if (!streams().findIf([&](const StreamEntry& e) { return e.stream == stream; }, take, &s))
    fail(env, "INVALID_ARGUMENT", "Expected a live stream handle but received one destroyed while the call was made");
  return s;
}

Napi::Value StreamCreate(const Napi::CallbackInfo& info) {
  const int device = static_cast<int>(abi::readStreamCreate(info).device);
  Napi::Env env = info.Env();
  useDevice(env, device);
  cudaStream_t s;
  DW_CUDA(env, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return Napi::Number::New(env, static_cast<double>(streams().add({s, device})));
}

Napi::Value StreamDestroy(const Napi::CallbackInfo& info) {
  const abi::StreamDestroyArgs a = abi::readStreamDestroy(info);
  Napi::Env env = info.Env();
  const StreamEntry s = streamEntryOf(env, a.stream, true);
  DW_CUDA(env, cudaStreamDestroy(s.stream), "cudaStreamDestroy");
  return env.Undefined();
}

Napi::Value StreamSynchronize(const Napi::CallbackInfo& info) {
  const abi::StreamSynchronizeArgs a = abi::readStreamSynchronize(info);
  Napi::Env env = info.Env();
  DW_CUDA(env, cudaStreamSynchronize(a.stream), "cudaStreamSynchronize");
  return env.Undefined();
}

Napi::Value StreamQuery(const Napi::CallbackInfo& info) {  // true when all work is done
  const abi::StreamQueryArgs a = abi::readStreamQuery(info);
  Napi::Env env = info.Env();
  cudaError_t e = cudaStreamQuery(a.stream);
  if (e == cudaErrorNotReady) return Napi::Boolean::New(env, false);
  DW_CUDA(env, e, "cudaStreamQuery");
  return Napi::Boolean::New(env, true);
}

Napi::Value DeviceSynchronize(const Napi::CallbackInfo& info) {
  const abi::DeviceSynchronizeArgs a = abi::readDeviceSynchronize(info);
  Napi::Env env = info.Env();
  useDevice(env, static_cast<int>(a.device));
  DW_CUDA(env, cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return env.Undefined();
}

Napi::Value EventCreate(const Napi::CallbackInfo& info) {  // (device, timing)
  const abi::EventCreateArgs a = abi::readEventCreate(info);
  Napi::Env env = info.Env();
  const int device = static_cast<int>(a.device);
  useDevice(env, device);
  cudaEvent_t e;
  DW_CUDA(env, cudaEventCreateWithFlags(&e, a.timing ? cudaEventDefault : cudaEventDisableTiming),
          "cudaEventCreateWithFlags");
  return Napi::Number::New(env, static_cast<double>(events().add({e, device})));
}

Napi::Value EventDestroy(const Napi::CallbackInfo& info) {
  const uint64_t h = abi::readEventDestroy(info).event;
  Napi::Env env = info.Env();
  EventEntry e;
  if (!events().take(h, &e)) badHandle(env, "event", h);
  DW_CUDA(env, cudaEventDestroy(e.event), "cudaEventDestroy");
  return env.Undefined();
}

Napi::Value EventRecord(const Napi::CallbackInfo& info) {  // (event, stream)
  const abi::EventRecordArgs a = abi::readEventRecord(info);
  Napi::Env env = info.Env();
  EventEntry e = eventOf(env, a.event);
  DW_CUDA(env, cudaEventRecord(e.event, a.stream), "cudaEventRecord");
  return env.Undefined();
}

Napi::Value EventSynchronize(const Napi::CallbackInfo& info) {
  const abi::EventSynchronizeArgs a = abi::readEventSynchronize(info);
  Napi::Env env = info.Env();
  DW_CUDA(env, cudaEventSynchronize(eventOf(env, a.event).event), "cudaEventSynchronize");
  return env.Undefined();
}

Napi::Value EventElapsed(const Napi::CallbackInfo& info) {  // (start, end) -> milliseconds
  const abi::EventElapsedArgs args = abi::readEventElapsed(info);
  Napi::Env env = info.Env();
  EventEntry a = eventOf(env, args.start), b = eventOf(env, args.end);
  float ms = 0;
  DW_CUDA(env, cudaEventElapsedTime(&ms, a.event, b.event), "cudaEventElapsedTime");
  return Napi::Number::New(env, ms);
}

Napi::Value StreamWaitEvent(const Napi::CallbackInfo& info) {  // (stream, event)
  const abi::StreamWaitEventArgs a = abi::readStreamWaitEvent(info);
  Napi::Env env = info.Env();
  DW_CUDA(env, cudaStreamWaitEvent(a.stream, eventOf(env, a.event).event, 0), "cudaStreamWaitEvent");
  return env.Undefined();
}

Napi::Value CaptureBegin(const Napi::CallbackInfo& info) {  // (stream)
  const abi::CaptureBeginArgs a = abi::readCaptureBegin(info);
  Napi::Env env = info.Env();
  // Handle 0, and only handle 0, gives the legacy default stream (nullptr).
  if (a.stream == nullptr) fail(env, "INVALID_ARGUMENT", "Expected a created stream for graph capture but received the default stream (0), which cannot be captured");
  DW_CUDA(env, cudaStreamBeginCapture(a.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  return env.Undefined();
}

Napi::Value CaptureEnd(const Napi::CallbackInfo& info) {  // (stream) -> graph handle
  const abi::CaptureEndArgs a = abi::readCaptureEnd(info);
  Napi::Env env = info.Env();
  const StreamEntry s = streamEntryOf(env, a.stream, false);
  cudaGraph_t graph = nullptr;
  DW_CUDA(env, cudaStreamEndCapture(s.stream, &graph), "cudaStreamEndCapture");
  int replaced = 0;
  cudaError_t re = replaceMemsetNodes(graph, &replaced);
  if (re != cudaSuccess) {
    cudaGraphDestroy(graph);
    failCuda(env, re, "replacing the captured graph's memset nodes");
  }
  size_t nodes = 0;
  cudaGraphGetNodes(graph, nullptr, &nodes);
  // The nodes by kind: what a launch of the graph has to queue (kernels, copies, memsets, other).
  std::vector<cudaGraphNode_t> list(nodes);
  double kinds[4] = {0, 0, 0, 0};
  if (nodes > 0 && cudaGraphGetNodes(graph, list.data(), &nodes) == cudaSuccess) {
    for (size_t i = 0; i < nodes; i++) {
      cudaGraphNodeType t = cudaGraphNodeTypeEmpty;
      cudaGraphNodeGetType(list[i], &t);
      kinds[t == cudaGraphNodeTypeKernel ? 0 : t == cudaGraphNodeTypeMemcpy ? 1 : t == cudaGraphNodeTypeMemset ? 2 : 3]++;
    }
  }
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) failCuda(env, e, "cudaGraphInstantiate");
  // Upload now, so the first launch does not pay for it.
  e = cudaGraphUpload(exec, s.stream);
  if (e != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    failCuda(env, e, "cudaGraphUpload");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("graph", static_cast<double>(graphs().add({exec, s.device, nodes})));
  o.Set("nodes", static_cast<double>(nodes));
  Napi::Object k = Napi::Object::New(env);
  k.Set("kernel", kinds[0]);
  k.Set("memcpy", kinds[1]);
  k.Set("memset", kinds[2]);
  k.Set("other", kinds[3]);
  k.Set("memsetAsKernel", static_cast<double>(replaced));
  o.Set("kinds", k);
  return o;
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {  // (graph, stream)
  const abi::GraphLaunchArgs a = abi::readGraphLaunch(info);
  Napi::Env env = info.Env();
  GraphEntry g;
  if (!graphs().get(a.graph, &g)) badHandle(env, "graph", a.graph);
  DW_CUDA(env, cudaGraphLaunch(g.exec, a.stream), "cudaGraphLaunch");
  return env.Undefined();
}

Napi::Value GraphDestroy(const Napi::CallbackInfo& info) {
  const uint64_t h = abi::readGraphDestroy(info).graph;
  Napi::Env env = info.Env();
  GraphEntry g;
  if (!graphs().take(h, &g)) badHandle(env, "graph", h);
  DW_CUDA(env, cudaGraphExecDestroy(g.exec), "cudaGraphExecDestroy");
  return env.Undefined();
}

}  // namespace

cudaStream_t streamFromHandle(Napi::Env env, uint64_t handle) {
  if (handle == 0) return 0;
  StreamEntry s;
  if (!streams().get(handle, &s)) badHandle(env, "stream", handle);
  return s.stream;
}

void initStreams(Napi::Env env, Napi::Object exports) {
  def(env, exports, "streamCreate", StreamCreate);
  def(env, exports, "streamDestroy", StreamDestroy);
  def(env, exports, "streamSynchronize", StreamSynchronize);
  def(env, exports, "streamQuery", StreamQuery);
  def(env, exports, "streamWaitEvent", StreamWaitEvent);
  def(env, exports, "deviceSynchronize", DeviceSynchronize);
  def(env, exports, "eventCreate", EventCreate);
  def(env, exports, "eventDestroy", EventDestroy);
  def(env, exports, "eventRecord", EventRecord);
  def(env, exports, "eventSynchronize", EventSynchronize);
  def(env, exports, "eventElapsed", EventElapsed);
  def(env, exports, "captureBegin", CaptureBegin);
  def(env, exports, "captureEnd", CaptureEnd);
  def(env, exports, "graphLaunch", GraphLaunch);
  def(env, exports, "graphDestroy", GraphDestroy);
}

}  // namespace dw
