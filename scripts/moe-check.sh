#!/usr/bin/env bash
# On the GPU host: issue 21's checks (dropless MoE), by part, into $OUT.
#   OUT=$OUT bash scripts/moe-check.sh [tests] [bench] [bandwidth] [sanitize]
#   variants  only the Hopper variants' test (cuda-grouped 'wide' and 'pingpong': 128 x 256 tiles, the
#             pingpong schedule), under a short limit: a first run of a kernel may hang
#   fp8       only the FP8 grouped GEMM's, its fused GELU / dgelu / SwiGLU + quantize epilogues' and the
#             FP8 weight gradient's tests (precision kgrouped_gpu, grouped_scaled_matmul_gpu,
#             grouped_act_gpu), each under a short limit
#   tests     the GPU tests of the dropless kernels (ir cuda-grouped, cuda-moe: the grouped GEMMs, their
#             Hopper kernels and fused epilogues), the FP8 grouped GEMM (precision
#             grouped_scaled_matmul_gpu), the FP8 expert weight gradient (precision kgrouped_gpu), the
#             batched quantize (precision gpu), a dropless MoE GPT
#             against the CPU reference (nn gpu_moe), and one under native fp8-blockwise (precision
#             native_policy_gpu)
#   bench     the grouped GEMM beside torch._grouped_mm (bench/grouped_gemm.sh; GROUPED_GEMM_CASES,
#             GROUPED_GEMM_ROUNDS as there)
#   bandwidth the memory-bound kernels beside a device copy (bench/membound.mjs), MoE's permute,
#             unpermute and weight gradient among them (issue 21: >= 0.8 of copy)
#   sanitize  memcheck, racecheck, synccheck and initcheck over those test files
#   model     the MoE GPT (GPT_CONFIG moe-8x: 8 experts top-2, width 1024, 12 layers, T 1024) for
#             MOE_STEPS steps (default 300), batch MOE_BATCH (16): Deepwell under MOE_RECIPES (default
#             "bf16 fp8-blockwise") beside PyTorch under MOE_TORCH ("compile": torch.compile of
#             bench_torch.py's dropless MoE on torch._grouped_mm), on the same data and initial
#             weights (examples/gpt2/run.sh, compare.mjs); the logs and tables into moe-gpt.tgz.
#             MOE_CONFIG replaces the preset (a GPT_CONFIG JSON: e.g. moe-8x's shape with SwiGLU experts)
#   schedules the bf16 MoE GPT alone (MOE_SCHEDULE_STEPS, default 100) under the default grouped GEMM, the
#             pingpong schedule and the 128 x 256 tiles: which the defaults should take
#   rerun     whether fp8-blockwise training repeats bit for bit: trainer test/gpu_snapshot.test.ts (the
#             precision snapshots change nothing), then the MoE GPT (MOE_CONFIG, default moe-8x) under
#             fp8-blockwise for MOE_RERUN_STEPS (60) steps four times on this machine, twice without the
#             fallback (GPT2_FALLBACK=0, no snapshots) and twice with it; the first step where each pair's
#             losses differ, and the snapshot steps (two runs of one commit diverged from step 30 in
#             session 23; four such 80-step runs left one another at steps 3, 30 and 54 in session 24)
#   bisect    which part of the experts' FP8 path does not repeat: examples/gpt2/rerun.mjs (the model
#             compiled once per variant, retrained RERUN_RUNS (4) times for RERUN_STEPS (40) steps in
#             one process) over RERUN_VARIANTS (default fp8-experts-nofuse, fp8-experts-wgrad,
#             fp8-experts-general, fp8-experts; each about 1.5 min), then precision's
#             grouped_repeat_gpu test (every FP8 MoE kernel at moe-8x's size, DW_REPEAT (16) times back to back)
#   repeat    after a fix: precision kgrouped_gpu (the native FP8 weight gradient, forced on there:
#             DEEPWELL_FP8_WGRAD=native; on by default elsewhere), rerun.mjs over RERUN_VARIANTS (default fp8-experts,
#             fp8; RERUN_RUNS 4 x RERUN_STEPS 40), grouped_repeat_gpu (DW_REPEAT 8, REPEAT_TIMEOUT 100 s)
#   wgradsan  memcheck and racecheck over precision kgrouped_gpu alone (the FP8 weight gradient),
#             side by side, each under SANITIZE_TIMEOUT (default 150 s)
#   wgradpaths the FP8 weight gradient's scale paths (DEEPWELL_FP8_WGRAD_SCALES tma, the default, and
#             staged; grouped_fp8_wgrad_sm90.cuh): the fp8-wgrad bench cases under each, then under
#             each kgrouped_gpu and rerun.mjs's fp8-experts (RERUN_RUNS 4 x RERUN_STEPS 40), then
#             grouped_repeat_gpu under the default (DW_REPEAT 8; WGRAD_REPEAT=0 skips it). WGRAD_BENCH_PATHS
#             and WGRAD_RERUN_PATHS (default "staged tma") narrow the parts. (Session 26's call 2 ran
#             it with a third path, global, since removed: docs/gpu-runs/2026-12-06-session26.)
#   sass      the grouped kernels' SASS: the Hopper ones' HGMMA count per kernel, and that the
#             sm_100f cubin of the Blackwell block-scaled kernel holds tcgen05 (UTC*) instructions
#             (compiled, never run: no Blackwell GPU)
# Needs .device/ from scripts/device-pack.sh.
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests bench bandwidth)
source "$(dirname "$0")/device-lib.sh"
device_begin moe-check
vitest="node ../../node_modules/vitest/vitest.mjs"
FILES="packages/ir/test/cuda-grouped.test.ts packages/ir/test/cuda-moe.test.ts packages/precision/test/grouped_scaled_matmul_gpu.test.ts packages/precision/test/kgrouped_gpu.test.ts packages/precision/test/grouped_act_gpu.test.ts packages/nn/test/gpu_moe.test.ts"

