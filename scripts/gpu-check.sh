#!/usr/bin/env bash
# Runs on the lent GPU host (no Node there): unpacks what scripts/device-pack.sh prepared, then
# checks the foundation on the GPU and writes everything under $OUT (or ./gpu-out):
#   1. nvidia-smi, and the real vendor headers' declarations beside ours (native/runtime/vendor/)
#   2. cuobjdump --list-elf / --list-ptx of the built addon (sm_90a and sm_100 code)
#   3. every package's tests with the GPU present (scripts/test-all.mjs)
#   4. the project installed from the packed tarballs, carried as installed, with no nvcc on PATH:
#      examples/probe and deepwell-probe --json
#   5. the main job under compute-sanitizer memcheck; then (key `sanitize`, not in the default run:
#      it takes long) memcheck, racecheck and synccheck over every GPU test file and
#      initcheck over the quantizers' and the attention kernels' (scripts/sanitize-tests.sh)
#   6. the GEMM benchmark beside torch.matmul (bench/gemm.sh)
#   7. each fusion beside the kernels it replaces (bench/fusion.mjs)
#   8. the memory-bound kernels beside a device-to-device copy (bench/membound.mjs)
#   9. the runtime micro-benchmarks
#  10. the quantization kernels beside a device-to-device copy and PyTorch (bench/quantize.mjs)
#  11. dryrun's total beside the allocator's peak for GPT-2 124M and the tiny GPT (examples/gpt2/memory.mjs)
#  12. GPT-2 124M, Deepwell only, 200 steps, its losses step by step beside the last recorded run's
# ONLY="tests quant ..." runs only the named steps (keys: vendor cuobjdump tests installed main
# sanitizer sanitize gemm fusion membound runtime quant memory gpt2); the default is all of them
# but sanitize.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
log="$OUT/gpu-check.log"
exec > >(tee "$log") 2>&1
step() { printf '\n##### %s\n' "$*"; }
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
asked() { [[ " ${ONLY:-} " == *" $1 "* ]]; }

xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
tar -xJf .device/deps.tar.xz
rm -rf /tmp/installed && mkdir -p /tmp/installed && tar -C /tmp/installed -xJf .device/installed.tar.xz
export NCCL_NVLS_ENABLE=0 FORCE_COLOR=0 NO_COLOR=1
addon=packages/kernels-native/prebuilds/linux-x64/@deepwell+kernels-native.napi.node

step "date and GPU"; date -u; node --version
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv

