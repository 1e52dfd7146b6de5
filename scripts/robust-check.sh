#!/usr/bin/env bash
# On the GPU host: issue 20's checks (bad input never corrupts, hangs or lies), by part, into $OUT.
# Needs .device/ from scripts/device-pack.sh.
#   OUT=$OUT bash scripts/robust-check.sh [fuzz] [faults] [alloc] [soak] [resume] [amax-loop] [memcheck] [racecheck] [synccheck] [initcheck]
#   fuzz       the fuzz suite with the GPU present (fuzz/run.mjs; FUZZ_ONLY=a,b for some modules): the
#              native boundary's cases then reach real allocations and streams
#   faults     out of memory at every allocation site of a compiled step (nn test/gpu_faults.test.ts)
#   alloc      100,000 allocate/free cycles (bench/soak.mjs alloc)
#   soak       10,000 training steps of a small GPT, memory sampled (bench/soak.mjs train)
#   amax-loop  precision's fused-amax test 40 times without a sanitizer (a value flaky before, 18/40)
#   resume     kill -9 at random moments and mid-checkpoint, resumed, losses against an uninterrupted run
#   memcheck racecheck synccheck initcheck
#              compute-sanitizer over the GPU test files (scripts/sanitize-tests.sh); initcheck only
#              over the quantizers' and the attention kernels' tests (SANITIZE_FILES for others). Tools joined by commas
#              (racecheck,synccheck) run side by side; SANITIZE_JOBS files at once (default 8)
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(fuzz faults alloc soak resume)
source "$(dirname "$0")/device-lib.sh"
device_begin robust-check
vitest="node ../../node_modules/vitest/vitest.mjs"

for part in "${parts[@]}"; do
  case $part in
  fuzz)
    step "fuzz suite, GPU present"
    timeout 500 node fuzz/run.mjs --json "$OUT/fuzz.json" --workers 4 ${FUZZ_ONLY:+--only $FUZZ_ONLY} > "$OUT/fuzz.log" 2>&1
    echo "exit $?"; grep -vE "^\s+at " "$OUT/fuzz.log" | tail -40
    ;;
  faults)
    step "out of memory at every allocation site of a compiled step (nn test/gpu_faults.test.ts)"
    (cd packages/nn && timeout 500 $vitest run test/gpu_faults.test.ts) > "$OUT/faults.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |Error|allocation sites|site " "$OUT/faults.log" | head -30
    ;;
  alloc)
    step "100,000 allocate/free cycles"
    timeout 300 node --expose-gc bench/soak.mjs alloc --cycles 100000 --json "$OUT/alloc.json"; echo "exit $?"
    step "10,000,000 allocate/free cycles (a trend too small to see in 100,000)"
    timeout 300 node --expose-gc bench/soak.mjs alloc --cycles 10000000 --json "$OUT/alloc-10m.json"; echo "exit $?"
    ;;
  soak)
    step "10,000 training steps, memory sampled every 100"
    rm -rf /tmp/soak-train && timeout 550 node --expose-gc bench/soak.mjs train --steps 10000 --dir /tmp/soak-train --check-memory --json "$OUT/soak.json"; echo "exit $?"
    step "the same compiled step run 10,000 times without the Trainer"
    timeout 300 node --expose-gc bench/soak.mjs bare --steps 10000 --json "$OUT/soak-bare.json"; echo "exit $?"
    step "the same, with new input arrays every step (as the Trainer passes them)"
    timeout 300 node --expose-gc bench/soak.mjs bare --fresh --steps 10000 --json "$OUT/soak-bare-fresh.json"; echo "exit $?"
    ;;
  resume)
    step "kill -9 at random moments (and mid-checkpoint), resumed, beside an uninterrupted run"
    timeout 550 node bench/soak.mjs resume --steps 6000 --kills 6 --json "$OUT/resume.json"; echo "exit $?"
    ;;
  memcheck* | racecheck* | synccheck*)
    step "compute-sanitizer --tool $part over every GPU test file"
    # SANITIZE_FILES="a.test.ts b.test.ts" for some of the files.
    OUT=$OUT SANITIZE_JOBS=${SANITIZE_JOBS:-8} SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-240} bash scripts/sanitize-tests.sh "$part" ${SANITIZE_FILES:-}; echo "exit $?"
    ;;
  initcheck)
    step "compute-sanitizer --tool initcheck over the quantizers' and the attention kernels' tests"
    OUT=$OUT SANITIZE_JOBS=${SANITIZE_JOBS:-8} SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-240} bash scripts/sanitize-tests.sh initcheck ${SANITIZE_FILES:-packages/precision/test/gpu.test.ts \
      packages/attention-sparsek/test/gpu.test.ts packages/attention-sparsek/test/gpu_sparsek.test.ts packages/attention-sparsek/test/gpu_decode.test.ts}; echo "exit $?"
    ;;
  amax-loop)
    step "precision's fused-amax test 40 times, no sanitizer (it failed 18 of 40 before interpret rounded bf16 inputs)"
    fails=0
    for i in $(seq 1 40); do
      (cd packages/precision && timeout 60 $vitest run test/gpu.test.ts -t "quantizers take") > "$OUT/amax-$i.log" 2>&1 || { fails=$((fails + 1)); echo "run $i failed:"; grep -E "AssertionError|expected" "$OUT/amax-$i.log" | head -3; }
    done
    echo "amax loop: $((40 - fails)) of 40 passed"
    ;;
  *) echo "robust-check.sh: unknown part '$part'"; exit 2 ;;
  esac
done
device_end
