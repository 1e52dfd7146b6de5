#!/usr/bin/env bash
# Issue 21's loss parity, on the CPU in f32: a small dropless MoE GPT (4 experts, top-2, GELU, 2
# layers; MOE_ACTIVATION=swiglu for SwiGLU experts) trained by Deepwell (bench.mjs, the CPU reference kernels) and by bench_torch.py (eager, on
# the CPU) from the same initial weights and data, with the learning rate's warm-up and peak inside
# the run; prints each fifth step's two losses and the largest difference. In f32 both sides follow
# the same arithmetic up to the order of sums, so the curves must agree to f32 rounding: a larger
# gap is a difference in the MoE (routing, load-balancing loss, schedule), not bf16 noise.
#   bash examples/gpt2/moe-parity-cpu.sh [steps=60] [out=/tmp/moe-parity-cpu]
# Needs python3 with torch (a CPU build is enough), numpy and safetensors.
set -euo pipefail
cd "$(dirname "$0")"
steps=${1:-60}
out=${2:-/tmp/moe-parity-cpu}
export GPT2_ALLOW_CPU=1 GPT2_PRECISION=f32 GPT2_WARMUP=$((steps / 3))
act=${MOE_ACTIVATION:-gelu} # or swiglu
export GPT_CONFIG="{\"vocabSize\":512,\"blockSize\":32,\"nLayer\":2,\"nHead\":2,\"nEmbd\":64,\"moe\":{\"experts\":4,\"topK\":2,\"routing\":\"dropless\",\"activation\":\"$act\"}}"
node bench.mjs "$steps" "$out" 4 > "$out.deepwell.log" 2>&1 || { tail -20 "$out.deepwell.log"; exit 1; }
BENCH_TORCH_DEVICE=cpu python3 bench_torch.py "$out" eager > "$out/torch-eager.jsonl" 2> "$out.torch.err" || { tail -20 "$out.torch.err"; exit 1; }
node -e '
const fs = require("fs");
const rows = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.startsWith("{")).map(JSON.parse);
const ours = rows(process.argv[1] + "/deepwell.jsonl").filter((r) => r.step !== undefined && r.loss !== undefined);
const theirs = new Map(rows(process.argv[1] + "/torch-eager.jsonl").filter((r) => r.event === "step").map((r) => [r.step, r.loss]));
let worst = 0, at = 0;
for (const r of ours) {
  const t = theirs.get(r.step);
  if (t === undefined) continue;
  const d = Math.abs(r.loss - t);
  if (d > worst) (worst = d), (at = r.step);
  if (r.step % 5 === 0) console.log(`step ${r.step}: deepwell ${r.loss.toFixed(6)}  torch ${t.toFixed(6)}  |diff| ${d.toExponential(2)}`);
}
console.log(`largest |diff| ${worst.toExponential(2)} at step ${at} over ${ours.length} steps (warm-up ${process.env.GPT2_WARMUP})`);
' "$out"
