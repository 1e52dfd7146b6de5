#!/usr/bin/env bash
# Runs on the lent GPU host, from the repo root, after scripts/device-pack.sh: the fused attention
# kernels end to end (device time is scarce, so in one or two calls):
#   OUT=dir bash scripts/flash-check.sh [lab] [bwd] [model]      (lab and model when none is named)
# lab:
#   1. the kernel lab (dev/cuda/attention/build.sh; LAB_PREBUILT=1 uses the binaries already in
#      dev/cuda/attention/build, e.g. built on the dev machine and carried): fwd_sm90 (Hopper forward, every
#      schedule), bwd_sm90 (Hopper backward), seed (the seed's shape under CUDA-graph replay), each checked
#      against the float64 reference and timed; PyTorch's SDPA (cuDNN, FA2) in the same run; the table
#   2. compute-sanitizer memcheck and racecheck on both Hopper kernels' small cases
# bwd: the backward's part of lab alone (production only, no A/B of its variants), beside PyTorch
# model:
#   3. GPT-2 124M with the fused attention, 200 steps (examples/gpt2), then torch.compile's run last
#   4. the attention-sparsek and nn tests with the GPU present (every flash and general candidate)
#   5. examples/attention-sparsek (the Tensor-level call, checked and timed)
# If the Hopper backward fails its lab check in the same call, DEEPWELL_FLASH_BWD=sm80 is set for 3-5
# (said in the log). Logs: $OUT/flash-check-<parts>.log, and the step files in $OUT/flash-check-<parts>.tgz.
set -uo pipefail
TOP=${OUT:-$PWD/gpu-out}
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(lab model)
name=flash-check-$(IFS=-; echo "${parts[*]}")
# The step files go to $TOP/$name/, packed into one $TOP/$name.tgz at the end (the device tool
# brings back at most 8 files); the main log stays beside it.
OUT=$TOP/$name
mkdir -p "$OUT"
exec > >(tee "$TOP/$name.log") 2>&1
step() { printf '\n##### %s  (t=%ss)\n' "$*" "$SECONDS"; }
export PATH=/tmp:$PATH:/usr/local/cuda/bin NCCL_NVLS_ENABLE=0 FORCE_COLOR=0 NO_COLOR=1
lab=dev/cuda/attention/build
step "date and GPU"; date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; git log -1 --format='commit %h %s' 2>/dev/null || true