if want vendor; then
step "vendor declarations: ours, then the real headers"
grep -h "typedef" native/runtime/vendor/*.h | grep -o "(\*dw_[A-Za-z_0-9]*)([^;]*" | sed 's/(\*dw_/  ours: /'
for f in nvmlInit_v2 nvmlSystemGetDriverVersion nvmlSystemGetNVMLVersion nvmlDeviceGetHandleByPciBusId_v2 nvmlDeviceGetClockInfo \
         nvmlDeviceGetMaxClockInfo nvmlDeviceGetPowerUsage nvmlDeviceGetEnforcedPowerLimit nvmlDeviceGetUtilizationRates nvmlDeviceGetTemperature nvmlDeviceGetMemoryInfo; do
  h=$(find / -name nvml.h -path '*include*' 2>/dev/null | head -1)
  [ -n "$h" ] && grep -h -A1 "DECLDIR $f(" "$h" | tr -s ' \n' ' ' | sed 's/^/  nvml.h: /'; echo
done
grep -h -B4 "} nvmlMemory_t;" "$(find / -name nvml.h -path '*include*' 2>/dev/null | head -1)" 2>/dev/null | head -5
grep -h "NVML_CLOCK_SM\|NVML_CLOCK_MEM \|NVML_CLOCK_MEM=\|NVML_TEMPERATURE_GPU" "$(find / -name nvml.h -path '*include*' 2>/dev/null | head -1)" 2>/dev/null | head -4
grep -h "cublasLtGetVersion(" /usr/local/cuda/include/cublasLt.h | head -2
echo "cuBLASLt enum values we use (ours are in native/runtime/vendor/cublaslt_min.h):"
grep -hE "^\s*(CUBLASLT_MATMUL_DESC_(POINTER_MODE|TRANSA|TRANSB|EPILOGUE|BIAS_POINTER|BIAS_BATCH_STRIDE|EPILOGUE_AUX_POINTER|EPILOGUE_AUX_LD|BIAS_DATA_TYPE|[AB]_SCALE_POINTER|[AB]_SCALE_MODE|FAST_ACCUM)|CUBLASLT_POINTER_MODE_(HOST|DEVICE)|CUBLASLT_MATMUL_MATRIX_SCALE_(SCALAR_32F|VEC16_UE4M3|VEC32_UE8M0|OUTER_VEC_32F|VEC128_32F|BLK128x128_32F)|CUBLASLT_EPILOGUE_(DEFAULT|BIAS|GELU|GELU_BIAS|GELU_AUX_BIAS|DGELU|BGRADB)|CUBLASLT_MATRIX_LAYOUT_(BATCH_COUNT|STRIDED_BATCH_OFFSET)|CUBLASLT_MATMUL_PREF_(MAX_WORKSPACE_BYTES|REDUCTION_SCHEME_MASK|MIN_ALIGNMENT_[ABCD]_BYTES)|CUBLASLT_REDUCTION_SCHEME_(INPLACE|COMPUTE_TYPE|OUTPUT_TYPE)) +=" /usr/local/cuda/include/cublasLt.h | tr -s ' '
grep -hE "^\s*CUBLAS_COMPUTE_32F(_FAST_TF32)? +=|^\s*CUBLAS_OP_[NT] +=" /usr/local/cuda/include/cublas_api.h | tr -s ' '
grep -hE "CUDA_R_(32F|16F|16BF|8F_E4M3|8F_UE4M3|8F_E5M2|8F_UE8M0|4F_E2M1) +=" /usr/local/cuda/include/library_types.h | tr -s ' '
# NCCL: what native/comm/nccl_min.h declares (unique id bytes, result codes, data types, the
# functions' signatures), from the pip wheel's nccl.h.
nh="$(find /opt/torch/.venv/lib/python3.12/site-packages/nvidia -name nccl.h 2>/dev/null | head -1)"
[ -n "$nh" ] && grep -hE "NCCL_UNIQUE_ID_BYTES|nccl(Success|UnhandledCudaError|SystemError|InternalError|InvalidArgument|InvalidUsage|RemoteError|InProgress) +=|nccl(Int32|Float16|Float32|Bfloat16|Sum|Prod|Max|Min|Avg) +=|^ncclResult_t +nccl(GetUniqueId|CommInitRank|CommDestroy|CommAbort|CommGetAsyncError|AllReduce|ReduceScatter|AllGather|Broadcast)\(" "$nh" | tr -s ' '
grep -hE "^typedef struct \{|cublasLtMatmulAlgo_t algo;|size_t workspaceSize;|cublasStatus_t state;|float wavesCount;|int reserved\[4\];" /usr/local/cuda/include/cublasLt.h | grep -A5 "cublasLtMatmulAlgo_t algo" | head -6
grep -rh "ncclGetVersion(" /opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/include/nccl.h 2>/dev/null | head -2
# ncclConfig_t's first fields (nccl_min.h's ConfigV217: size, magic, version, blocking, cgaClusterSize,
# minCTAs, maxCTAs, netName) and NCCL_CONFIG_INITIALIZER / NCCL_CONFIG_UNDEF_INT.
[ -n "$nh" ] && grep -hE "^typedef struct ncclConfig_v|^  (size_t size|unsigned int magic|unsigned int version|int blocking|int cgaClusterSize|int minCTAs|int maxCTAs|const char \*netName);|#define NCCL_CONFIG_UNDEF_INT|0xcafebeef|^ncclResult_t +ncclCommInitRankConfig\(|^ncclResult_t +ncclGroup(Start|End)\(" "$nh" | tr -s ' '

fi
if want cuobjdump; then
step "cuobjdump of the built addon"
cuobjdump --list-elf "$addon"; cuobjdump --list-ptx "$addon"
cuobjdump --dump-sass -arch sm_90a "$addon" | grep -E "Function|STG" | head -6

fi
if want tests; then
step "all tests, GPU present"
node scripts/test-all.mjs; echo "test-all exit code: $?"

fi
if want installed; then
step "installed from the packed tarballs, carried as installed, no nvcc on PATH"
cp examples/probe/index.mjs /tmp/installed/project/probe.mjs
(cd /tmp/installed/project && PATH=/tmp:/usr/bin:/bin node probe.mjs)
(cd /tmp/installed/project && PATH=/tmp:/usr/bin:/bin which nvcc || echo "nvcc: not on PATH"; PATH=/tmp:/usr/bin:/bin node node_modules/.bin/deepwell-probe --json > "$OUT/probe.json"; echo "deepwell-probe exit code: $?")
node -e "const r=require('$OUT/probe.json'); const g=r.gpus[0]; console.log(JSON.stringify({native:r.native.path, name:g.name, cc:g.computeCapability, sms:g.smCount, memoryMiB:g.memoryBytes/2**20, cudaTotalMiB:g.memoryCudaTotalBytes/2**20, l2MiB:g.l2CacheBytes/2**20, image:g.kernelImage, libs:r.libraries.map(l=>l.library+' '+l.version)}, null, 1))"

fi
if want main; then
step "main job (pnpm start's program)"
node examples/main/main.mjs

fi
if want main; then
step "examples/kernels-native"
node examples/kernels-native/index.mjs

fi
if want sanitizer; then
step "compute-sanitizer memcheck of the main job"
compute-sanitizer --tool memcheck --target-processes all --print-limit 20 node examples/main/main.mjs 2>&1 | tail -8

fi
if asked sanitize; then
step "compute-sanitizer --tool memcheck, racecheck and synccheck over every GPU test file, 8 files at once"
OUT=$OUT SANITIZE_JOBS=8 bash scripts/sanitize-tests.sh memcheck,racecheck,synccheck
step "compute-sanitizer --tool initcheck over the quantizers' and the attention kernels' tests"
OUT=$OUT SANITIZE_JOBS=4 bash scripts/sanitize-tests.sh initcheck packages/precision/test/gpu.test.ts packages/attention-sparsek/test/gpu.test.ts \
  packages/attention-sparsek/test/gpu_sparsek.test.ts packages/attention-sparsek/test/gpu_decode.test.ts

fi
if want gemm; then
step "GEMM benchmark beside torch.matmul (same run, same GPU)"
bash bench/gemm.sh

fi
if want fusion; then
step "each fusion beside the kernels it replaces (CUDA graphs, same run)"
node bench/fusion.mjs | tee "$OUT/fusion-bench.txt"

fi
if want membound; then
step "memory-bound kernels beside a device-to-device copy (same run)"
node bench/membound.mjs

fi
if want runtime; then
step "runtime micro-benchmarks"
node packages/kernels-native/bench/runtime.mjs --json "$OUT/runtime-bench.json"
fi
if want quant; then
step "quantization kernels beside a device-to-device copy, then PyTorch (same run, same GPU)"
node bench/quantize.mjs | tee "$OUT/quantize-bench.txt"
python3 bench/quantize_torch.py | tee -a "$OUT/quantize-bench.txt"
step "compute-sanitizer memcheck of the quantization kernels' GPU tests"
(cd packages/precision && compute-sanitizer --tool memcheck --target-processes all --print-limit 20 node ../../node_modules/vitest/vitest.mjs run test/gpu.test.ts -t "mxfp8-e4m3|nvfp4|fp8-block128x128|fake_quant" 2>&1 | tail -12)
fi
if want memory; then
step "dryrun's total beside the allocator's peak in use over a compiled step"
node examples/gpt2/memory.mjs --json "$OUT/memory.json"
fi
if want gpt2; then
step "GPT-2 124M (Deepwell), 200 steps, beside the last recorded run (docs/gpu-runs/gpt2-run3)"
(cd examples/gpt2 && node bench.mjs 200 /tmp/gpt2 2>&1 | grep -v '^step ' | tail -5)
cp /tmp/gpt2/deepwell.jsonl "$OUT/gpt2-deepwell.jsonl"
node examples/gpt2/same-losses.mjs docs/gpu-runs/gpt2-run3/deepwell.jsonl /tmp/gpt2/deepwell.jsonl
fi
