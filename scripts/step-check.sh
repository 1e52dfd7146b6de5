#!/usr/bin/env bash
# On the GPU host: issue 16's checks of the whole training step, by part, into $OUT (a log per part,
# each run's logs, summary.json, breakdown.md and loss curves, and a tarball).
#   OUT=$OUT bash scripts/step-check.sh [tests] [gpt2] [repeat] [long] [t2048] [big] [bench]
#   tests   the GPU tests of the step's kernels and passes (ir, nn, trainer; STEP_TESTS overrides
#           the list of ir test files)
#   gpt2    GPT-2 124M, B16, T1024, GPT2_STEPS (200) steps, under each of RECIPES (bf16
#           fp8-tensorwise), beside PyTorch eager and torch.compile (examples/gpt2/run.sh)
#   repeat  the bf16 GPT-2 run again, step for step against gpt2's: bitwise-identical losses?
#   long    GPT-2 bf16 for LONG_STEPS (1000) steps: host time per replayed step, bytes in use
#   t2048   GPT-2 124M at T 2048 (B 8), BIG_STEPS (150) steps, beside torch.compile
#   big     the ~1B GPT (16 layers, width 2048, T 2048, B 8; 7× GPT-2's parameters), BIG_STEPS
#           steps, beside torch.compile
#   bench   BENCH_CMDS: extra benchmark commands (';'-separated), each logged
# Needs .device/ from scripts/device-pack.sh (this machine's Node and the packages).
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests gpt2)
source "$(dirname "$0")/device-lib.sh"
device_begin step-check

# Keep a run's records (not its data shard or initial weights) under $OUT/<name>.
keep() { # <run dir> <name>
  mkdir -p "$OUT/$2"
  find "$1" -maxdepth 2 \( -name '*.jsonl' -o -name '*.json' -o -name '*.md' -o -name '*.svg' \) -print0 |
    while IFS= read -r -d '' f; do rel=${f#"$1"/}; mkdir -p "$OUT/$2/$(dirname "$rel")"; cp "$f" "$OUT/$2/$rel"; done
}
E1B='{"vocabSize":50304,"blockSize":2048,"nLayer":16,"nHead":16,"nEmbd":2048}'
T2048='{"vocabSize":50304,"blockSize":2048,"nLayer":12,"nHead":12,"nEmbd":768}'

for part in "${parts[@]}"; do
  case $part in
  tests)
    step "ir GPU tests"
    (cd packages/ir && timeout 400 node ../../node_modules/vitest/vitest.mjs run ${STEP_TESTS:-test/cuda-nn.test.ts test/cuda-fused.test.ts test/cuda-optim.test.ts test/cuda-gemm.test.ts test/cuda-tensor.test.ts}) > "$OUT/ir-gpu.log" 2>&1
    echo "exit $?"; grep -E "✗|×|FAIL|Test Files|Tests " "$OUT/ir-gpu.log" | tail -30
    step "kernels-native ABI and GPU tests"
    (cd packages/kernels-native && timeout 200 node ../../node_modules/vitest/vitest.mjs run test/abi.test.ts test/gpu.test.ts) > "$OUT/native-gpu.log" 2>&1
    echo "exit $?"; grep -E "✗|×|FAIL|Tests " "$OUT/native-gpu.log" | tail -12
    step "nn and trainer GPU tests"
    (cd packages/nn && timeout 300 node ../../node_modules/vitest/vitest.mjs run test/gpu.test.ts) > "$OUT/nn-gpu.log" 2>&1
    echo "nn exit $?"; grep -E "✗|×|FAIL|Tests |host time|Δloss" "$OUT/nn-gpu.log" | tail -12
    (cd packages/trainer && timeout 300 node ../../node_modules/vitest/vitest.mjs run test/gpu.test.ts) > "$OUT/trainer-gpu.log" 2>&1
    echo "trainer exit $?"; grep -E "✗|×|FAIL|Tests " "$OUT/trainer-gpu.log" | tail -12
    ;;
  gpt2)
    step "GPT-2 124M: $(echo ${RECIPES:-bf16 fp8-tensorwise}), ${GPT2_STEPS:-200} steps, beside PyTorch"
    RECIPES=${RECIPES:-bf16 fp8-tensorwise} timeout 560 bash examples/gpt2/run.sh "${GPT2_STEPS:-200}" /tmp/gpt2 16 2>&1 | grep -v '^| [0-9]'
    keep /tmp/gpt2 gpt2
    ;;
  repeat)
    step "GPT-2 bf16 again: the same losses, bit for bit?"
    (cd examples/gpt2 && timeout 200 node bench.mjs "${GPT2_STEPS:-200}" /tmp/gpt2-repeat 16 2>&1 | grep -v '^step ' | tail -2)
    node examples/gpt2/same-losses.mjs /tmp/gpt2/deepwell.jsonl /tmp/gpt2-repeat/deepwell.jsonl | tee "$OUT/repeat.json"
    keep /tmp/gpt2-repeat gpt2-repeat
    ;;
  long)
    step "GPT-2 bf16, ${LONG_STEPS:-1000} steps: host time and memory over the replayed steps"
    (cd examples/gpt2 && timeout 300 node bench.mjs "${LONG_STEPS:-1000}" /tmp/gpt2-long 16 2>&1 | grep -v '^step ' | tail -2)
    (cd examples/gpt2 && node compare.mjs /tmp/gpt2-long | grep -E "host time|median step|deepwell bf16 \|")
    keep /tmp/gpt2-long gpt2-long
    ;;
  t2048 | big)
    [ "$part" = t2048 ] && model=$T2048 || model=$E1B
    step "$part: $model, B 8, ${BIG_STEPS:-150} steps, beside torch.compile"
    GPT_CONFIG=$model GPT2_WARMUP=${BIG_WARMUP:-50} TORCH_MODES=compile RECIPES=${BIG_RECIPES:-bf16} timeout 590 bash examples/gpt2/run.sh "${BIG_STEPS:-150}" "/tmp/$part" 8 2>&1 | grep -v '^| [0-9]'
    keep "/tmp/$part" "$part"
    ;;
  bench)
    IFS=';' read -ra cmds <<< "${BENCH_CMDS:-}"
    for c in "${cmds[@]}"; do step "bench: $c"; timeout 200 bash -c "$c" 2>&1 | tee -a "$OUT/bench.log" | tail -30; done
    ;;
  *) echo "step-check.sh: unknown part '$part' (tests, gpt2, repeat, long, t2048, big, bench)"; exit 2 ;;
  esac
done
device_end
