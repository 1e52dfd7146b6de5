#!/usr/bin/env bash
# On the GPU host: Deepwell's GEMM and torch.matmul in one run on the same GPU, alternating for
# GEMM_ROUNDS rounds (default 3: deepwell, torch, deepwell, torch, ...), then the comparison table
# (per shape, the median over rounds of each side, and the lowest per-round ratio).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/gemm-bench.jsonl
rounds=${GEMM_ROUNDS:-3}
: > "$out"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader | sed 's/^/# gpu: /' | tee -a "$out"
date -u +"# date: %Y-%m-%dT%H:%M:%SZ" | tee -a "$out"
for r in $(seq 1 "$rounds"); do
  GEMM_ROUND=$r node bench/gemm.mjs | tee -a "$out"
  GEMM_ROUND=$r python3 bench/gemm_torch.py | tee -a "$out"
done
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader | sed 's/^/# after: /' | tee -a "$out"
node bench/compare.mjs "$out"
