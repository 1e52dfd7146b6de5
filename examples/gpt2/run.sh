#!/usr/bin/env bash
# GPT-2 124M (or GPT_CONFIG's model): Deepwell under each recipe, then PyTorch eager and
# torch.compile, on the same GPU, data and initial weights; then the comparison (compare.mjs:
# tables, loss curves, per-kernel breakdown, <out>/summary.json). README.md beside this says more.
#   bash examples/gpt2/run.sh [steps=200] [out=runs/gpt2] [batch=16]
# Needs: an NVIDIA GPU (the published runs: one H200), Deepwell built (pnpm install && pnpm build at the
#   repository root), and for the PyTorch runs python3 with torch (a CUDA build), numpy and
#   safetensors. It checks all of that first and stops, saying what is missing.
# Environment: RECIPES (default "bf16"; the first must be bf16, whose run is in <out>, each other in
#   <out>/recipe-<name>/), TORCH_MODES (default "eager compile"; also compile-fp8; "none" runs
#   Deepwell alone, without Python), GPT2_WARMUP (the learning rate's warm-up in steps; default
#   100, or half a run shorter than 100 steps), GPT_CONFIG (GPT_CONFIG=moe-8x: the MoE GPT of issue
#   21, beside bench_torch.py's dropless MoE on torch._grouped_mm), GPT2_PRECISION and GPT2_ALLOW_CPU,
#   as bench.mjs takes them (GPT2_ALLOW_CPU=1 GPT_CONFIG=tiny TORCH_MODES=none tries the whole script
#   on the CPU in seconds).
set -euo pipefail
cd "$(dirname "$0")"
steps=${1:-200}
out=$(realpath -m "${2:-../../runs/gpt2}")
batch=${3:-16}
recipes=${RECIPES:-bf16}
torch_modes=${TORCH_MODES:-eager compile}
[ "$torch_modes" = none ] && torch_modes=
usage="Usage: bash examples/gpt2/run.sh [steps=200] [out=runs/gpt2] [batch=16]"
for v in "$steps" "$batch"; do
  case $v in '' | *[!0-9]* | 0*) echo "run.sh: expected whole numbers above 0 for the steps and the batch but received '$steps' and '$batch'"$'\n'"$usage" >&2; exit 2 ;; esac
done
[ "${recipes%% *}" = bf16 ] || { echo "run.sh: RECIPES must start with bf16 (its run is the one PyTorch's is compared with), got '$recipes'" >&2; exit 2; }
[ -f ../../packages/trainer/dist/index.js ] || { echo "run.sh: Deepwell is not built here: run 'pnpm install && pnpm build' at the repository root first" >&2; exit 1; }
# The GPU (unless GPT2_ALLOW_CPU=1, as bench.mjs takes it), and python3 with PyTorch when there are
# PyTorch runs: checked before anything runs.
gpu_check=--gpu
[ "${GPT2_ALLOW_CPU:-}" = 1 ] && gpu_check=
node preflight.mjs $gpu_check ${torch_modes:+--torch}
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; fi
date -u
echo "steps $steps, batch $batch, warm-up ${GPT2_WARMUP:-$([ "$steps" -ge 100 ] && echo 100 || echo $((steps / 2)))} steps; Deepwell: ${recipes}; PyTorch: ${torch_modes:-none}; out $out"
for r in $recipes; do
  dir=$out
  [ "$r" = bf16 ] || dir=$out/recipe-$r
  RECIPE=$r node bench.mjs "$steps" "$dir" "$batch" 2>&1 | grep -v '^step ' | tail -5
done
for mode in $torch_modes; do
  python3 bench_torch.py "$out" "$mode" > "$out/torch-$mode.jsonl"
  tail -1 "$out/torch-$mode.jsonl"
done
node compare.mjs "$out"
