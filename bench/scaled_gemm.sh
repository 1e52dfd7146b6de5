#!/usr/bin/env bash
# On the GPU host: Deepwell's FP8 GEMMs (scaledGemmLt) and its bf16 GEMM beside PyTorch's
# (torch._scaled_mm / torch.nn.functional.scaled_mm, torch.matmul) in one run on the same GPU,
# alternating for SCALED_GEMM_ROUNDS rounds (default 2: deepwell, torch, deepwell, torch), into
# $OUT/scaled-gemm-bench.jsonl; then the comparison table (bench/scaled_gemm_compare.mjs: per
# shape and mode, the median over rounds of each side, their ratio, the lowest per-round ratio,
# each side's FP8 speed-up over its bf16), also written to $OUT/scaled-gemm-table.md.
# SCALED_GEMM_SHAPES / SCALED_GEMM_MODES (comma lists) select a subset, for a short run:
#   OUT=$OUT SCALED_GEMM_ROUNDS=1 SCALED_GEMM_SHAPES=fc,8192^3 SCALED_GEMM_MODES=bf16,rowwise bash bench/scaled_gemm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/scaled-gemm-bench.jsonl
table=${OUT:-/tmp}/scaled-gemm-table.md
rounds=${SCALED_GEMM_ROUNDS:-2}
: > "$out"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader | sed 's/^/# gpu: /' | tee -a "$out"
date -u +"# date: %Y-%m-%dT%H:%M:%SZ" | tee -a "$out"
for r in $(seq 1 "$rounds"); do
  SCALED_GEMM_ROUND=$r node bench/scaled_gemm.mjs | tee -a "$out"
  SCALED_GEMM_ROUND=$r python3 bench/scaled_gemm_torch.py | tee -a "$out"
done
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader | sed 's/^/# after: /' | tee -a "$out"
node bench/scaled_gemm_compare.mjs "$out" | tee "$table"
