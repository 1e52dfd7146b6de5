#!/usr/bin/env bash
# On the GPU host: issue 22's NCCL checks, into $OUT. Needs .device/ (scripts/device-pack.sh).
#   OUT=$OUT bash scripts/comm-check.sh [steps] [torch] [tests]
#   steps  scripts/comm-steps.mjs one step per process (unique id, init, collectives, a world of 2
#          that times out), each with a time limit and NCCL_DEBUG=INFO, so that a hang names its step;
#          a process still running after its limit gets its threads' kernel stacks printed
#   torch  PyTorch's own NCCL (the same libnccl) in one process of world size 1: whether NCCL itself
#          works in this container
#   tests  kernels-native test/comm.test.ts, then ir test/cuda-dist.test.ts (a data-parallel step of
#          one rank through NCCL against the plain step, bit for bit) and trainer
#          test/gpu_distributed.test.ts (the Trainer the same way)
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(steps torch tests)
source "$(dirname "$0")/device-lib.sh"
device_begin comm-check
export NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,BOOTSTRAP,ENV,NET

limited() { # seconds command...: runs it; past the limit prints where its threads wait, then kills it
  local limit=$1; shift
  "$@" & local pid=$!
  local waited=0
  while kill -0 $pid 2>/dev/null && [ $waited -lt "$limit" ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 $pid 2>/dev/null; then
    echo "!!! still running after ${limit} s: threads of $pid"
    for t in /proc/$pid/task/*; do echo "  $(basename "$t") $(cat "$t/comm" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"; done
    command -v gdb > /dev/null && timeout 30 gdb -p $pid -batch -ex "thread apply all bt 12" 2>/dev/null | grep -E "^Thread|^#" | head -80
    kill -9 $pid; wait $pid 2>/dev/null; echo "exit (killed)"
  else
    wait $pid; echo "exit $?"
  fi
}

for part in "${parts[@]}"; do
  case $part in
  steps)
    for s in id init collectives timeout2; do
      step "NCCL step by step: $s"
      limited 60 node scripts/comm-steps.mjs $s
    done
    ;;
  torch)
    step "PyTorch's NCCL, world size 1 (same libnccl)"
    limited 90 python3 -c "
import os, time, torch, torch.distributed as dist
t0 = time.time()
os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='29533')
print('nccl', torch.cuda.nccl.version(), flush=True)
dist.init_process_group('nccl', rank=0, world_size=1, device_id=torch.device('cuda:0'))
x = torch.randn(4096, device='cuda'); y = x.clone(); dist.all_reduce(y); torch.cuda.synchronize()
print('all_reduce equal:', bool(torch.equal(x, y)), f'{time.time() - t0:.2f} s', flush=True)
dist.destroy_process_group()
"
    ;;
  tests)
    step "kernels-native test/comm.test.ts"
    (cd packages/kernels-native && timeout 200 node ../../node_modules/vitest/vitest.mjs run test/comm.test.ts) 2>&1 | grep -vE "^\s+at |NCCL INFO" | tail -40
    step "ir test/cuda-dist.test.ts (dataParallel through NCCL, a world of one)"
    (cd packages/ir && timeout 200 node ../../node_modules/vitest/vitest.mjs run test/cuda-dist.test.ts) 2>&1 | grep -vE "^\s+at |NCCL INFO" | tail -40
    step "trainer test/gpu_distributed.test.ts (the Trainer with a communicator of one rank against a plain run)"
    (cd packages/trainer && timeout 240 node ../../node_modules/vitest/vitest.mjs run test/gpu_distributed.test.ts) 2>&1 | grep -vE "^\s+at |NCCL INFO" | tail -30
    ;;
  esac
done
device_end