# The FP8 kernels' test files, each under the given limit (seconds): the parts fp8 and tests run them.
fp8_grouped_test() {
  step "precision: the FP8 blockwise grouped GEMM on CUDA (grouped_scaled_matmul)"
  (cd packages/precision && timeout "$1" $vitest run test/grouped_scaled_matmul_gpu.test.ts --reporter=verbose) > "$OUT/precision-grouped-fp8.log" 2>&1
  echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|Error" "$OUT/precision-grouped-fp8.log" | tail -14
}
fp8_act_test() {
  step "precision: the FP8 grouped GEMM with GELU / dgelu / SwiGLU and the next quantize fused (grouped_act_gpu)"
  (cd packages/precision && timeout "$1" $vitest run test/grouped_act_gpu.test.ts --reporter=verbose) > "$OUT/precision-grouped-act.log" 2>&1
  echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|Error" "$OUT/precision-grouped-act.log" | tail -20
}
fp8_wgrad_test() {
  step "precision: the FP8 expert weight gradient on CUDA (kgrouped_gpu: quantize_kgrouped, grouped_scaled_matmul_wgrad)"
  (cd packages/precision && timeout "$1" $vitest run test/kgrouped_gpu.test.ts --reporter=verbose) > "$OUT/precision-kgrouped.log" 2>&1
  echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|Error|worst" "$OUT/precision-kgrouped.log" | tail -24
}
# rerun.mjs over RERUN_VARIANTS (default: $1) under MOE_TIMEOUT (default: $2 s), into rerun.log.
rerun_variants() {
  step "in-process reruns of the MoE GPT per variant (examples/gpt2/rerun.mjs)"
  (cd examples/gpt2 && GPT_CONFIG=${MOE_CONFIG:-moe-8x} RERUN_RUNS=${RERUN_RUNS:-4} RERUN_STEPS=${RERUN_STEPS:-40} timeout ${MOE_TIMEOUT:-$2} \
    node rerun.mjs "${RERUN_VARIANTS:-$1}") 2>&1 | grep --line-buffered -v "map file\|ENOENT" | tee "$OUT/rerun.log"
}
# precision grouped_repeat_gpu, DW_REPEAT (default: $1) runs per kernel, under $2 seconds.
repeat_kernels() {
  step "each FP8 MoE kernel at moe-8x's size, DW_REPEAT times back to back (precision grouped_repeat_gpu)"
  (cd packages/precision && DW_REPEAT=${DW_REPEAT:-$1} timeout "$2" $vitest run test/grouped_repeat_gpu.test.ts --reporter=verbose) > "$OUT/grouped-repeat.log" 2>&1
  echo "exit $?"; grep -E "✓|×|FAIL|Tests |differ" "$OUT/grouped-repeat.log" | tail -6
}

