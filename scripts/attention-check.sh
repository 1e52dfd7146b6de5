#!/usr/bin/env bash
# Runs on the lent GPU host (no Node needed), from the repo root:
#   OUT=/some/dir bash scripts/attention-check.sh
# 1. builds the attention kernel lab (dev/cuda/attention/build.sh; LAB_BUILD=0 skips this and uses
#    the binaries already in dev/cuda/attention/build/); a failed build is reported, not fatal
# 2. runs every lab binary in dev/cuda/attention/build/ (timeout LAB_TIMEOUT, default 300 s each),
#    recording exit codes; each one's output also goes to $OUT/lab-<name>.log
# 3. python3 bench/attention_torch.py $OUT/attention_torch.json (PyTorch cuDNN / FA2 reference)
# 4. compute-sanitizer memcheck and racecheck on the binaries named in SANITIZE ("fwd_sm90 ..."),
#    each run with --small (timeout SANITIZE_TIMEOUT, default 900 s each)
# 5. the summary: bench/attention_table.py merges the lab lines with the torch JSON into
#    $OUT/attention-table.md (and prints it)
# Everything goes to $OUT/attention-check.log too. One failure never stops the rest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log="$OUT/attention-check.log"
exec > >(tee "$log") 2>&1
step() { printf '\n##### %s\n' "$*"; }
lab=dev/cuda/attention
codes="$OUT/attention-exit-codes.tsv"
: >"$codes"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$codes"; }
export PATH=$PATH:/usr/local/cuda/bin

step "date and GPU"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || echo "nvidia-smi failed"
nvcc --version 2>/dev/null | tail -n 1

if [ "${LAB_BUILD:-1}" != 0 ]; then
  step "build the kernel lab"
  bash "$lab/build.sh"
  rc=$?
  record build.sh build "$rc"
  [ $rc -eq 0 ] || echo "!!! lab build failed (exit $rc); running whatever binaries were built"
fi

# The lab binaries: executables in build/ (not the .log files).
bins=()
if [ -d "$lab/build" ]; then
  for f in "$lab"/build/*; do
    [ -f "$f" ] && [ -x "$f" ] && [[ $f != *.log && $f != *.tmp ]] && bins+=("$f")
  done
fi

step "lab binaries (${#bins[@]})"
lablogs=()
for b in ${bins[@]+"${bins[@]}"}; do
  name=$(basename "$b")
  printf '\n=== %s\n' "$name"
  t0=$SECONDS
  timeout -k 10 "${LAB_TIMEOUT:-300}" "$b" 2>&1 | tee "$OUT/lab-$name.log"
  rc=${PIPESTATUS[0]}
  lablogs+=("$OUT/lab-$name.log")
  record "$name" run "$rc"
  case $rc in
    0) echo "=== $name: exit 0 ($((SECONDS - t0)) s)" ;;
    124|137) echo "!!! $name: TIMEOUT after ${LAB_TIMEOUT:-300} s (exit $rc)" ;;
    *) echo "!!! $name: FAILED (exit $rc, $((SECONDS - t0)) s)" ;;
  esac
done

step "PyTorch reference (bench/attention_torch.py)"
python3 bench/attention_torch.py "$OUT/attention_torch.json"
rc=$?
record attention_torch.py torch "$rc"
[ $rc -eq 0 ] || echo "!!! attention_torch.py exit $rc"

if [ -n "${SANITIZE:-}" ]; then
  san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for name in $SANITIZE; do
    b="$lab/build/$name"
    for tool in memcheck racecheck; do
      step "compute-sanitizer --tool $tool $name --small"
      if [ ! -x "$b" ]; then
        echo "!!! $b not built"
        record "$name" "$tool" missing
        continue
      fi
      timeout -k 10 "${SANITIZE_TIMEOUT:-900}" "$san" --tool "$tool" --error-exitcode 99 --print-limit 50 "$b" --small 2>&1 | tee "$OUT/sanitize-$tool-$name.log"
      rc=${PIPESTATUS[0]}
      record "$name" "$tool --small" "$rc"
      [ $rc -eq 0 ] || echo "!!! $tool $name: exit $rc"
    done
  done
fi

step "summary"
python3 bench/attention_table.py --torch "$OUT/attention_torch.json" --codes "$codes" ${lablogs[@]+"${lablogs[@]}"} | tee "$OUT/attention-table.md"
echo
echo "attention-check: results in $OUT (attention-check.log, attention-table.md, attention_torch.json, lab-*.log)"
