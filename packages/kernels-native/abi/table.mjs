// The native ABI: every entry point of the addon, declared once. scripts/gen-abi.mjs turns this
// table into both sides of the boundary, so no signature or code is written twice by hand:
//   native/common/abi.gen.h           C++: one struct and one checked reader per entry point
//                                     (argument count, each argument's kind and range), and the codes
//   packages/kernels-native/src/abi.gen.ts
//                                     TS: the codes, a typed signature per entry point, the binding
//                                     that flattens tensors into numbers, and this table as data
// A test runs the generator in --check mode, so CI fails when the generated files are stale.
//
// An argument is 'name:kind'. Kinds:
//   u64           a non-negative integer (sizes, counts, handles); 'u64<=N' caps it at N
//   i32           a signed integer in the i32 range
//   f64           any number (attributes: eps, alpha, ...)
//   flag          0 or 1
//   bool          a JS boolean
//   stream        a stream handle from streamCreate (0: the legacy default stream)
//   dtype         a storage dtype code (codes.dtype); fdtype: a float one only
//   enum.NAME     a code of codes.NAME
//   tensor        device memory as (allocation base, byte offset): two numbers on the wire; the
//                 native side checks the range against the live allocation once it knows its size
//   tensor?       the same, or none as (0, 0)
//   workspace     scratch device memory the plan gave the call: (base, offset, bytes)
//   u64[LEN], tensor[LEN]   LEN of them, LEN being an earlier argument's name
//   view          a TypedArray, DataView or ArrayBuffer (host memory)
//   string, string[]
// A group { name, len, args } repeats its arguments LEN times (per-tensor arguments of a
// multi-tensor kernel). `returns` is the TS type of the result (default void); `file` is where the
// entry point is defined.

export const codes = {
  // Storage dtypes of every float/index tensor a kernel reads or writes.
  dtype: { f32: 0, bf16: 1, f16: 2, i32: 3 },
  // Quantization formats of @deepwell/precision (native/quant).
  format: {
    'mxfp8-e4m3': 0, 'mxfp8-e5m2': 1, mxfp4: 2, nvfp4: 3, 'fp8-e4m3': 4, 'fp8-e5m2': 5, 'fp8-block1x128': 6, 'fp8-block128x128': 7,
  },
  // How an MX block scale is chosen: OCP MX 'floor', or 'rceil' (round the ratio up).
  scaleMode: { floor: 0, rceil: 1 },
  // Element formats of scaledGemmLt's operands: FP8, and FP4 E2M1 (NVFP4's elements, two per
  // byte; the enum keeps its first name).
  fp8: { e4m3: 0, e5m2: 1, e2m1: 2 },
  // How a scaledGemmLt operand is scaled (the scale layouts: native/gemm/gemm_scaled.cpp):
  // one f32 for the tensor, one per row, one per 1 × 128 block along K, one per 128 × 128 tile;
  // Blackwell's block-scaled modes: an E8M0 code per 32 of K (MXFP8) or an E4M3 code per 16 of K
  // (NVFP4), in cuBLASLt's 128 × 4 tiles.
  scaling: { tensor: 0, row: 1, block1x128: 2, block128x128: 3, mx32: 4, nv16: 5 },
  // cuBLASLt epilogues of gemmLt (dgelu: D = product * gelu'(aux), the GELU backward).
  epilogue: { none: 0, bias: 1, geluBias: 2, bgradb: 3, geluAuxBias: 4, dgelu: 5 },
  // Epilogues of groupedGemm (gemm/grouped_epilogue.cuh's Epilogue).
  groupedEpilogue: { none: 0, gelu: 1, dgelu: 2, swiglu: 3 },
  // NCCL's reduction operators (ncclRedOp_t).
  ncclOp: { sum: 0, prod: 1, max: 2, min: 3, avg: 4 },
};

// Bit flags (combined with |), as plain numbers on the wire.
export const flags = {
  // quantize's: which directions to write, and `gemm`: the scales in the layout the format's GEMM
  // reads instead of the plain row-major one. One bit for every format: MX and NVFP4 scale codes
  // in cuBLASLt's 128 × 4 tiles; blockwise FP8 in scaledGemmLt's layouts (gemm/gemm_scaled.cpp)
  // for the stored [R, K] matrix, L = K / 128: 1 × 128 f32 [L, R], 128 × 128 f32
  // [ceil(R / 128), L4] with L4 = L rounded up to a multiple of 4 (padding written as 0);
  // tensorwise FP8 has no such layout (refused).
  quant: { rowwise: 1, columnwise: 2, gemm: 4 },
  // dequantize's: the stored matrix is the transpose (a columnwise part); scales in the GEMM's layout.
  dequant: { transpose: 1, gemm: 4 },
};

const gemmShape = ['transA:flag', 'transB:flag', 'M', 'N', 'K', 'batch', 'strideA', 'strideB', 'strideD'];
const reduce = ['stream', 'dtype:fdtype', 'rank:u64<=8', 'xShape:u64[rank]', 'keepShape:u64[rank]'];
// The attention entry points' sizes and attributes, and their element strides (see attention below).
const attnShape = ['B', 'H', 'Hkv', 'Sq', 'Sk', 'D:u64<=256'];
const attnSizes = [...attnShape, 'causal:flag', 'scale:f64'];
const sparseAttrs = ['blockSize', 'topK', 'first:flag', 'window'];
const attnStrides = ['qsb', 'qsh', 'qss', 'ksb', 'ksh', 'kss', 'osb', 'osh', 'oss'];

