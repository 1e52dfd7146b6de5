#!/usr/bin/env bash
# GPT-2 124M (or GPT_CONFIG's model): Deepwell under each recipe, then PyTorch eager and
# torch.compile, on the same GPU, data and initial weights; then the comparison (compare.mjs:
# tables, loss curves, per-kernel breakdown, <out>/summary.json).
#   bash examples/gpt2/run.sh [steps=200] [out=runs/gpt2] [batch=16]
# Environment: RECIPES (default "bf16"; the first must be bf16, whose run is in <out>, each other in
#   <out>/recipe-<name>/), TORCH_MODES (default "eager compile"; also compile-fp8), GPT_CONFIG and
#   GPT2_WARMUP as bench.mjs takes them.
set -euo pipefail
cd "$(dirname "$0")"
steps=${1:-200}
out=$(realpath -m "${2:-../../runs/gpt2}")
batch=${3:-16}
recipes=${RECIPES:-bf16}
[ "${recipes%% *}" = bf16 ] || { echo "run.sh: RECIPES must start with bf16 (its run is the one PyTorch's is compared with), got '$recipes'" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
date -u
for r in $recipes; do
  dir=$out
  [ "$r" = bf16 ] || dir=$out/recipe-$r
  RECIPE=$r node bench.mjs "$steps" "$dir" "$batch" 2>&1 | grep -v '^step ' | tail -5
done
for mode in ${TORCH_MODES:-eager compile}; do
  python3 bench_torch.py "$out" "$mode" > "$out/torch-$mode.jsonl"
  tail -1 "$out/torch-$mode.jsonl"
done
node compare.mjs "$out"
