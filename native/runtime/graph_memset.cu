// A captured graph's memset nodes turned into kernel nodes (streams.cpp calls this between capture
// and instantiation).
//
// Why: a replayed training step's launch cost on the host is the cost of cudaGraphLaunch, and on an
// H200 with driver 580 it grew steeply with GPT-2's graph (487 nodes: 382 kernels, 104 memsets, most
// of them cuBLASLt's) while a graph of kernels only stays cheap (bench/graph-launch.mjs measures
// both). A memset node becomes a kernel node that writes the same bytes, with the same incoming and
// outgoing edges (their edge data kept), so the graph's order and results are unchanged.
// DEEPWELL_GRAPH_MEMSET=keep leaves the memset nodes as they are (for that benchmark).
#include "runtime/graph_memset.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace dw {
namespace {

// Writes `height` rows of `width` elements of `elemSize` bytes (1, 2 or 4), all `value`, rows
// `pitch` bytes apart; as 4-byte words where every row starts 4-byte aligned and is whole words.
__global__ void graphMemsetK(unsigned char* dst, size_t pitch, unsigned int value, unsigned int elemSize, size_t width, size_t height, int words) {
  const size_t rowBytes = width * elemSize;
  const size_t perRow = words ? rowBytes / 4 : rowBytes;
  const size_t total = perRow * height;
  unsigned int word = value;
  if (elemSize == 1) word = (value & 0xffu) * 0x01010101u;
  if (elemSize == 2) word = (value & 0xffffu) | (value << 16);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const size_t r = i / perRow, c = i - r * perRow;
    unsigned char* row = dst + r * pitch;
    if (words) reinterpret_cast<unsigned int*>(row)[c] = word;
    else row[c] = static_cast<unsigned char>(word >> (8 * (c % 4)));  // little-endian bytes of the pattern
  }
}

bool keepMemsets() {
  const char* e = std::getenv("DEEPWELL_GRAPH_MEMSET");
  return e && std::strcmp(e, "keep") == 0;
}

}  // namespace

cudaError_t replaceMemsetNodes(cudaGraph_t graph, int* replaced) {
  *replaced = 0;
  if (keepMemsets()) return cudaSuccess;
  size_t n = 0;
  cudaError_t e = cudaGraphGetNodes(graph, nullptr, &n);
  if (e != cudaSuccess || n == 0) return e;
  std::vector<cudaGraphNode_t> nodes(n);
  if ((e = cudaGraphGetNodes(graph, nodes.data(), &n)) != cudaSuccess) return e;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType t;
    if ((e = cudaGraphNodeGetType(node, &t)) != cudaSuccess) return e;
    if (t != cudaGraphNodeTypeMemset) continue;
    cudaMemsetParams m{};
    if ((e = cudaGraphMemsetNodeGetParams(node, &m)) != cudaSuccess) return e;
    if (m.elementSize != 1 && m.elementSize != 2 && m.elementSize != 4) continue;  // not a memset CUDA makes; leave it
    // The node's edges, with their data.
    size_t nin = 0, nout = 0;
    if ((e = cudaGraphNodeGetDependencies(node, nullptr, nullptr, &nin)) != cudaSuccess) return e;
    if ((e = cudaGraphNodeGetDependentNodes(node, nullptr, nullptr, &nout)) != cudaSuccess) return e;
    std::vector<cudaGraphNode_t> in(nin), out(nout);
    std::vector<cudaGraphEdgeData> inData(nin), outData(nout);
    if (nin && (e = cudaGraphNodeGetDependencies(node, in.data(), inData.data(), &nin)) != cudaSuccess) return e;
    if (nout && (e = cudaGraphNodeGetDependentNodes(node, out.data(), outData.data(), &nout)) != cudaSuccess) return e;
    // The kernel that writes the same bytes.
    unsigned char* dst = static_cast<unsigned char*>(m.dst);
    size_t pitch = m.height > 1 ? m.pitch : 0;
    unsigned int value = m.value, elemSize = m.elementSize;
    size_t width = m.width, height = m.height;
    const size_t rowBytes = width * elemSize;
    int words = (reinterpret_cast<uintptr_t>(dst) % 4 == 0 && rowBytes % 4 == 0 && (height <= 1 || pitch % 4 == 0)) ? 1 : 0;
    const size_t items = (words ? rowBytes / 4 : rowBytes) * height;
    const unsigned threads = 256;
    size_t blocks = (items + threads - 1) / threads;
    if (blocks > 1024) blocks = 1024;
    if (blocks < 1) blocks = 1;
    void* args[] = {&dst, &pitch, &value, &elemSize, &width, &height, &words};
    cudaKernelNodeParams kp{};
    kp.func = reinterpret_cast<void*>(graphMemsetK);
    kp.gridDim = dim3(static_cast<unsigned>(blocks));
    kp.blockDim = dim3(threads);
    kp.sharedMemBytes = 0;
    kp.kernelParams = args;
    cudaGraphNode_t k = nullptr;
    if ((e = cudaGraphAddKernelNode(&k, graph, nullptr, 0, &kp)) != cudaSuccess) return e;
    for (size_t i = 0; i < nin; i++)
      if ((e = cudaGraphAddDependencies(graph, &in[i], &k, &inData[i], 1)) != cudaSuccess) return e;
    for (size_t i = 0; i < nout; i++)
      if ((e = cudaGraphAddDependencies(graph, &k, &out[i], &outData[i], 1)) != cudaSuccess) return e;
    if ((e = cudaGraphDestroyNode(node)) != cudaSuccess) return e;
    ++*replaced;
  }
  return cudaSuccess;
}

}  // namespace dw