export const entries = {
  // ---- runtime: device, memory, streams, events, graphs (native/runtime) ------------------------
  status: { file: 'runtime/device.cpp', args: [], returns: 'NativeStatus' },
  deviceProperties: { file: 'runtime/device.cpp', args: ['device:u64<=63'], returns: 'NativeDeviceProperties' },
  memGetInfo: { file: 'runtime/device.cpp', args: ['device:u64<=63'], returns: '{ free: number; total: number }' },
  nop: { file: 'runtime/device.cpp', args: [] },
  alloc: { file: 'runtime/memory.cpp', args: ['device:u64<=63', 'bytes:u64<=70368744177664'], returns: 'number' },
  free: { file: 'runtime/memory.cpp', args: ['ptr'] },
  emptyCache: { file: 'runtime/memory.cpp', args: ['device:u64<=63'] },
  memoryStats: { file: 'runtime/memory.cpp', args: ['device:u64<=63'], returns: 'NativeMemoryStats' },
  resetPeak: { file: 'runtime/memory.cpp', args: ['device:u64<=63'] },
  hostAlloc: { file: 'runtime/memory.cpp', args: ['bytes:u64<=1099511627776'], returns: 'ArrayBuffer' },
  hostFree: { file: 'runtime/memory.cpp', args: ['buffer:view'] },
  copyHtoD: { file: 'runtime/memory.cpp', args: ['ptr', 'offset', 'src:view'] },
  copyDtoH: { file: 'runtime/memory.cpp', args: ['dst:view', 'ptr', 'offset'] },
  copyDtoD: { file: 'runtime/memory.cpp', args: ['dst', 'dstOffset', 'src', 'srcOffset', 'bytes', 'stream'] },
  copyHtoDAsync: { file: 'runtime/memory.cpp', args: ['ptr', 'offset', 'src:view', 'stream'] },
  copyDtoHAsync: { file: 'runtime/memory.cpp', args: ['dst:view', 'ptr', 'offset', 'stream'] },
  memsetAsync: { file: 'runtime/memory.cpp', args: ['ptr', 'offset', 'value:u64<=255', 'bytes', 'stream'] },
  firstBadId: { file: 'runtime/memory.cpp', args: ['ids:view', 'limit:u64<=2147483648', 'allow:i32', 'hasAllow:flag'], returns: 'number' },
  lookup: { file: 'runtime/memory.cpp', args: ['ptr'], returns: '{ device: number; bytes: number; capacity: number } | null' },
  // Fault injection for tests: the after-th device or pinned allocation from now fails once with
  // OUT_OF_MEMORY (0 disarms). Returns the allocations made since the previous call.
  allocFault: { file: 'runtime/memory.cpp', args: ['after:i32'], returns: 'number' },
  streamCreate: { file: 'runtime/streams.cpp', args: ['device:u64<=63'], returns: 'number' },
  streamDestroy: { file: 'runtime/streams.cpp', args: ['stream'] },
  streamSynchronize: { file: 'runtime/streams.cpp', args: ['stream'] },
  streamQuery: { file: 'runtime/streams.cpp', args: ['stream'], returns: 'boolean' },
  streamWaitEvent: { file: 'runtime/streams.cpp', args: ['stream', 'event'] },
  deviceSynchronize: { file: 'runtime/streams.cpp', args: ['device:u64<=63'] },
  eventCreate: { file: 'runtime/streams.cpp', args: ['device:u64<=63', 'timing:bool'], returns: 'number' },
  eventDestroy: { file: 'runtime/streams.cpp', args: ['event'] },
  eventRecord: { file: 'runtime/streams.cpp', args: ['event', 'stream'] },
  eventSynchronize: { file: 'runtime/streams.cpp', args: ['event'] },
  eventElapsed: { file: 'runtime/streams.cpp', args: ['start', 'end'], returns: 'number' },
  captureBegin: { file: 'runtime/streams.cpp', args: ['stream'] },
  captureEnd: { file: 'runtime/streams.cpp', args: ['stream'], returns: '{ graph: number; nodes: number; kinds: GraphNodeKinds }' },
  graphLaunch: { file: 'runtime/streams.cpp', args: ['graph', 'stream'] },
  graphDestroy: { file: 'runtime/streams.cpp', args: ['graph'] },
  fillHash: { file: 'runtime/smoke.cu', args: ['ptr', 'offset', 'n', 'seed:u64<=4294967295', 'stream'] },
  addU32: { file: 'runtime/smoke.cu', args: ['ptr', 'offset', 'n', 'value:u64<=4294967295', 'stream'] },
  openLibrary: { file: 'runtime/vendor.cpp', args: ['kind:string', 'candidates:string[]'], returns: 'NativeLibraryResult' },
  nvmlDeviceStats: { file: 'runtime/vendor.cpp', args: ['pciBusId:string'], returns: 'NvmlStats' },

  // ---- GEMM (native/gemm) ------------------------------------------------------------------------
  gemmLt: {
    file: 'gemm/gemm.cpp',
    args: ['stream', 'dtype:fdtype', ...gemmShape, 'tf32:flag', 'a:tensor', 'b:tensor', 'd:tensor', 'epilogue:enum.epilogue', 'bias:tensor?', 'aux:tensor?', 'workspace:workspace'],
  },
  gemmLtSupported: { file: 'gemm/gemm.cpp', args: ['dtype:fdtype', ...gemmShape, 'tf32:flag', 'epilogue:enum.epilogue', 'workspaceBytes'], returns: 'string' },
  gemmPlanCount: { file: 'gemm/gemm.cpp', args: [], returns: 'number' },
  // FP8 GEMM through cuBLASLt: D[M, N] = (a·sa)[M, K] · (b·sb)[N, K]ᵀ, both operands K-major FP8
  // codes (a Linear's activations and its weight as stored), or MXFP8 / NVFP4 on Blackwell;
  // aGlobal, bGlobal: NVFP4's f32 tensor scales (nv16 only). Layouts in gemm/gemm_scaled.cpp.
  scaledGemmLt: {
    file: 'gemm/gemm_scaled.cpp',
    args: ['stream', 'M', 'N', 'K', 'aFormat:enum.fp8', 'bFormat:enum.fp8', 'aScaling:enum.scaling', 'bScaling:enum.scaling', 'outDtype:fdtype', 'fastAccum:flag',
      'a:tensor', 'aScale:tensor', 'b:tensor', 'bScale:tensor', 'd:tensor', 'epilogue:enum.epilogue', 'bias:tensor?', 'aGlobal:tensor?', 'bGlobal:tensor?', 'workspace:workspace'],
  },
  scaledGemmLtSupported: {
    file: 'gemm/gemm_scaled.cpp',
    args: ['M', 'N', 'K', 'aFormat:enum.fp8', 'bFormat:enum.fp8', 'aScaling:enum.scaling', 'bScaling:enum.scaling', 'outDtype:fdtype', 'fastAccum:flag', 'epilogue:enum.epilogue', 'workspaceBytes'],
    returns: 'string',
  },
  // MXFP8 on Hopper, our own kernel (no block-scaled tensor cores before Blackwell): D[M, N] =
  // Σ_k a·2^(ea − 127) · b·2^(eb − 127), a [M, K] and b [N, K] K-major e4m3 / e5m2 codes (not both
  // e5m2), E8M0 scale codes per 32 of K in cuBLASLt's 128 × 4 tiles (as scaledGemmLt's mx32), f32
  // accumulation, out bf16 or f32. Sizes index the kernel as int.
  mx8GemmSm90: {
    file: 'gemm/gemm_mx8_sm90.cu',
    args: ['stream', 'M:u64<=2147483647', 'N:u64<=2147483647', 'K:u64<=2147483647', 'aFormat:enum.fp8', 'bFormat:enum.fp8', 'outDtype:fdtype', 'a:tensor', 'aScale:tensor', 'b:tensor', 'bScale:tensor', 'd:tensor'],
  },
  // Our own kernel indexes M, N and K as int and takes batch as the grid's z.
  gemmFallback: {
    file: 'gemm/gemm_fallback.cu',
    args: ['stream', 'dtype:fdtype', 'transA:flag', 'transB:flag', 'M:u64<=2147483647', 'N:u64<=2147483647', 'K:u64<=2147483647', 'batch:u64<=65535', 'strideA', 'strideB', 'strideD', 'a:tensor', 'b:tensor', 'd:tensor'],
  },
  // ---- NCCL communicators (comm/nccl.cpp; libnccl.so.2 loaded at run time) ----------------------
  // A communicator is a handle (an id into the addon's table). Non-blocking: each call settles
  // within the communicator's timeoutMs or aborts it and fails with TIMEOUT. Collectives run on
  // `stream`; send and recv may be the same buffer (in place) where NCCL allows it.
  ncclGetUniqueId: { file: 'comm/nccl.cpp', args: ['id:view'] },
  ncclCommInitRank: { file: 'comm/nccl.cpp', args: ['device:u64<=63', 'worldSize:u64<=65536', 'rank:u64<=65535', 'id:view', 'timeoutMs:u64<=86400000'], returns: 'number' },
  ncclAllReduce: { file: 'comm/nccl.cpp', args: ['comm', 'stream', 'dtype:dtype', 'op:enum.ncclOp', 'count', 'send:tensor', 'recv:tensor'] },
  // One NCCL group of all-reduces (a data-parallel step's bucket: the IR's all_reduce): worldSize
  // must be the communicator's (the graph was built for it); each tensor's count elements, in place
  // or not.
  ncclAllReduceMany: { file: 'comm/nccl.cpp', args: ['comm', 'stream', 'op:enum.ncclOp', 'worldSize:u64<=65536', 'count:u64<=65536', { name: 'tensors', len: 'count', args: ['dtype:dtype', 'n', 'send:tensor', 'recv:tensor'] }] },
  ncclReduceScatter: { file: 'comm/nccl.cpp', args: ['comm', 'stream', 'dtype:dtype', 'op:enum.ncclOp', 'recvCount', 'send:tensor', 'recv:tensor'] },
  ncclAllGather: { file: 'comm/nccl.cpp', args: ['comm', 'stream', 'dtype:dtype', 'sendCount', 'send:tensor', 'recv:tensor'] },
  ncclBroadcast: { file: 'comm/nccl.cpp', args: ['comm', 'stream', 'dtype:dtype', 'root:u64<=65535', 'count', 'send:tensor', 'recv:tensor'] },
  // Waits for a stream whose work includes the communicator's collectives: polls the stream and
  // NCCL's asynchronous error until the stream is done; a peer's failure aborts the communicator
  // (PEER_FAILED), and so does the communicator's timeout passing (TIMEOUT), so a rank never hangs
  // on a peer that died.
  ncclStreamWait: { file: 'comm/nccl.cpp', args: ['comm', 'stream'] },
  ncclCommCheck: { file: 'comm/nccl.cpp', args: ['comm'], returns: 'string' },
  ncclCommAbort: { file: 'comm/nccl.cpp', args: ['comm'] },
  ncclCommDestroy: { file: 'comm/nccl.cpp', args: ['comm'] },

  // Grouped GEMM of dropless MoE (gemm/grouped_gemm.cu): out[r] = x[r] · w[e] for offsets[e] <= r <
  // offsets[e + 1]; x [R, K], w [E, K, N] ([E, N, K] with transW), offsets i32 [E + 1] on the device,
  // out [R, N]; the weight gradient dw[e] = Σ over e's rows of x[r]ᵀ g[r], dw [E, K, N]. Offsets
  // that do not start at 0, decrease or miss R are recorded in the moe error word (opsErrorCheck).
  // The epilogue (gemm/grouped_epilogue.cuh): none; gelu (aux = pre written, out = gelu(pre));
  // dgelu (out = product · gelu'(aux), aux read); swiglu (aux = gate = x·w, aux2 = up = x·w3, out =
  // silu(gate)·up). w3, aux and aux2 are given exactly when the epilogue uses them.
  groupedGemm: {
    file: 'gemm/grouped_gemm.cu',
    args: ['stream', 'dtype:fdtype', 'R:u64<=2147483647', 'K:u64<=2147483647', 'N:u64<=2147483647', 'E:u64<=8192', 'transW:flag', 'x:tensor', 'w:tensor', 'offsets:tensor', 'out:tensor',
      'epilogue:enum.groupedEpilogue', 'w3:tensor?', 'aux:tensor?', 'aux2:tensor?'],
  },
  groupedGemmWgrad: {
    file: 'gemm/grouped_gemm.cu',
    args: ['stream', 'dtype:fdtype', 'R:u64<=2147483647', 'K:u64<=2147483647', 'N:u64<=2147483647', 'E:u64<=8192', 'x:tensor', 'g:tensor', 'offsets:tensor', 'dw:tensor'],
  },
  // The FP8 blockwise grouped GEMM (precision's grouped_scaled_matmul; gemm/grouped_fp8_sm90.cuh):
  // d[r] = (a[r]·sa) · (b[e]·sb)ᵀ for e's rows; a [R, K] codes with 1 × 128 scales aScale f32
  // [K / 128, R]; b [E, N, K] codes with 128 × 128 scales bScale f32 [E, ceil(N / 128), L4]; d [R, N]
  // bf16 or f32. Not both e5m2; K a multiple of 128.
  // The Blackwell block-scaled grouped GEMM (gemm/grouped_block_sm100.cuh; compiled, never run: no
  // Blackwell GPU here): format mxfp8-e4m3 or nvfp4; a [R, K] codes (NVFP4: K / 2 bytes) with scales in
  // 128 × 4 tiles over all R rows; b [E, N, K] codes with each expert's scales tiled; NVFP4's tensor
  // scales aGlobal f32[1] and bGlobal f32[E] (absent for MXFP8); d [R, N] bf16. Refused off Blackwell.
  groupedBlockScaledGemm: {
    file: 'gemm/grouped_gemm.cu',
    args: ['stream', 'R:u64<=2147483647', 'K:u64<=2147483647', 'N:u64<=2147483647', 'E:u64<=8192', 'format:enum.format', 'a:tensor', 'aScale:tensor', 'b:tensor',
      'bScale:tensor', 'aGlobal:tensor?', 'bGlobal:tensor?', 'offsets:tensor', 'd:tensor'],
  },
  groupedScaledGemm: {
    file: 'gemm/grouped_gemm.cu',
    args: ['stream', 'R:u64<=2147483647', 'K:u64<=2147483647', 'N:u64<=2147483647', 'E:u64<=8192', 'aFormat:enum.fp8', 'bFormat:enum.fp8', 'outDtype:fdtype',
      'a:tensor', 'aScale:tensor', 'b:tensor', 'bScale:tensor', 'offsets:tensor', 'd:tensor'],
  },
  // groupedScaledGemm with the expert MLP's activation and the next GEMM's quantization fused into
  // its epilogue (precision's grouped_scaled_matmul_gelu and _dgelu, the fp8-blockwise recipe):
  // epilogue gelu (groupedEpilogue.gelu): aux = pre = bf16(product) written, d = bf16(gelu(pre));
  // dgelu: d = bf16(bf16(product) · gelu'(aux)), aux read. Then d quantized rowwise in 1 × 128 blocks
  // as quantize's fp8-block1x128 (e4m3): codes q u8 [R, N], scales qScale f32 [N / 128, R] (the
  // 'gemm' layout). d and aux bf16 [R, N]; N a multiple of 128.
  groupedScaledGemmAct: {
    file: 'gemm/grouped_gemm.cu',
    args: ['stream', 'R:u64<=2147483647', 'K:u64<=2147483647', 'N:u64<=2147483647', 'E:u64<=8192', 'aFormat:enum.fp8', 'bFormat:enum.fp8', 'epilogue:enum.groupedEpilogue',
      'a:tensor', 'aScale:tensor', 'b:tensor', 'bScale:tensor', 'offsets:tensor', 'd:tensor', 'aux:tensor', 'q:tensor', 'qScale:tensor'],
  },
  // The first layer of a SwiGLU expert MLP under FP8 blockwise (precision's
  // grouped_scaled_matmul_swiglu): gate = bf16(a · b), up = bf16(a · b3) (b3 w3's codes and scales,
  // b's shape and format), d = bf16(silu(gate) · up), then d quantized rowwise in 1 × 128 blocks as
  // groupedScaledGemmAct's: codes q u8 [R, N], scales qScale f32 [N / 128, R]. d, gate and up bf16
  // [R, N]; N a multiple of 128.
  groupedScaledGemmSwiglu: {
    file: 'gemm/grouped_gemm.cu',
    args: ['stream', 'R:u64<=2147483647', 'K:u64<=2147483647', 'N:u64<=2147483647', 'E:u64<=8192', 'aFormat:enum.fp8', 'bFormat:enum.fp8',
      'a:tensor', 'aScale:tensor', 'b:tensor', 'bScale:tensor', 'b3:tensor', 'b3Scale:tensor', 'offsets:tensor', 'd:tensor', 'gate:tensor', 'up:tensor', 'q:tensor', 'qScale:tensor'],
  },
  // The FP8 blockwise expert weight gradient (precision's grouped_scaled_matmul_wgrad; "k-grouped",
  // gemm/grouped_fp8_wgrad_sm90.cuh): dw[e] = Σ over e's padded 128-token blocks pb of (a·sa) ·
  // (b·sb)ᵀ; a [K, P] and b [N, P] codes, each expert's tokens padded to 128 (quantizeKgrouped);
  // sa f32 [P / 128, K], sb f32 [P / 128, N]; offsets i32 [E + 1] (R = offsets[E] is not passed:
  // the padded total must fit in P, checked on the device); dw [E, K, N] bf16 or f32. Not both e5m2.
  groupedScaledGemmWgrad: {
    file: 'gemm/grouped_fp8_wgrad.cu',
    args: ['stream', 'K:u64<=2147483647', 'N:u64<=2147483647', 'P:u64<=2147483647', 'E:u64<=8192', 'aFormat:enum.fp8', 'bFormat:enum.fp8', 'outDtype:fdtype',
      'a:tensor', 'aScale:tensor', 'b:tensor', 'bScale:tensor', 'offsets:tensor', 'dw:tensor'],
  },

  // ---- the 'tensor' op family (native/ops/tensor) -------------------------------------------------
  fill: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'value:f64', 'out:tensor'] },
  scale: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'alpha:f64', 'x:tensor', 'out:tensor'] },
  // amax (f32[1], optional) on the ops that feed an FP8 quantizer: the largest finite |out| as
  // stored, reduced as the kernel writes out (ir's fuse-amax; add: same-shape operands only).
  gelu: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'x:tensor', 'out:tensor', 'amax:tensor?'] },
  silu: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'x:tensor', 'out:tensor'] },
  geluBackward: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'g:tensor', 'x:tensor', 'out:tensor', 'amax:tensor?'] },
  siluBackward: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'g:tensor', 'x:tensor', 'out:tensor'] },
  swiglu: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'n', 'gate:tensor', 'up:tensor', 'out:tensor'] },
  biasAdd: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'rows', 'cols', 'x:tensor', 'bias:tensor', 'out:tensor'] },
  add: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'rank:u64<=8', 'outShape:u64[rank]', 'aShape:u64[rank]', 'bShape:u64[rank]', 'a:tensor', 'b:tensor', 'out:tensor', 'amax:tensor?'] },
  mul: { file: 'ops/tensor/elementwise.cu', args: ['stream', 'dtype:fdtype', 'rank:u64<=8', 'outShape:u64[rank]', 'aShape:u64[rank]', 'bShape:u64[rank]', 'a:tensor', 'b:tensor', 'out:tensor'] },
  reshape: { file: 'ops/tensor/movement.cu', args: ['stream', 'dtype:dtype', 'n', 'x:tensor', 'out:tensor'] },
  broadcastTo: { file: 'ops/tensor/movement.cu', args: ['stream', 'dtype:dtype', 'rank:u64<=8', 'outShape:u64[rank]', 'xShape:u64[rank]', 'x:tensor', 'out:tensor'] },
  transpose: { file: 'ops/tensor/movement.cu', args: ['stream', 'dtype:dtype', 'rank:u64<=8', 'xShape:u64[rank]', 'perm:u64[rank]', 'x:tensor', 'out:tensor'] },
  slice: { file: 'ops/tensor/movement.cu', args: ['stream', 'dtype:dtype', 'outer', 'size', 'inner', 'start', 'length', 'x:tensor', 'out:tensor'] },
  sliceBackward: { file: 'ops/tensor/movement.cu', args: ['stream', 'dtype:fdtype', 'outer', 'size', 'inner', 'start', 'length', 'g:tensor', 'out:tensor'] },
  concat: { file: 'ops/tensor/movement.cu', args: ['stream', 'dtype:dtype', 'outer', 'inner', 'k:u64<=1048576', 'sizes:u64[k]', 'xs:tensor[k]', 'out:tensor'] },
  sum: { file: 'ops/tensor/reduce.cu', args: [...reduce, 'x:tensor', 'out:tensor', 'workspace:workspace'] },
  sumTo: { file: 'ops/tensor/reduce.cu', args: [...reduce, 'x:tensor', 'out:tensor', 'workspace:workspace'] },
  mean: { file: 'ops/tensor/reduce.cu', args: [...reduce, 'x:tensor', 'out:tensor', 'workspace:workspace'] },
  max: { file: 'ops/tensor/reduce.cu', args: [...reduce, 'x:tensor', 'out:tensor', 'workspace:workspace'] },
  maxBackward: { file: 'ops/tensor/reduce.cu', args: [...reduce, 'g:tensor', 'x:tensor', 'out:tensor', 'workspace:workspace'] },
  cast: { file: 'ops/tensor/cast.cu', args: ['stream', 'from:dtype', 'to:dtype', 'n', 'x:tensor', 'out:tensor', 'amax:tensor?'] },
  castMulti: { file: 'ops/tensor/cast_multi.cu', args: ['stream', 'from:fdtype', 'to:fdtype', 'count:u64<=1048576', { name: 'tensors', len: 'count', args: ['n', 'x:tensor', 'out:tensor'] }] },

  // ---- the 'nn' op family (native/ops/nn) ----------------------------------------------------------
  softmax: { file: 'ops/nn/softmax.cu', args: ['stream', 'dtype:fdtype', 'outer', 'n', 'inner', 'x:tensor', 'y:tensor'] },
  softmaxBackward: { file: 'ops/nn/softmax.cu', args: ['stream', 'dtype:fdtype', 'outer', 'n', 'inner', 'g:tensor', 'y:tensor', 'dx:tensor'] },
  layernorm: { file: 'ops/nn/layernorm.cu', args: ['stream', 'dtype:fdtype', 'rows', 'D', 'eps:f64', 'x:tensor', 'weight:tensor', 'bias:tensor', 'y:tensor', 'mean:tensor', 'rstd:tensor'] },
  addLayernorm: {
    file: 'ops/nn/layernorm.cu',
    args: ['stream', 'dtype:fdtype', 'rows', 'D', 'eps:f64', 'x:tensor', 'residual:tensor', 'weight:tensor', 'bias:tensor', 'sum:tensor', 'y:tensor', 'mean:tensor', 'rstd:tensor', 'amax:tensor?'],
  },
  layernormBackward: {
    file: 'ops/nn/layernorm.cu',
    args: ['stream', 'dtype:fdtype', 'rows', 'D', 'g:tensor', 'x:tensor', 'weight:tensor', 'mean:tensor', 'rstd:tensor', 'dx:tensor', 'dweight:tensor', 'dbias:tensor', 'addend:tensor?', 'workspace:workspace'],
  },
  rmsnorm: { file: 'ops/nn/rmsnorm.cu', args: ['stream', 'dtype:fdtype', 'rows', 'D', 'eps:f64', 'x:tensor', 'weight:tensor', 'y:tensor', 'rstd:tensor'] },
  rmsnormBackward: { file: 'ops/nn/rmsnorm.cu', args: ['stream', 'dtype:fdtype', 'rows', 'D', 'g:tensor', 'x:tensor', 'weight:tensor', 'rstd:tensor', 'dx:tensor', 'dweight:tensor', 'workspace:workspace'] },
  embedding: { file: 'ops/nn/embedding.cu', args: ['stream', 'dtype:fdtype', 'P', 'V', 'D', 'table:tensor', 'ids:tensor', 'out:tensor'] },
  embeddingBackward: { file: 'ops/nn/embedding.cu', args: ['stream', 'dtype:fdtype', 'P', 'V', 'D', 'ids:tensor', 'g:tensor', 'dtable:tensor', 'workspace:workspace'] },
  crossEntropy: { file: 'ops/nn/cross_entropy.cu', args: ['stream', 'dtype:fdtype', 'N', 'V', 'ignoreIndex:i32', 'logits:tensor', 'targets:tensor', 'loss:tensor', 'workspace:workspace'] },
  crossEntropyBackward: {
    file: 'ops/nn/cross_entropy.cu',
    args: ['stream', 'dtype:fdtype', 'gDtype:fdtype', 'N', 'V', 'ignoreIndex:i32', 'logits:tensor', 'targets:tensor', 'g:tensor', 'dlogits:tensor', 'workspace:workspace'],
  },
  crossEntropyWithGrad: {
    file: 'ops/nn/cross_entropy.cu',
    args: ['stream', 'dtype:fdtype', 'gDtype:fdtype', 'N', 'V', 'ignoreIndex:i32', 'logits:tensor', 'targets:tensor', 'g:tensor', 'loss:tensor', 'dlogits:tensor', 'workspace:workspace'],
  },
  causalMask: { file: 'ops/nn/causal_mask.cu', args: ['stream', 'dtype:fdtype', 'B', 'T', 'S', 'value:f64', 'x:tensor', 'out:tensor'] },
  adamw: {
    file: 'ops/nn/adamw.cu',
    args: ['stream', 'gradDtype:fdtype', 'lrDtype:fdtype', 'stepDtype:fdtype', 'n', 'beta1:f64', 'beta2:f64', 'eps:f64', 'weightDecay:f64',
      'param:tensor', 'grad:tensor', 'm:tensor', 'v:tensor', 'lr:tensor', 'step:tensor', 'param2:tensor', 'm2:tensor', 'v2:tensor', 'gradScale:tensor?'],
  },
  adamwMulti: {
    file: 'ops/nn/adamw.cu',
    args: ['stream', 'gradDtype:fdtype', 'lrDtype:fdtype', 'stepDtype:fdtype', 'count:u64<=1048576', 'beta1:f64', 'beta2:f64', 'eps:f64', 'weightDecay:f64', 'lr:tensor', 'step:tensor',
      'gradScale:tensor?', { name: 'tensors', len: 'count', args: ['n', 'param:tensor', 'grad:tensor', 'm:tensor', 'v:tensor', 'param2:tensor', 'm2:tensor', 'v2:tensor'] }],
  },
  clipCoef: { file: 'ops/nn/clip_coef.cu', args: ['stream', 'sumsq:tensor', 'coef:tensor', 'norm:tensor', 'maxNorm:f64'] },
  // out f32[1] = the sum of x² over every element of every tensor (each of its own float dtype);
  // the workspace holds one f64 partial per chunk of 16384 elements (sumSquaresChunk in
  // packages/ir/src/cuda/nn.ts declares it so).
  sumSquares: { file: 'ops/nn/sum_squares.cu', args: ['stream', 'count:u64<=1048576', 'out:tensor', 'workspace:workspace', { name: 'tensors', len: 'count', args: ['dtype:fdtype', 'n', 'x:tensor'] }] },
  opsErrorCheck: { file: 'common/errors.cu', args: ['stream'] },

  // ---- the 'moe' op family (native/ops/moe) --------------------------------------------------------
  topk: { file: 'ops/moe/topk.cu', args: ['stream', 'dtype:fdtype', 'rows', 'E', 'k', 'x:tensor', 'values:tensor', 'indices:tensor'] },
  topkBackward: { file: 'ops/moe/topk.cu', args: ['stream', 'dtype:fdtype', 'rows', 'k', 'size', 'g:tensor', 'indices:tensor', 'out:tensor'] },
  gatherRows: { file: 'ops/moe/rows.cu', args: ['stream', 'dtype:fdtype', 'M', 'R', 'D', 'x:tensor', 'idx:tensor', 'out:tensor'] },
  scatterAddRows: { file: 'ops/moe/rows.cu', args: ['stream', 'dtype:fdtype', 'M', 'R', 'D', 'src:tensor', 'idx:tensor', 'out:tensor'] },
  moePlan: { file: 'ops/moe/moe_plan.cu', args: ['stream', 'N', 'k', 'E', 'C', 'experts:tensor', 'dispatch:tensor', 'combine:tensor'] },
  // Dropless routing: every choice a row, sorted by expert (stable), the group offsets i32 [E + 1];
  // the workspace holds the per-chunk expert counts (moeSortWorkspace gives its bytes).
  moeSort: { file: 'ops/moe/moe_sort.cu', args: ['stream', 'N:u64<=2147483647', 'k:u64<=2147483647', 'E:u64<=8192', 'experts:tensor', 'order:tensor', 'slot:tensor', 'offsets:tensor', 'workspace:workspace'] },
  moeSortWorkspace: { file: 'ops/moe/moe_sort.cu', args: ['N:u64<=2147483647', 'k:u64<=2147483647', 'E:u64<=8192'], returns: 'number' },
  // Dropless MoE's dispatch and combine between token order and moe_sort's rows (ops/moe/permute.cu):
  // xs[p] = x[order[p]] (· weights[n, j], slot[n, j] = p); y[n] = Σ_j (weights[n, j] ·) ys[slot[n, j]];
  // dw[n, j] = a[n] · b[slot[n, j]] (f32). weights optional, of its own float dtype wDtype.
  moePermute: { file: 'ops/moe/permute.cu', args: ['stream', 'dtype:fdtype', 'wDtype:fdtype', 'N:u64<=2147483647', 'k:u64<=2147483647', 'D:u64<=2147483647', 'x:tensor', 'order:tensor', 'slot:tensor', 'weights:tensor?', 'xs:tensor'] },
  moeUnpermute: { file: 'ops/moe/permute.cu', args: ['stream', 'dtype:fdtype', 'wDtype:fdtype', 'N:u64<=2147483647', 'k:u64<=2147483647', 'D:u64<=2147483647', 'ys:tensor', 'order:tensor', 'slot:tensor', 'weights:tensor?', 'y:tensor'] },
  moeWeightGrad: { file: 'ops/moe/permute.cu', args: ['stream', 'dtype:fdtype', 'N:u64<=2147483647', 'k:u64<=2147483647', 'D:u64<=2147483647', 'a:tensor', 'b:tensor', 'order:tensor', 'slot:tensor', 'dw:tensor'] },
  // The router (ops/moe/route.cu): softmax and top-k in FP32, their gradient, the load-balancing
  // loss; the aux loss's workspace holds E partial products and a counter (moeAuxLossWorkspace).
  moeRoute: { file: 'ops/moe/route.cu', args: ['stream', 'dtype:fdtype', 'N:u64<=2147483647', 'E:u64<=8192', 'k:u64<=8192', 'logits:tensor', 'probs:tensor', 'weights:tensor', 'chosen:tensor'] },
  moeRouteBackward: { file: 'ops/moe/route.cu', args: ['stream', 'N:u64<=2147483647', 'E:u64<=8192', 'k:u64<=8192', 'probs:tensor', 'chosen:tensor', 'gWeights:tensor', 'gProbs:tensor?', 'dlogits:tensor'] },
  moeAuxLoss: { file: 'ops/moe/route.cu', args: ['stream', 'dtype:fdtype', 'N:u64<=2147483647', 'E:u64<=8192', 'k:u64<=8192', 'probs:tensor', 'chosen:tensor', 'loss:tensor', 'fractions:tensor', 'workspace:workspace'] },
  moeAuxLossWorkspace: { file: 'ops/moe/route.cu', args: ['E:u64<=8192'], returns: 'number' },
  oneHot: { file: 'ops/moe/one_hot.cu', args: ['stream', 'dtype:fdtype', 'P', 'classes', 'idx:tensor', 'out:tensor'] },

  // ---- attention (native/attention) ----------------------------------------------------------------
  // Element (b, h, s, d) of q and dq is at b·qsb + h·qsh + s·qss + d; of k, v, dk and dv at
  // b·ksb + h·ksh + s·kss + d (k and v share strides; their bases are the tensors' own); of out and
  // dout at b·osb + h·osh + s·oss + d. So [B, heads, S, D], [B, S, heads, D] and q, k, v inside one
  // packed QKV projection output ([B, S, H + 2·Hkv, D], each at its head offset) all go without a
  // copy. lse f32 [B, H, Sq], contiguous. Every attention entry point takes these arguments.
  sdpaForward: { file: 'attention/sdpa.cu', args: ['stream', 'dtype:fdtype', ...attnSizes, 'q:tensor', 'k:tensor', 'v:tensor', 'out:tensor', 'lse:tensor', ...attnStrides, 'workspace:workspace'] },
  sdpaBackward: {
    file: 'attention/sdpa.cu',
    args: ['stream', 'dtype:fdtype', ...attnSizes, 'dout:tensor', 'q:tensor', 'k:tensor', 'v:tensor', 'out:tensor', 'lse:tensor', 'dq:tensor', 'dk:tensor', 'dv:tensor', ...attnStrides, 'workspace:workspace'],
  },
  // Decoding with a key/value cache (native/attention/decode.cu): caches [B, Hkv, Tmax, D]; k, v and q
  // inside the packed QKV projection output (token stride in elements, each at its first head);
  // pos i32[n], the step's positions, read on the device.
  kvCacheWrite: {
    file: 'attention/decode.cu',
    args: ['stream', 'dtype:fdtype', 'B', 'Hkv', 'n', 'Tmax', 'D:u64<=256', 'tokenStride', 'kcache:tensor', 'vcache:tensor', 'k:tensor', 'v:tensor', 'pos:tensor', 'kout:tensor', 'vout:tensor'],
  },
  sdpaDecode: {
    file: 'attention/decode.cu',
    args: ['stream', 'dtype:fdtype', 'B', 'H', 'Hkv', 'n', 'Tmax', 'D:u64<=256', 'scale:f64', 'qTokenStride', 'q:tensor', 'kcache:tensor', 'vcache:tensor', 'pos:tensor', 'out:tensor'],
  },
  flashForward: { file: 'attention/flash.cu', args: ['stream', 'dtype:fdtype', ...attnSizes, 'q:tensor', 'k:tensor', 'v:tensor', 'out:tensor', 'lse:tensor', ...attnStrides, 'workspace:workspace'] },
  flashBackward: {
    file: 'attention/flash.cu',
    args: ['stream', 'dtype:fdtype', ...attnSizes, 'dout:tensor', 'q:tensor', 'k:tensor', 'v:tensor', 'out:tensor', 'lse:tensor', 'dq:tensor', 'dk:tensor', 'dv:tensor', ...attnStrides, 'workspace:workspace'],
  },
  // The bytes of flashBackward's workspace for a call of these sizes on a device of compute capability
  // ccMajor.ccMinor: the native side defines the layout, the candidate declares what this answers.
  flashBackwardWorkspace: { file: 'attention/flash.cu', args: [...attnShape, 'ccMajor:u64<=99', 'ccMinor:u64<=9'], returns: 'number' },
  // SparseK top-k block-sparse attention (attention/sparsek.cu): flash's arguments (Sq = Sk), the
  // selection's attributes and the indices, i32 [B, Hkv, nB, topK].
  sparsekForward: {
    file: 'attention/sparsek.cu',
    args: ['stream', 'dtype:fdtype', ...attnSizes, ...sparseAttrs, 'q:tensor', 'k:tensor', 'v:tensor', 'out:tensor', 'lse:tensor', 'indices:tensor', ...attnStrides, 'workspace:workspace'],
  },
  sparsekBackward: {
    file: 'attention/sparsek.cu',
    args: ['stream', 'dtype:fdtype', ...attnSizes, ...sparseAttrs, 'dout:tensor', 'q:tensor', 'k:tensor', 'v:tensor', 'out:tensor', 'lse:tensor', 'indices:tensor',
      'dq:tensor', 'dk:tensor', 'dv:tensor', ...attnStrides, 'workspace:workspace'],
  },
  // The bytes of sparsekForward's (backward 0) or sparsekBackward's (1) workspace on a device of
  // compute capability ccMajor.ccMinor.
  sparsekWorkspace: { file: 'attention/sparsek.cu', args: [...attnShape, 'blockSize', 'backward:flag', 'ccMajor:u64<=99', 'ccMinor:u64<=9'], returns: 'number' },

  // ---- quantization (native/quant) ------------------------------------------------------------------
  quantAmax: { file: 'quant/amax.cu', args: ['stream', 'dtype:fdtype', 'n', 'x:tensor', 'amax:tensor'] },
  quantize: {
    file: 'quant/quantize.cu',
    args: ['stream', 'format:enum.format', 'scaleMode:enum.scaleMode', 'dtype:fdtype', 'rows', 'cols', 'flags:u64<=7', 'x:tensor', 'amax:tensor?',
      'rowData:tensor?', 'rowScales:tensor?', 'colData:tensor?', 'colScales:tensor?', 'globalScale:tensor?', 'workspace:workspace'],
  },
  // The k-grouped FP8 quantizer of the expert weight gradient (precision's quantize_kgrouped): x [R, C]
  // (float) with offsets i32 [E + 1] -> codes e4m3 [C, P], each expert's rows transposed and padded
  // with zeros to a multiple of 128, and scales f32 [P / 128, C] (one per channel per 128 tokens);
  // P = 128 · (ceil(R / 128) + E). Blocks past the last expert's are zeros.
  quantizeKgrouped: {
    file: 'quant/quantize_kgrouped.cu',
    args: ['stream', 'dtype:fdtype', 'R:u64<=2147483647', 'C:u64<=2147483647', 'E:u64<=8192', 'P:u64<=2147483647', 'x:tensor', 'offsets:tensor', 'codes:tensor', 'scales:tensor'],
  },
  dequantize: { file: 'quant/dequantize.cu', args: ['stream', 'format:enum.format', 'outDtype:fdtype', 'R', 'C', 'flags:u64<=5', 'data:tensor', 'scales:tensor?', 'globalScale:tensor?', 'out:tensor'] },
  fakeQuant: { file: 'quant/fake_quant.cu', args: ['stream', 'format:enum.format', 'scaleMode:enum.scaleMode', 'dtype:fdtype', 'outer', 'len', 'inner', 'x:tensor', 'y:tensor', 'workspace:workspace'] },
  quantStats: { file: 'quant/quant_stats.cu', args: ['stream', 'format:enum.format', 'scaleMode:enum.scaleMode', 'dtype:fdtype', 'outer', 'len', 'inner', 'x:tensor', 'stats:tensor', 'workspace:workspace'] },
};