for part in "${parts[@]}"; do
  case $part in
  lab)
    if [ "${LAB_PREBUILT:-0}" = 1 ]; then step "lab binaries carried in (LAB_PREBUILT=1)"; ls -la $lab
    else step "lab build"; bash dev/cuda/attention/build.sh fwd_sm90 bwd_sm90 seed; fi
    step "fwd_sm90"; timeout -k 5 150 $lab/fwd_sm90 > "$OUT/lab-fwd_sm90.log" 2>&1; echo "fwd_sm90 exit $?"
    grep -c PASS "$OUT/lab-fwd_sm90.log"; grep "FAIL\|ms=" "$OUT/lab-fwd_sm90.log" | cut -c1-170; tail -1 "$OUT/lab-fwd_sm90.log"
    step "bwd_sm90"; timeout -k 5 300 $lab/bwd_sm90 --ab > "$OUT/lab-bwd_sm90.log" 2>&1; rc=$?; echo "bwd_sm90 exit $rc"
    grep "FAIL\|ms=[1-9]\|ms=0.[0-9]*[1-9]" "$OUT/lab-bwd_sm90.log" | cut -c1-200; tail -1 "$OUT/lab-bwd_sm90.log"
    if [ "$rc" != 0 ]; then export DEEPWELL_FLASH_BWD=sm80; echo "!!! the Hopper backward failed: DEEPWELL_FLASH_BWD=sm80 from here on"; fi
    step "seed"; timeout 60 $lab/seed > "$OUT/lab-seed.log" 2>&1; echo "seed exit $?"; cat "$OUT/lab-seed.log"
    step "PyTorch SDPA"; timeout 150 python3 bench/attention_torch.py "$OUT/attention_torch.json" > "$OUT/torch.log" 2>&1; echo "torch exit $?"; tail -2 "$OUT/torch.log"
    python3 bench/attention_table.py --torch "$OUT/attention_torch.json" "$OUT/lab-fwd_sm90.log" "$OUT/lab-bwd_sm90.log" > "$OUT/attention-table.md" 2>&1
    sed -n '/^### fwd/,/^### every lab line/p' "$OUT/attention-table.md" | head -60
    for t in "memcheck fwd_sm90 small" "memcheck bwd_sm90 --small" "racecheck fwd_sm90 small" "racecheck bwd_sm90 --race"; do
      set -- $t
      step "$t"; timeout 150 compute-sanitizer --tool "$1" --print-limit 20 $lab/$2 $3 > "$OUT/$1-$2.log" 2>&1; echo "exit $?"; tail -3 "$OUT/$1-$2.log"
    done
    ;;
  bwd)
    # The backward alone (production timing, no A/B), PyTorch beside it, memcheck and racecheck.
    step "bwd_sm90"; timeout -k 5 200 $lab/bwd_sm90 > "$OUT/lab-bwd_sm90.log" 2>&1; echo "bwd_sm90 exit $?"
    grep "FAIL\|ms=[1-9]\|ms=0.[0-9]*[1-9]" "$OUT/lab-bwd_sm90.log" | cut -c1-200; tail -1 "$OUT/lab-bwd_sm90.log"
    step "PyTorch SDPA"; timeout 150 python3 bench/attention_torch.py "$OUT/attention_torch.json" > "$OUT/torch.log" 2>&1; echo "torch exit $?"
    python3 bench/attention_table.py --torch "$OUT/attention_torch.json" "$OUT/lab-bwd_sm90.log" > "$OUT/attention-table.md" 2>&1
    sed -n '/^### bwd/,/^Torch notes/p' "$OUT/attention-table.md" | head -14
    for t in "memcheck bwd_sm90 --small" "racecheck bwd_sm90 --race"; do
      set -- $t
      step "$t"; timeout 150 compute-sanitizer --tool "$1" --print-limit 20 $lab/$2 $3 > "$OUT/$1-$2.log" 2>&1; echo "exit $?"; tail -2 "$OUT/$1-$2.log"
    done
    ;;
  model)
    # Ordered by what matters most if device time runs out: our GPT-2 step first (speed, the kernel
    # breakdown, memory), then the GPU tests, the example, and torch.compile's run last.
    [ -x /tmp/node ] || { xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node; }
    [ -d node_modules/.pnpm ] || tar -xJf .device/deps.tar.xz
    step "GPT-2 124M, fused attention"
    (cd examples/gpt2 && timeout 100 node bench.mjs 200 /tmp/gpt2 2>&1 | grep -v '^step ' | tail -4)
    cp /tmp/gpt2/deepwell.jsonl "$OUT/" 2>/dev/null
    node examples/gpt2/compare.mjs /tmp/gpt2 2>&1 | grep -v "^| [0-9]" | head -40
    step "tests with the GPU: attention-sparsek, nn"; timeout 200 node scripts/test-all.mjs packages/attention-sparsek packages/nn > "$OUT/tests.log" 2>&1
    echo "tests exit $?"; grep -E "✓|✗|×|FAIL|passed|failed" "$OUT/tests.log" | grep -v "^ *✓ .*[0-9]ms$" | tail -40
    step "examples/attention-sparsek"; (cd examples/attention-sparsek && timeout 60 node index.mjs) 2>&1 | tee "$OUT/example-attention-sparsek.log"
    step "GPT-2 124M, torch.compile"
    (cd examples/gpt2 && timeout 150 python3 bench_torch.py /tmp/gpt2 compile > /tmp/gpt2/torch-compile.jsonl 2>"$OUT/torch-compile.err"; tail -1 /tmp/gpt2/torch-compile.jsonl)
    node examples/gpt2/compare.mjs /tmp/gpt2 2>&1 | tee "$OUT/gpt2-compare.md" | grep -v "^| [0-9]" | head -60
    cp /tmp/gpt2/*.jsonl /tmp/gpt2/*.svg "$OUT/" 2>/dev/null
    ;;
  *) echo "flash-check.sh: unknown part '$part' (lab, bwd, model)"; exit 2 ;;
  esac
done
step "done"
tar -czf "$TOP/$name.tgz" -C "$TOP" "$name" && rm -rf "$OUT"
