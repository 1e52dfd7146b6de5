#!/usr/bin/env bash
# On the GPU host: Deepwell's grouped GEMM beside torch._grouped_mm in one run on the same GPU,
# alternating for GROUPED_GEMM_ROUNDS rounds (default 2: deepwell, torch, deepwell, torch), into
# $OUT/grouped-gemm-bench.jsonl, with the GPU's clocks before and after. GROUPED_GEMM_CASES (a comma
# list) selects cases of bench/grouped-gemm-cases.json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/grouped-gemm-bench.jsonl
rounds=${GROUPED_GEMM_ROUNDS:-2}
: > "$out"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader | sed 's/^/# gpu: /' | tee -a "$out"
date -u +"# date: %Y-%m-%dT%H:%M:%SZ" | tee -a "$out"
for r in $(seq 1 "$rounds"); do
  GROUPED_GEMM_ROUND=$r node bench/grouped_gemm.mjs | tee -a "$out"
  GROUPED_GEMM_ROUND=$r python3 bench/grouped_gemm_torch.py | tee -a "$out"
done
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader | sed 's/^/# after: /' | tee -a "$out"
