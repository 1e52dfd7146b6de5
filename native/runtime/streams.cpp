// Streams, events and CUDA graphs, handed to JS as small integer handles.
//
// Handles rather than raw pointers so that a stale or made-up handle is a clear error: every handle
// is looked up in its table, and a destroyed one is gone from it. Handle 0 is the legacy default
// stream. Graphs are captured from a stream and instantiated at once; JS keeps the executable.
#include "common.h"

#include <mutex>
#include <unordered_map>

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

EventEntry eventArg(const Napi::CallbackInfo& info, size_t i) {
  uint64_t h = u64Arg(info, i, "event");
  EventEntry e;
  if (!events().get(h, &e)) badHandle(info.Env(), "event", h);
  return e;
}

Napi::Value StreamCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = intArg(info, 0, "device", 63);
  useDevice(env, device);
  cudaStream_t s;
  DW_CUDA(env, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return Napi::Number::New(env, static_cast<double>(streams().add({s, device})));
}

Napi::Value StreamDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = u64Arg(info, 0, "stream");
  StreamEntry s;
  if (h == 0 || !streams().take(h, &s)) badHandle(env, "stream", h);
  DW_CUDA(env, cudaStreamDestroy(s.stream), "cudaStreamDestroy");
  return env.Undefined();
}

Napi::Value StreamSynchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DW_CUDA(env, cudaStreamSynchronize(streamFromHandle(env, u64Arg(info, 0, "stream"))), "cudaStreamSynchronize");
  return env.Undefined();
}

Napi::Value StreamQuery(const Napi::CallbackInfo& info) {  // true when all work is done
  Napi::Env env = info.Env();
  cudaError_t e = cudaStreamQuery(streamFromHandle(env, u64Arg(info, 0, "stream")));
  if (e == cudaErrorNotReady) return Napi::Boolean::New(env, false);
  DW_CUDA(env, e, "cudaStreamQuery");
  return Napi::Boolean::New(env, true);
}

Napi::Value DeviceSynchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  useDevice(env, intArg(info, 0, "device", 63));
  DW_CUDA(env, cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return env.Undefined();
}

Napi::Value EventCreate(const Napi::CallbackInfo& info) {  // (device, timing = true)
  Napi::Env env = info.Env();
  int device = intArg(info, 0, "device", 63);
  useDevice(env, device);
  cudaEvent_t e;
  DW_CUDA(env, cudaEventCreateWithFlags(&e, boolArg(info, 1, true) ? cudaEventDefault : cudaEventDisableTiming),
          "cudaEventCreateWithFlags");
  return Napi::Number::New(env, static_cast<double>(events().add({e, device})));
}

Napi::Value EventDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = u64Arg(info, 0, "event");
  EventEntry e;
  if (!events().take(h, &e)) badHandle(env, "event", h);
  DW_CUDA(env, cudaEventDestroy(e.event), "cudaEventDestroy");
  return env.Undefined();
}

Napi::Value EventRecord(const Napi::CallbackInfo& info) {  // (event, stream)
  Napi::Env env = info.Env();
  EventEntry e = eventArg(info, 0);
  DW_CUDA(env, cudaEventRecord(e.event, streamFromHandle(env, u64Arg(info, 1, "stream"))), "cudaEventRecord");
  return env.Undefined();
}

Napi::Value EventSynchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DW_CUDA(env, cudaEventSynchronize(eventArg(info, 0).event), "cudaEventSynchronize");
  return env.Undefined();
}

Napi::Value EventElapsed(const Napi::CallbackInfo& info) {  // (start, end) -> milliseconds
  Napi::Env env = info.Env();
  EventEntry a = eventArg(info, 0), b = eventArg(info, 1);
  float ms = 0;
  DW_CUDA(env, cudaEventElapsedTime(&ms, a.event, b.event), "cudaEventElapsedTime");
  return Napi::Number::New(env, ms);
}

Napi::Value StreamWaitEvent(const Napi::CallbackInfo& info) {  // (stream, event)
  Napi::Env env = info.Env();
  cudaStream_t s = streamFromHandle(env, u64Arg(info, 0, "stream"));
  DW_CUDA(env, cudaStreamWaitEvent(s, eventArg(info, 1).event, 0), "cudaStreamWaitEvent");
  return env.Undefined();
}

Napi::Value CaptureBegin(const Napi::CallbackInfo& info) {  // (stream)
  Napi::Env env = info.Env();
  uint64_t h = u64Arg(info, 0, "stream");
  if (h == 0) fail(env, "INVALID_ARGUMENT", "Expected a created stream for graph capture but received the default stream (0), which cannot be captured");
  DW_CUDA(env, cudaStreamBeginCapture(streamFromHandle(env, h), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  return env.Undefined();
}

Napi::Value CaptureEnd(const Napi::CallbackInfo& info) {  // (stream) -> graph handle
  Napi::Env env = info.Env();
  uint64_t h = u64Arg(info, 0, "stream");
  StreamEntry s;
  if (h == 0 || !streams().get(h, &s)) badHandle(env, "stream", h);
  cudaGraph_t graph = nullptr;
  DW_CUDA(env, cudaStreamEndCapture(s.stream, &graph), "cudaStreamEndCapture");
  size_t nodes = 0;
  cudaGraphGetNodes(graph, nullptr, &nodes);
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) failCuda(env, e, "cudaGraphInstantiate");
  Napi::Object o = Napi::Object::New(env);
  o.Set("graph", static_cast<double>(graphs().add({exec, s.device, nodes})));
  o.Set("nodes", static_cast<double>(nodes));
  return o;
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {  // (graph, stream)
  Napi::Env env = info.Env();
  uint64_t h = u64Arg(info, 0, "graph");
  GraphEntry g;
  if (!graphs().get(h, &g)) badHandle(env, "graph", h);
  DW_CUDA(env, cudaGraphLaunch(g.exec, streamFromHandle(env, u64Arg(info, 1, "stream"))), "cudaGraphLaunch");
  return env.Undefined();
}

Napi::Value GraphDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = u64Arg(info, 0, "graph");
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
