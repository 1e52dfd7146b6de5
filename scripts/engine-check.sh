#!/usr/bin/env bash
# On the GPU host: issue 19's one-call API checks, by part, into $OUT. Needs .device/ from
# scripts/device-pack.sh.
#   OUT=$OUT bash scripts/engine-check.sh [tests] [bench]
#   tests  trainer's GPU tests (test/gpu_engine.test.ts, test/gpu.test.ts)
#   bench  bench/engine.mjs: GPT-2 124M through optimize() with 'auto' and with bf16 (dryrun, the
#          kernel profile, Trainer.fromEngine's training speed)
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests bench)
source "$(dirname "$0")/device-lib.sh"
device_begin engine-check
vitest="node ../../node_modules/vitest/vitest.mjs"

for part in "${parts[@]}"; do
  case $part in
  tests)
    step "trainer GPU tests (test/gpu_engine.test.ts test/gpu.test.ts)"
    (cd packages/trainer && timeout 300 $vitest run test/gpu_engine.test.ts test/gpu.test.ts) > "$OUT/trainer-gpu.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Test Files|Tests |Error|^\| |^step " "$OUT/trainer-gpu.log" | tail -60
    ;;
  bench)
    step "bench/engine.mjs: GPT-2 124M, optimize() 'auto' and bf16, profile, Trainer.fromEngine"
    GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" timeout 400 node bench/engine.mjs "$OUT" 2>&1 | tee "$OUT/engine.log"
    ;;
  *) echo "engine-check.sh: unknown part '$part' (tests, bench)"; exit 2 ;;
  esac
done
device_end
