#!/usr/bin/env bash
# GPT-2 124M: Deepwell, then PyTorch eager and torch.compile, on the same GPU, data and initial
# weights; then the comparison.   bash examples/gpt2/run.sh [steps=200] [out=runs/gpt2]
set -euo pipefail
cd "$(dirname "$0")"
steps=${1:-200}
out=$(realpath -m "${2:-../../runs/gpt2}")
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
date -u
node bench.mjs "$steps" "$out" 2>&1 | grep -v '^step ' | tail -5
for mode in eager compile; do
  python3 bench_torch.py "$out" "$mode" > "$out/torch-$mode.jsonl"
  tail -1 "$out/torch-$mode.jsonl"
done
node compare.mjs "$out"
