#!/usr/bin/env bash
# compute-sanitizer over every kernel's GPU tests, one process per test file, on the GPU host:
#   bash scripts/sanitize-tests.sh <tool>[,<tool>...] [package/test/file.test.ts[::pattern] ...]
# (file::pattern runs that file's tests whose names match the pattern, vitest's -t: to split a slow
# file over several processes; the pattern without spaces)
# tool: memcheck, racecheck, synccheck or initcheck (several, comma-separated, run side by side).
# Without files: every GPU test file of every package (test/gpu*.test.ts, test/*_gpu.test.ts, ir's
# test/cuda-*.test.ts). Prints one line per (tool, file) as each ends (the sanitizer's summary and the
# tests' count) and a last line per tool, "<tool>: N files, N clean, N with errors"; exits non-zero
# when any file has errors or fails. Logs go to $OUT/sanitize-<tool>/ (or ./sanitize-out).
# SANITIZE_EXTRA adds options to every run, SANITIZE_EXTRA_<tool> to one tool's runs (said in the
# output's first lines); SANITIZE_PRINT_LIMIT (default 50) is how many reports a file's log shows. Tests report one by one
# (vitest's verbose reporter), so a file cut by its time limit still shows what passed.
# SANITIZE_TIMEOUT (seconds per file, default 300) bounds each file; SANITIZE_JOBS (default 1) runs
# that many files at once on the one GPU (the sanitizers' cost is mostly per launch, on the host, so
# files in parallel finish sooner; the slowest files start first). The tests see DEEPWELL_SANITIZER
# (the tool's name): a time bound is skipped under it, nothing else; a test has no time limit of its
# own under a sanitizer (the per-file limit bounds it: the tests are 10 to 100 times slower there).
set -uo pipefail
tools=${1:?usage: sanitize-tests.sh memcheck|racecheck|synccheck|initcheck[,...] [files...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
top=${OUT:-$root/sanitize-out}
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  cd "$root"
  mapfile -t files < <(ls packages/*/test/gpu*.test.ts packages/*/test/*_gpu.test.ts packages/ir/test/cuda-*.test.ts 2>/dev/null | sort -u)
fi
# Slowest first (more than 250 s each under racecheck on the H200, 2026-12-04, 8 files at once),
# then the rest in name order.
slow=(packages/precision/test/gpu.test.ts packages/precision/test/native_policy_gpu.test.ts packages/nn/test/gpu.test.ts
  packages/ir/test/cuda-nn.test.ts packages/trainer/test/gpu.test.ts packages/ir/test/cuda-tensor.test.ts
  packages/nn/test/gpu_generate.test.ts packages/attention-sparsek/test/gpu_sparsek.test.ts)
ordered=()
for s in "${slow[@]}"; do for f in "${files[@]}"; do [ "$f" = "$s" ] && ordered+=("$f"); done; done
for f in "${files[@]}"; do [[ " ${slow[*]} " == *" $f "* ]] || ordered+=("$f"); done

one() { # tool file[::pattern]: runs one file (its tests matching the pattern) under one tool, prints its line, leaves a verdict file
  local tool=$1 f=$2 extra=() only=()
  if [[ $f == *::* ]]; then only=(-t "${f#*::}"); f=${f%%::*}; fi
  local logs=$top/sanitize-$tool pkg=${f%%/test/*} name
  name=$(echo "$2" | tr -c 'A-Za-z0-9._\n-' '_')
  case $tool in
    # API errors are left out: every CUDA call's status is checked and becomes a typed error, and the
    # tests provoke some on purpose (an out-of-memory cudaMalloc).
    memcheck) extra=(--leak-check no --report-api-errors no) ;;
    racecheck | synccheck) extra=(--report-api-errors no) ;;
    initcheck) extra=(--report-api-errors no) ;;
  esac
  # SANITIZE_EXTRA: more options for every file and tool; SANITIZE_EXTRA_<tool> (SANITIZE_EXTRA_racecheck)
  # for one tool only. (Excluding cuBLASLt's kernels with --kernel-name-exclude broke racecheck: see below.)
  local per=SANITIZE_EXTRA_$tool
  # shellcheck disable=SC2206
  extra+=(${SANITIZE_EXTRA:-} ${!per:-})
  local t0=$SECONDS
  (cd "$root/$pkg" && NO_COLOR=1 FORCE_COLOR=0 DEEPWELL_SANITIZER=$tool timeout "${SANITIZE_TIMEOUT:-300}" "$san" --tool "$tool" "${extra[@]}" --target-processes all --print-limit "${SANITIZE_PRINT_LIMIT:-50}" \
    --error-exitcode 9 node "$root/node_modules/vitest/vitest.mjs" run "test/${f#*/test/}" "${only[@]}" --pool=forks --no-file-parallelism --reporter=verbose --testTimeout=1800000 --hookTimeout=1800000) > "$logs/$name.log" 2>&1
  local rc=$? summary tests errors verdict vendor=0 ours=0
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$logs/$name.log" | sed 's/========= //' | sort | uniq -c | tr -s ' ' | paste -sd ';' -)
  tests=$(grep -E "^\s+Tests " "$logs/$name.log" | tail -1 | tr -s ' ')
  errors=$(grep -E "ERROR SUMMARY: [1-9]|RACECHECK SUMMARY: [1-9]" -c "$logs/$name.log")
  if [ "$tool" = racecheck ]; then
    # Each race report names the kernel at both accesses. Reports inside cuBLASLt's own kernels
    # (nvjet_*: NVIDIA's code, which we cannot read or change) are counted apart and said; any
    # other report, or the sanitizer failing, is an error. (Excluding those kernels from the check
    # instead, --kernel-name-exclude, made the sanitizer fail on a hardware exception, 2026-12-04.)
    vendor=$(grep -cE "Race reported between .* access at nvjet_" "$logs/$name.log")
    ours=$(grep -E "access at [^ ]+\+0x" "$logs/$name.log" | grep -vcE "access at nvjet_")
    # Every test accounted for: passed + skipped = the total, and no unhandled error (a vitest
    # worker that dies mid-file leaves "Tests 1 passed (2)" and an "Errors" line).
    local passed skipped total
    passed=$(grep -oE "[0-9]+ passed" <<< "$tests" | grep -oE "[0-9]+" || echo 0)
    skipped=$(grep -oE "[0-9]+ skipped" <<< "$tests" | grep -oE "[0-9]+" || echo 0)
    total=$(grep -oE "\([0-9]+\)" <<< "$tests" | tr -d '()' || echo -1)
    if [ "$rc" -eq 9 ] && [ "$ours" -eq 0 ] && [ "$vendor" -gt 0 ] && ! grep -qE "Internal Sanitizer Error|Target application terminated|^\s+Errors " "$logs/$name.log" \
      && [[ "$tests" != *failed* ]] && [ "$passed" -gt 0 ] && [ $((passed + skipped)) -eq "${total:--1}" ]; then
      rc=0 errors=0
    fi
  fi
  if [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ]; then verdict=clean; else verdict="ERRORS (exit $rc)"; fi
  [ "$vendor" -gt 0 ] && summary="$summary; race reports: $vendor in cuBLASLt's nvjet kernels, $ours lines naming other kernels"
  echo "$verdict" > "$logs/$name.verdict"
  printf '%-10s %-52s %-16s %4ss  %s |%s\n' "$tool" "$2" "$verdict" $((SECONDS - t0)) "${summary:-no summary}" "$tests"
}

jobs=${SANITIZE_JOBS:-1}
[ -n "${SANITIZE_EXTRA:-}" ] && echo "sanitize-tests.sh: every run with the extra options: $SANITIZE_EXTRA"
IFS=, read -ra toollist <<< "$tools"
for tool in "${toollist[@]}"; do
  per=SANITIZE_EXTRA_$tool
  [ -n "${!per:-}" ] && echo "sanitize-tests.sh: every $tool run with the extra options: ${!per}"
done
for tool in "${toollist[@]}"; do mkdir -p "$top/sanitize-$tool"; rm -f "$top/sanitize-$tool"/*.verdict; done
running=0
for f in "${ordered[@]}"; do
  for tool in "${toollist[@]}"; do
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    one "$tool" "$f" &
    running=$((running + 1))
  done
done
wait
bad=0
for tool in "${toollist[@]}"; do
  c=$(grep -lx clean "$top/sanitize-$tool"/*.verdict 2>/dev/null | wc -l)
  n=$(ls "$top/sanitize-$tool"/*.verdict 2>/dev/null | wc -l)
  echo "$tool: ${#ordered[@]} files, $c clean, $((${#ordered[@]} - c)) with errors"
  [ "$c" -eq "${#ordered[@]}" ] && [ "$n" -eq "${#ordered[@]}" ] || bad=1
done
[ "$bad" -eq 0 ]
