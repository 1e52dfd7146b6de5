#!/usr/bin/env bash
# On the GPU host: issue 17's checks of SparseK attention, by part, into $OUT (a log per part, the
# benchmark's JSON, a tarball). Needs .device/ from scripts/device-pack.sh.
#   OUT=$OUT bash scripts/sparsek-check.sh [tests] [sanitize] [bench] [quality]
#   tests     the attention-sparsek GPU tests (dense and sparse kernels against the float64
#             references), then nn's (a GPT with sparsek attention on the GPU)
#   sanitize  compute-sanitizer memcheck, then racecheck, on the sparse kernels' small cases
#             (test/gpu_sparsek.test.ts with SANITIZE_SMALL=1)
#   bench     bench/sparsek.mjs (ours, dense and sparse) and bench/sparsek_torch.py (PyTorch's
#             default SDPA) on the same shapes, one after the other
#   quality   examples/attention-sparsek/quality.mjs: dense and sparsek GPTs on the copy task
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests bench)
source "$(dirname "$0")/device-lib.sh"
device_begin sparsek-check
vitest="node ../../node_modules/vitest/vitest.mjs"

for part in "${parts[@]}"; do
  case $part in
  tests)
    step "attention-sparsek GPU tests"
    (cd packages/attention-sparsek && timeout 400 $vitest run test/gpu_sparsek.test.ts test/gpu.test.ts) > "$OUT/attention-gpu.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Test Files|Tests |selection|err " "$OUT/attention-gpu.log" | tail -40
    if [ -n "${NN_TESTS:-}" ]; then
      step "nn GPU tests ($NN_TESTS)"
      (cd packages/nn && timeout 300 $vitest run $NN_TESTS) > "$OUT/nn-gpu.log" 2>&1
      echo "exit $?"; grep -E "✗|×|FAIL|Tests " "$OUT/nn-gpu.log" | tail -12
    fi
    ;;
  sanitize)
    san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in memcheck racecheck; do
      step "compute-sanitizer --tool $tool: the sparse kernels' small cases"
      (cd packages/attention-sparsek && SANITIZE_SMALL=1 timeout 280 "$san" --tool $tool --target-processes all --print-limit 20 \
        node ../../node_modules/vitest/vitest.mjs run test/gpu_sparsek.test.ts --pool=threads) > "$OUT/sanitize-$tool.log" 2>&1
      echo "exit $?"; grep -E "ERROR SUMMARY|Tests |========= (Invalid|Race|Error)" "$OUT/sanitize-$tool.log" | sort | uniq -c | head -20
    done
    ;;
  bench)
    step "bench/sparsek.mjs: ours, dense and sparse"
    timeout 400 node bench/sparsek.mjs "$OUT/sparsek-bench.json" 2>&1 | tee "$OUT/bench.log" | grep -v '^{'
    step "bench/sparsek.mjs: block size 128 on the portable kernels (DEEPWELL_SPARSEK_KERNEL=sm80)"
    DEEPWELL_SPARSEK_KERNEL=sm80 CASES=32768:16:128,65536:32:128 timeout 200 node bench/sparsek.mjs "$OUT/sparsek-bench-sm80.json" 2>&1 | tee -a "$OUT/bench.log" | grep -v '^{' | tail -4
    step "bench/sparsek_torch.py: PyTorch default SDPA"
    timeout 200 python3 bench/sparsek_torch.py "$OUT/sparsek-torch.json" 2>&1 | tee -a "$OUT/bench.log"
    ;;
  quality)
    # QUALITY_RUNS: ';'-separated argument lists for quality.mjs (default: its defaults), each run
    # into $OUT/quality-<n>, limited to QUALITY_TIMEOUT seconds (default 250). QUALITY_PARALLEL=1
    # runs them at once, sharing the GPU: a sweep of what learns, whose step times mean nothing.
    IFS=';' read -ra qruns <<< "${QUALITY_RUNS:-steps=1000}"
    # A pack made before the example depended on ir, nn and trainer lacks their links: add them.
    for p in ir nn trainer; do
      [ -e "examples/attention-sparsek/node_modules/@deepwell/$p" ] || ln -s "../../../../packages/$p" "examples/attention-sparsek/node_modules/@deepwell/$p"
    done
    n=0
    pids=()
    for args in "${qruns[@]}"; do
      n=$((n + 1))
      if [ -n "${QUALITY_PARALLEL:-}" ]; then
        (cd examples/attention-sparsek && timeout "${QUALITY_TIMEOUT:-250}" node quality.mjs out="$OUT/quality-$n" $args > "$OUT/quality-$n.log" 2>&1) &
        pids+=($!)
        continue
      fi
      step "copy task, dense and sparsek GPTs: $args"
      (cd examples/attention-sparsek && timeout "${QUALITY_TIMEOUT:-250}" node quality.mjs out="$OUT/quality-$n" $args) 2>&1 | tee "$OUT/quality-$n.log" | grep -v "^step\|^ *[0-9]* |" | tail -25
    done
    if [ -n "${QUALITY_PARALLEL:-}" ]; then
      wait "${pids[@]}" # (a bare wait would also wait for the log's tee)
      n=0
      for args in "${qruns[@]}"; do
        n=$((n + 1))
        step "copy task, dense and sparsek GPTs, run $n of ${#qruns[@]} at once (step times shared the GPU): $args"
        grep -v "^step\|^ *[0-9]* |" "$OUT/quality-$n.log" | tail -12
      done
    fi
    ;;
  *) echo "sparsek-check.sh: unknown part '$part' (tests, sanitize, bench, quality)"; exit 2 ;;
  esac
done
device_end
