#!/usr/bin/env bash
# On the GPU host: issue 15's FP8 checks, by part, into $OUT (a log per part and a tarball).
#   OUT=$OUT bash scripts/fp8-check.sh [tests] [tests-native] [quant] [reduce] [amax] [mx8] [gemm] [e2e] [e2e-torch] [gpt2]
#   tests      the precision package's GPU tests (quantizer, FP8 GEMM, scaled_matmul, the native
#              policy in a compiled step) and examples/precision
#   tests-native  kernels-native and ir (the GEMM plan cache)
#   gemm       bench/scaled_gemm.sh: our FP8 and bf16 GEMMs beside PyTorch's, every shape and mode,
#              SCALED_GEMM_ROUNDS rounds (default 1)
#   e2e        the ~1B GPT (16 layers, width 2048, 16 heads, T 2048, vocab 50304; B = E2E_B, default
#              8) for E2E_STEPS (300) steps under each recipe in E2E_RECIPES (bf16 fp8-tensorwise
#              fp8-blockwise), each recipe for every block (KEEP_FIRST_LAST=0; the head stays BF16)
#   e2e-torch  torch.compile (bf16) and the torchao-style FP8 reference on the same runs' data
#   gpt2       GPT-2 124M under each recipe (GPT2_STEPS, 200), then torch.compile and its FP8
#              (GPT2_TORCH=0: our recipes only)
#   amax       the fused amax's GPU tests only (ir's kernel test, precision's compiled scales)
#   mx8        the MXFP8 Hopper GEMM: its GPU tests (and scaled_matmul's), then bench/mx8_gemm.mjs
#   quant      bench/quantize.mjs: the quantizers (and the tensor amax) beside a copy, 16384² bf16
#   reduce     ir's CUDA tensor-op tests (the reductions: sum_to's column modes)
# Needs .device/ from scripts/device-pack.sh (this machine's Node and the packages).
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests gemm)
source "$(dirname "$0")/device-lib.sh"
device_begin fp8-check

E1B='{"vocabSize":50304,"blockSize":2048,"nLayer":16,"nHead":16,"nEmbd":2048}'
recipes_run() { # <model json> <steps> <B> <dir prefix> <recipes...>
  local model=$1 steps=$2 b=$3 prefix=$4; shift 4
  for r in "$@"; do
    step "$prefix: $r, $steps steps, B $b"
    (cd examples/gpt2 && GPT_CONFIG=$model RECIPE=$r KEEP_FIRST_LAST=0 timeout 400 node bench.mjs "$steps" "/tmp/$prefix-$r" "$b" 2>&1 | grep -v '^step ' | tail -24)
    cp "/tmp/$prefix-$r/deepwell.jsonl" "$OUT/$prefix-$r-deepwell.jsonl" 2>/dev/null; cp "/tmp/$prefix-$r/plan.json" "$OUT/$prefix-$r-plan.json" 2>/dev/null
  done
}
torch_run() { # <dir> <mode> <timeout>
  step "torch $2 in $1"
  (cd examples/gpt2 && timeout "$3" python3 bench_torch.py "$1" "$2" > "$1/torch-$2.jsonl" 2>"$OUT/$(basename "$1")-torch-$2.err"; echo "exit $?"; tail -1 "$1/torch-$2.jsonl")
  cp "$1/torch-$2.jsonl" "$OUT/$(basename "$1")-torch-$2.jsonl" 2>/dev/null; tail -3 "$OUT/$(basename "$1")-torch-$2.err"
}

