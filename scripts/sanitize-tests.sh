#!/usr/bin/env bash
# compute-sanitizer over every kernel's GPU tests, one test file at a time, on the GPU host:
#   bash scripts/sanitize-tests.sh <tool> [package/test/file.test.ts ...]
# tool: memcheck, racecheck, synccheck or initcheck. Without files: every GPU test file of every
# package (test/gpu*.test.ts, ir's test/cuda-*.test.ts). Prints one line per file (the sanitizer's
# summary and the tests' count) and a last line, "<tool>: N files, N clean, N with errors"; exits
# non-zero when any file has errors or fails. Logs go to $OUT/sanitize-<tool>/ (or ./sanitize-out).
# SANITIZE_TIMEOUT (seconds per file, default 300) bounds each file. The tests see DEEPWELL_SANITIZER
# (the tool's name): a time bound is skipped under it, nothing else.
set -uo pipefail
tool=${1:?usage: sanitize-tests.sh memcheck|racecheck|synccheck|initcheck [files...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
logs=${OUT:-$root/sanitize-out}/sanitize-$tool
mkdir -p "$logs"
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  cd "$root"
  mapfile -t files < <(ls packages/*/test/gpu*.test.ts packages/*/test/*_gpu.test.ts packages/ir/test/cuda-*.test.ts 2>/dev/null | sort -u)
fi
extra=()
case $tool in
  # API errors are left out: every CUDA call's status is checked and becomes a typed error, and the
  # tests provoke some on purpose (an out-of-memory cudaMalloc).
  memcheck) extra=(--leak-check no --report-api-errors no) ;;
  initcheck) extra=(--track-unused-memory no) ;;
esac
clean=0 bad=0
for f in "${files[@]}"; do
  pkg=${f%%/test/*}
  name=$(echo "$f" | tr '/' '_')
  t0=$SECONDS
  (cd "$root/$pkg" && DEEPWELL_SANITIZER=$tool timeout "${SANITIZE_TIMEOUT:-300}" "$san" --tool "$tool" "${extra[@]}" --target-processes all --print-limit 50 \
    --error-exitcode 9 node "$root/node_modules/vitest/vitest.mjs" run "test/${f#*/test/}" --pool=forks --no-file-parallelism) > "$logs/$name.log" 2>&1
  rc=$?
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$logs/$name.log" | sed 's/========= //' | sort | uniq -c | tr -s ' ' | paste -sd ';' -)
  tests=$(grep -E "^\s+Tests " "$logs/$name.log" | tail -1 | tr -s ' ')
  errors=$(grep -E "ERROR SUMMARY: [1-9]|RACECHECK SUMMARY: [1-9]" -c "$logs/$name.log")
  if [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ]; then clean=$((clean + 1)); verdict=clean; else bad=$((bad + 1)); verdict="ERRORS (exit $rc)"; fi
  printf '%-55s %-12s %4ss  %s |%s\n' "$f" "$verdict" $((SECONDS - t0)) "${summary:-no summary}" "$tests"
done
echo "$tool: ${#files[@]} files, $clean clean, $bad with errors"
[ "$bad" -eq 0 ]
