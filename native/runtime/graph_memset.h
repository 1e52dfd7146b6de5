// A captured graph's memset nodes turned into kernel nodes (runtime/graph_memset.cu).
#pragma once
#include <cuda_runtime.h>

namespace dw {

// Replaces every memset node of `graph` by a kernel node writing the same bytes, with the same
// edges; `replaced` counts them. Nothing is replaced under DEEPWELL_GRAPH_MEMSET=keep.
cudaError_t replaceMemsetNodes(cudaGraph_t graph, int* replaced);

}  // namespace dw
