#!/usr/bin/env bash
# On the GPU host: issue 18's GPU checks, by part, into $OUT. Needs .device/ from scripts/device-pack.sh.
#   OUT=$OUT bash scripts/decode-check.sh [decode] [tests] [bench] [sanitize]
#   decode  the decode kernels (attention-sparsek test/gpu_decode.test.ts) and the Generator on the
#           GPU (nn test/gpu_generate.test.ts)
#   tests   the package GPU suites the change touches: attention-sparsek's, ir's cuda-*, nn's and
#           trainer's
#   bench   bench/decode.mjs (GPT-2 124M: the Hugging Face export, Deepwell's logits, decode speed
#           with and without the cache), then bench/decode_torch.py on the same files (its forward
#           from the Hugging Face names, the logits compared, PyTorch's KV-cache decode)
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(decode tests bench)
source "$(dirname "$0")/device-lib.sh"
device_begin decode-check
vitest="node ../../node_modules/vitest/vitest.mjs"

for part in "${parts[@]}"; do
  case $part in
  decode)
    for spec in "attention-sparsek:test/gpu_decode.test.ts" "nn:test/gpu_generate.test.ts"; do
      pkg=${spec%%:*}
      step "$pkg GPU tests (${spec#*:})"
      (cd packages/$pkg && timeout 150 $vitest run ${spec#*:}) > "$OUT/$pkg-decode.log" 2>&1
      echo "exit $?"; grep -E "✓|✗|×|FAIL|Test Files|Tests |decode logits|Error" "$OUT/$pkg-decode.log" | tail -25
    done
    ;;
  tests)
    for spec in "attention-sparsek:test/gpu_decode.test.ts test/gpu.test.ts test/decode.test.ts" \
                "ir:test/cuda-compile.test.ts test/cuda-nn.test.ts test/cuda-fused.test.ts test/cuda-tensor.test.ts test/cuda-optim.test.ts test/cuda-adamw.test.ts test/cuda-gemm.test.ts" \
                "nn:test/gpu_generate.test.ts test/gpu.test.ts test/generate.test.ts test/gpt.test.ts" \
                "trainer:test/gpu.test.ts"; do
      pkg=${spec%%:*}
      step "$pkg GPU tests (${spec#*:})"
      (cd packages/$pkg && timeout 400 $vitest run ${spec#*:}) > "$OUT/$pkg-gpu.log" 2>&1
      echo "exit $?"; grep -E "✗|×|FAIL|Test Files|Tests |decode logits" "$OUT/$pkg-gpu.log" | tail -15
    done
    ;;
  bench)
    step "bench/decode.mjs: GPT-2 124M export, logits, decode speed"
    mkdir -p /tmp/decode-bench
    GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" timeout 300 node bench/decode.mjs /tmp/decode-bench 2>&1 | tee "$OUT/decode.log" | grep -v '^{'
    cp /tmp/decode-bench/decode.json /tmp/decode-bench/hf/config.json "$OUT/" 2>/dev/null
    step "bench/decode_torch.py: the forward from the Hugging Face names, PyTorch KV-cache decode"
    timeout 300 python3 bench/decode_torch.py /tmp/decode-bench "$OUT/decode-torch.json" 2>&1 | tee "$OUT/decode-torch.log"
    ;;
  sanitize)
    san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in memcheck racecheck; do
      step "compute-sanitizer --tool $tool: the decode kernels' tests"
      (cd packages/attention-sparsek && timeout 200 "$san" --tool $tool --target-processes all --print-limit 20 \
        $vitest run test/gpu_decode.test.ts --pool=threads) > "$OUT/sanitize-$tool.log" 2>&1
      echo "exit $?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Tests |========= (Invalid|Race|Error)" "$OUT/sanitize-$tool.log" | sort | uniq -c | head -20
    done
    ;;
  *) echo "decode-check.sh: unknown part '$part' (decode, tests, bench, sanitize)"; exit 2 ;;
  esac
done
device_end
