#!/usr/bin/env bash
# On the GPU host: both GEMM benchmarks in one run on the same GPU, then the comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/gemm-bench.jsonl
: > "$out"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader | sed 's/^/# gpu: /' | tee -a "$out"
date -u +"# date: %Y-%m-%dT%H:%M:%SZ" | tee -a "$out"
node bench/gemm.mjs | tee -a "$out"
python3 bench/gemm_torch.py | tee -a "$out"
node bench/compare.mjs "$out"