for part in "${parts[@]}"; do
  case $part in
  variants)
    step "ir: the 128 x 256 tiles and the pingpong schedule (cuda-grouped -t 'wide|pingpong')"
    (cd packages/ir && timeout 420 $vitest run test/cuda-grouped.test.ts -t "wide|pingpong" --reporter=verbose) > "$OUT/ir-variants.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|Error|expected" "$OUT/ir-variants.log" | head -30
    ;;
  fp8)
    # The kernels that have not run yet, alone (a first call with little device time): the FP8
    # grouped GEMM's two partials and the FP8 expert weight gradient.
    fp8_wgrad_test 150
    fp8_grouped_test 150
    fp8_act_test 150
    ;;
  tests)
    # Each file under its own limit: a kernel that hangs (a first run of the Hopper grouped GEMM)
    # blocks the process in a synchronize, which only the outer timeout ends.
    step "ir: the dropless kernels on CUDA (cuda-grouped: sort, grouped GEMMs, permute, router)"
    (cd packages/ir && timeout 400 $vitest run test/cuda-grouped.test.ts --reporter=verbose) > "$OUT/ir-grouped.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|Error" "$OUT/ir-grouped.log" | tail -40
    step "ir: the moe family on CUDA (cuda-moe)"
    (cd packages/ir && timeout 150 $vitest run test/cuda-moe.test.ts --reporter=verbose) > "$OUT/ir-moe.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→" "$OUT/ir-moe.log" | tail -20
    fp8_grouped_test 240
    fp8_act_test 150
    fp8_wgrad_test 200
    step "precision: quantize of a batch (the experts' weights) and fake_quant (the emulated backward) on CUDA"
    (cd packages/precision && timeout 120 $vitest run test/gpu.test.ts -t "quantize_cuda on a batch|fake_quant on CUDA" --reporter=verbose) > "$OUT/precision-batch.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→" "$OUT/precision-batch.log" | tail -8
    step "nn: a dropless MoE GPT on the GPU beside the CPU reference"
    (cd packages/nn && timeout 300 $vitest run test/gpu_moe.test.ts --reporter=verbose) > "$OUT/nn-moe.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→" "$OUT/nn-moe.log" | tail -20
    step "precision: a dropless MoE GPT under native fp8-blockwise (the FP8 grouped GEMM in the step)"
    (cd packages/precision && timeout 300 $vitest run test/native_policy_gpu.test.ts -t "dropless MoE" --reporter=verbose) > "$OUT/precision-moe-native.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|native:|emulated" "$OUT/precision-moe-native.log" | tail -12
    ;;
  bench)
    step "grouped GEMM beside torch._grouped_mm"
    OUT=$OUT timeout 360 bash bench/grouped_gemm.sh > "$OUT/bench.log" 2>&1; echo "exit $?"
    node bench/grouped_gemm_table.mjs "$OUT/grouped-gemm-bench.jsonl"
    ;;
  bandwidth)
    step "memory-bound kernels beside a device copy (MoE's permute and unpermute among them)"
    timeout 400 node bench/membound.mjs > "$OUT/membound.log" 2>&1; echo "exit $?"
    grep -E "^\|" "$OUT/membound.log"
    ;;
  sanitize)
    for tool in memcheck racecheck synccheck initcheck; do
      step "compute-sanitizer --tool $tool over the dropless MoE tests"
      OUT=$OUT SANITIZE_JOBS=3 SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-200} bash scripts/sanitize-tests.sh "$tool" $FILES; echo "exit $?"
    done
    ;;
  model)
    step "the MoE GPT beside PyTorch (examples/gpt2/run.sh, GPT_CONFIG moe-8x)"
    rm -rf /tmp/moe-8x
    GPT_CONFIG=${MOE_CONFIG:-moe-8x} RECIPES=${MOE_RECIPES:-bf16 fp8-blockwise} TORCH_MODES=${MOE_TORCH:-compile} timeout ${MOE_TIMEOUT:-540} \
      bash examples/gpt2/run.sh "${MOE_STEPS:-300}" /tmp/moe-8x "${MOE_BATCH:-16}" > "$OUT/moe-gpt.log" 2>&1
    echo "exit $?"; grep -vE "^step " "$OUT/moe-gpt.log" | tail -60
    (cd /tmp/moe-8x && find . \( -name '*.jsonl' -o -name '*.json' -o -name '*.md' -o -name '*.svg' \) -size -20M | tar -czf "$OUT/moe-gpt.tgz" -T -)
    ;;
  schedules)
    # The bf16 MoE GPT alone (no PyTorch, MOE_SCHEDULE_STEPS steps, default 100) under each Hopper
    # tiling of the grouped GEMM, the same data and weights: which one the defaults should take.
    for v in default DW_GROUPED_SCHEDULE=pingpong DW_GROUPED_TILE_N=256; do
      step "the bf16 MoE GPT, grouped GEMM: $v"
      d=/tmp/moe-8x-${v##*=}; rm -rf "$d"
      env ${v/default/DW_UNUSED=} GPT_CONFIG=moe-8x RECIPES=bf16 TORCH_MODES=none timeout ${MOE_TIMEOUT:-200} \
        bash examples/gpt2/run.sh "${MOE_SCHEDULE_STEPS:-100}" "$d" "${MOE_BATCH:-16}" > "$OUT/moe-gpt-${v##*=}.log" 2>&1
      echo "exit $?"; grep -E "tokens/s|median|Error" "$OUT/moe-gpt-${v##*=}.log" | tail -6
      (cd "$d" && find . \( -name '*.jsonl' -o -name '*.json' -o -name '*.md' \) -size -20M | tar -czf "$OUT/moe-gpt-${v##*=}.tgz" -T -)
    done
    ;;
  rerun)
    step "trainer: the precision snapshots change nothing on the GPU (gpu_snapshot)"
    (cd packages/trainer && timeout 300 $vitest run test/gpu_snapshot.test.ts --reporter=verbose) > "$OUT/trainer-snapshot.log" 2>&1
    echo "exit $?"; grep -E "✓|✗|×|FAIL|Tests |→|fp8-blockwise MoE|Error" "$OUT/trainer-snapshot.log" | tail -8
    for i in 1 2; do
      for fb in 0 1; do
        step "the fp8-blockwise MoE GPT, run $i, GPT2_FALLBACK=$fb"
        d=/tmp/moe-rerun-$fb-$i; rm -rf "$d"
        # bench.mjs itself: run.sh's first recipe must be bf16.
        (cd examples/gpt2 && GPT2_WARMUP=${GPT2_WARMUP:-${MOE_RERUN_STEPS:-60}} GPT2_FALLBACK=$fb GPT_CONFIG=${MOE_CONFIG:-moe-8x} RECIPE=fp8-blockwise timeout ${MOE_TIMEOUT:-200} \
          node bench.mjs "${MOE_RERUN_STEPS:-60}" "$d" "${MOE_BATCH:-16}") > "$OUT/moe-rerun-$fb-$i.log" 2>&1
        echo "exit $?"; find "$d" -name deepwell.jsonl -exec cp {} "$OUT/moe-rerun-$fb-$i.jsonl" \;
      done
    done
    node -e '
      const fs = require("fs"), dir = process.argv[1];
      const read = (n) => fs.existsSync(`${dir}/${n}.jsonl`) ? fs.readFileSync(`${dir}/${n}.jsonl`, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : [];
      const runs = ["moe-rerun-0-1", "moe-rerun-0-2", "moe-rerun-1-1", "moe-rerun-1-2"];
      for (const [a, b] of runs.flatMap((a, i) => runs.slice(i + 1).map((b) => [a, b]))) {
        const [x, y] = [read(a), read(b)].map((log) => log.filter((l) => l.event === "step").map((l) => l.loss));
        const i = x.findIndex((v, k) => v !== y[k]);
        console.log(`${a} vs ${b}: ${x.length} and ${y.length} steps; ${i < 0 && x.length === y.length && x.length > 0 ? "bit for bit equal" : `first difference at step ${i + 1}`}`);
      }
      for (const n of ["moe-rerun-1-1", "moe-rerun-1-2"]) console.log(`${n} snapshots at steps: ${read(n).filter((l) => l.event === "snapshot").map((l) => l.step).join(", ")}`);
    ' "$OUT"
    ;;
  bisect)
    rerun_variants fp8-experts-nofuse,fp8-experts-wgrad,fp8-experts-general,fp8-experts 480
    repeat_kernels 16 300
    ;;
  repeat)
    # After a fix: the FP8 weight gradient's test, then in-process reruns of the variants that
    # left one another (default fp8-experts, fp8), then every FP8 MoE kernel DW_REPEAT times.
    fp8_wgrad_test 150
    rerun_variants fp8-experts,fp8 300
    repeat_kernels 8 "${REPEAT_TIMEOUT:-100}"
    ;;
  wgradsan)
    step "compute-sanitizer memcheck and racecheck over the FP8 weight gradient's test (kgrouped_gpu)"
    OUT=$OUT SANITIZE_JOBS=2 SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-150} bash scripts/sanitize-tests.sh memcheck,racecheck packages/precision/test/kgrouped_gpu.test.ts; echo "exit $?"
    ;;
  wgradpaths)
    for sc in ${WGRAD_BENCH_PATHS:-tma staged}; do
      step "the fp8-wgrad bench cases, scales $sc"
      DEEPWELL_FP8_WGRAD_SCALES=$sc GROUPED_GEMM_CASES=e8-up-fp8-wgrad-balanced,e64-up-fp8-wgrad-skewed,e8-up-wgrad-balanced OUT=$OUT/bench-$sc \
        timeout 120 bash -c 'mkdir -p $OUT && bash bench/grouped_gemm.sh' > "$OUT/bench-$sc.log" 2>&1; echo "exit $?"
      node bench/grouped_gemm_table.mjs "$OUT/bench-$sc/grouped-gemm-bench.jsonl"
    done
    for sc in ${WGRAD_RERUN_PATHS:-staged tma}; do
      export DEEPWELL_FP8_WGRAD_SCALES=$sc
      step "scales $sc: kgrouped_gpu"
      fp8_wgrad_test 150
      mv "$OUT/precision-kgrouped.log" "$OUT/precision-kgrouped-$sc.log"
      step "scales $sc: in-process reruns"
      rerun_variants fp8-experts 200
      mv "$OUT/rerun.log" "$OUT/rerun-$sc.log"
    done
    unset DEEPWELL_FP8_WGRAD_SCALES
    [ "${WGRAD_REPEAT:-1}" = 1 ] && repeat_kernels 8 "${REPEAT_TIMEOUT:-110}"
    ;;
  sass)
    step "SASS of the grouped kernels (cuobjdump)"
    node_file=packages/kernels-native/prebuilds/linux-x64/@deepwell+kernels-native.napi.node
    for arch in sm_90a sm_100f; do
      cuobjdump -sass -arch "$arch" "$node_file" > "$OUT/sass-$arch.txt" 2>&1; echo "cuobjdump $arch: exit $?"
      awk '/Function : /{f=$3} /HGMMA|UTC[A-Z]*MMA|UTCCP|UTCBAR/{n[f]++} END{for (k in n) if (k ~ /grouped/) print n[k], k}' "$OUT/sass-$arch.txt" | sort -k2 | head -40
    done
    grep -oE "UTC[A-Z0-9_.]*" "$OUT/sass-sm_100f.txt" | sort | uniq -c | head -20
    rm -f "$OUT"/sass-*.txt
    ;;
  *) echo "moe-check.sh: unknown part '$part'"; exit 2 ;;
  esac
done
device_end