for part in "${parts[@]}"; do
  case $part in
  tests)
    step "precision GPU tests"
    (cd packages/precision && timeout 400 node ../../node_modules/vitest/vitest.mjs run test/gpu.test.ts test/scaled_gemm.test.ts test/scaled_matmul_gpu.test.ts test/native_policy_gpu.test.ts) > "$OUT/precision-gpu.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Test Files|Tests |native:|emulated |bf16  " "$OUT/precision-gpu.log" | grep -v "^ *✓ .*[0-9]ms$" | tail -40
    step "examples/precision (its GPU section: FP8 GEMMs, a short FP8 training run)"
    (cd examples/precision && timeout 150 node index.mjs 2>&1 | tail -22 | tee "$OUT/example-precision.log")
    ;;
  tests-native)
    step "kernels-native and ir tests (the GEMM plan cache)"
    timeout 300 node scripts/test-all.mjs packages/kernels-native packages/ir > "$OUT/native-ir.log" 2>&1
    echo "exit $?"; grep -E "FAIL|×|passed|failed" "$OUT/native-ir.log" | tail -12
    ;;
  amax)
    step "fused amax GPU tests"
    (cd packages/ir && timeout 200 node ../../node_modules/vitest/vitest.mjs run test/cuda-tensor.test.ts -t "fused amax") > "$OUT/amax-ir.log" 2>&1
    echo "ir exit $?"; grep -E "✓|×|FAIL|Tests " "$OUT/amax-ir.log" | tail -6
    (cd packages/precision && timeout 200 node ../../node_modules/vitest/vitest.mjs run test/gpu.test.ts -t "take the amax") > "$OUT/amax-precision.log" 2>&1
    echo "precision exit $?"; grep -E "✓|×|FAIL|Tests " "$OUT/amax-precision.log" | tail -6
    ;;
  mx8)
    step "MXFP8 Hopper GEMM: GPU tests"
    (cd packages/precision && timeout 300 node ../../node_modules/vitest/vitest.mjs run test/scaled_matmul_mx8_gpu.test.ts test/scaled_matmul_gpu.test.ts) > "$OUT/mx8-tests.log" 2>&1
    echo "exit $?"; grep -E "✓|×|FAIL|Tests |Error" "$OUT/mx8-tests.log" | grep -v "^ *✓ .*[0-9]ms$" | tail -20
    step "MXFP8 Hopper GEMM: bench"; timeout 200 node bench/mx8_gemm.mjs 2>&1 | tee "$OUT/mx8-bench.md" | tail -20
    ;;
  quant) step "quantizer benchmark"; (cd bench && timeout 200 node quantize.mjs 2>&1 | grep '^|' | tee "$OUT/quantize.md") ;;
  reduce)
    step "ir CUDA tensor ops (reductions)"
    (cd packages/ir && timeout 300 node ../../node_modules/vitest/vitest.mjs run test/cuda-tensor.test.ts) > "$OUT/ir-tensor.log" 2>&1
    echo "exit $?"; grep -E "FAIL|×|Tests " "$OUT/ir-tensor.log" | tail -12
    ;;
  gemm) step "FP8 GEMM benchmark"; OUT=$OUT SCALED_GEMM_ROUNDS=${SCALED_GEMM_ROUNDS:-1} timeout 400 bash bench/scaled_gemm.sh > "$OUT/gemm.log" 2>&1; echo "exit $?"; cat "$OUT/scaled-gemm-table.md" 2>/dev/null || tail -20 "$OUT/gemm.log" ;;
  e2e)
    recipes_run "$E1B" "${E2E_STEPS:-300}" "${E2E_B:-8}" e2e ${E2E_RECIPES:-bf16 fp8-tensorwise fp8-blockwise}
    step "e2e summary"; node examples/gpt2/recipes.mjs /tmp/e2e-* | tee "$OUT/e2e-recipes.md"
    ;;
  e2e-torch)
    torch_run /tmp/e2e-bf16 compile 400
    torch_run /tmp/e2e-fp8-tensorwise compile-fp8 400
    step "e2e summary"; node examples/gpt2/recipes.mjs /tmp/e2e-* | tee "$OUT/e2e-recipes.md"
    ;;
  gpt2)
    recipes_run gpt2-small "${GPT2_STEPS:-200}" 16 gpt2 bf16 fp8-tensorwise fp8-blockwise
    if [ "${GPT2_TORCH:-1}" != 0 ]; then
      torch_run /tmp/gpt2-bf16 compile 150
      torch_run /tmp/gpt2-fp8-tensorwise compile-fp8 150
    fi
    step "gpt2 summary"; node examples/gpt2/recipes.mjs /tmp/gpt2-* | tee "$OUT/gpt2-recipes.md"
    ;;
  *) echo "fp8-check.sh: unknown part '$part' (tests, tests-native, quant, reduce, gemm, e2e, e2e-torch, gpt2)"; exit 2 ;;
  esac
done
device_end
