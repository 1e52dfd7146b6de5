#!/usr/bin/env bash
# Runs on the lent GPU host, from the repo root, after scripts/device-pack.sh: the fused attention
# kernels end to end, in one call (device time is scarce):
#   1. the kernel lab built and run: fwd_sm90 (Hopper forward), bwd_sm90 (Hopper backward), each
#      checked against the float64 reference and timed; PyTorch's SDPA (cuDNN, FA2) in the same run
#   2. compute-sanitizer memcheck on both Hopper kernels' small cases
#   3. the attention-sparsek and nn tests with the GPU present (the flash candidates in compiled plans)
#   4. GPT-2 124M with the fused attention, 200 steps, beside torch.compile (examples/gpt2)
# If the Hopper backward fails its lab check, DEEPWELL_FLASH_BWD=sm80 is set for 3 and 4 (said in the log).
#   OUT=dir bash scripts/flash-check.sh
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/flash-check.log") 2>&1
step() { printf '\n##### %s\n' "$*"; }
export PATH=/tmp:$PATH:/usr/local/cuda/bin NCCL_NVLS_ENABLE=0 FORCE_COLOR=0 NO_COLOR=1
xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node
tar -xJf .device/deps.tar.xz
step "date and GPU"; date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
step "lab build"; bash dev/cuda/attention/build.sh fwd_sm90 bwd_sm90
lab=dev/cuda/attention/build
step "fwd_sm90"; timeout -k 5 120 $lab/fwd_sm90 2>&1 | tee "$OUT/lab-fwd_sm90.log"; echo "fwd_sm90 exit ${PIPESTATUS[0]}"
step "bwd_sm90"; timeout -k 5 150 $lab/bwd_sm90 2>&1 | tee "$OUT/lab-bwd_sm90.log"; rc=${PIPESTATUS[0]}; echo "bwd_sm90 exit $rc"
if [ "$rc" != 0 ]; then export DEEPWELL_FLASH_BWD=sm80; echo "!!! the Hopper backward failed: DEEPWELL_FLASH_BWD=sm80 from here on"; fi
step "PyTorch SDPA"; timeout 120 python3 bench/attention_torch.py "$OUT/attention_torch.json" > "$OUT/torch.log" 2>&1; tail -3 "$OUT/torch.log"
python3 bench/attention_table.py --torch "$OUT/attention_torch.json" "$OUT/lab-fwd_sm90.log" "$OUT/lab-bwd_sm90.log" > "$OUT/attention-table.md" 2>&1
step "memcheck fwd_sm90 small"; timeout 90 compute-sanitizer --tool memcheck --print-limit 20 $lab/fwd_sm90 small 2>&1 | tail -4
step "memcheck bwd_sm90 --small"; timeout 90 compute-sanitizer --tool memcheck --print-limit 20 $lab/bwd_sm90 --small 2>&1 | tail -4
step "tests with the GPU: attention-sparsek, nn"; timeout 150 node scripts/test-all.mjs packages/attention-sparsek packages/nn 2>&1 | tail -25
step "GPT-2 124M, fused attention"
(cd examples/gpt2 && timeout 100 node bench.mjs 200 /tmp/gpt2 2>&1 | grep -v '^step ' | tail -4)
(cd examples/gpt2 && timeout 150 python3 bench_torch.py /tmp/gpt2 compile > /tmp/gpt2/torch-compile.jsonl 2>"$OUT/torch-compile.err"; tail -1 /tmp/gpt2/torch-compile.jsonl)
node examples/gpt2/compare.mjs /tmp/gpt2 2>&1 | tee "$OUT/gpt2-compare.md" | grep -v "^| [0-9]" | head -40
cp /tmp/gpt2/*.jsonl "$OUT/" 2>/dev/null
