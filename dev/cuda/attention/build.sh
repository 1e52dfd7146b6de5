#!/usr/bin/env bash
# Builds every dev/cuda/attention/*.cu into dev/cuda/attention/build/<name> (from any cwd):
#   nvcc -O3 -std=c++17 -lineinfo -I<repo>/native -arch=sm_90a <file>.cu -o build/<name>
# A file may ask for other architectures with a first-line comment, e.g.
#   // lab-arch: sm_80,sm_90a
# (each becomes -gencode arch=compute_XX,code=sm_XX; the last one also embeds its PTX).
# Files compile in parallel (LAB_JOBS, default the number of CPUs); the first compile error stops
# the build with its log and the failing file's name. Extra nvcc flags: NVCC_FLAGS="...".
# Build only some: bash dev/cuda/attention/build.sh fwd_sm90 flash_sm80
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out="$here/build"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then echo "build.sh: nvcc not found (set NVCC or put it on PATH)" >&2; exit 2; fi
mkdir -p "$out"
rm -f "$out/.failed"

# The sources: all *.cu here, or the names given.
srcs=()
if [ $# -gt 0 ]; then
  for n in "$@"; do n=${n%.cu}; n=${n##*/}; srcs+=("$here/$n.cu"); done
else
  shopt -s nullglob
  srcs=("$here"/*.cu)
  shopt -u nullglob
fi
if [ ${#srcs[@]} -eq 0 ]; then echo "build.sh: no .cu files in $here"; exit 0; fi
for s in "${srcs[@]}"; do [ -f "$s" ] || { echo "build.sh: no such file $s" >&2; exit 2; }; done

# Compiles one file; called by xargs. After the first failure (the .failed marker) the files not yet
# started are skipped, and xargs waits for the compiles already running.
compile_one() {
  local src=$1 name arches line a flags=() log rc
  name=$(basename "$src" .cu)
  # A file that fails or is skipped loses its old binary, so nothing stale runs later.
  if [ -e "$OUT_DIR/.failed" ]; then rm -f "$OUT_DIR/$name"; echo "skipped $name (an earlier file failed)"; return 1; fi
  line=$(head -n 1 "$src")
  arches=sm_90a
  if [[ $line =~ ^[[:space:]]*//[[:space:]]*lab-arch:[[:space:]]*(.*)$ ]]; then
    arches=$(echo "${BASH_REMATCH[1]}" | tr -d ' \r')
  fi
  IFS=, read -r -a list <<<"$arches"
  if [ ${#list[@]} -eq 1 ]; then
    flags=(-arch="${list[0]}")
  else
    for a in "${list[@]}"; do
      [[ $a =~ ^sm_[0-9]+[af]?$ ]] || { echo "===== FAILED $name.cu: bad lab-arch entry '$a' =====" >&2; rm -f "$OUT_DIR/$name"; touch "$OUT_DIR/.failed"; return 1; }
      flags+=(-gencode "arch=compute_${a#sm_},code=$a")
    done
    a=${list[-1]}
    flags+=(-gencode "arch=compute_${a#sm_},code=compute_${a#sm_}")
  fi
  log="$OUT_DIR/$name.log"
  local t0=$SECONDS
  # shellcheck disable=SC2086
  "$NVCC" -O3 -std=c++17 -lineinfo -I"$REPO/native" -I"$HERE" "${flags[@]}" ${NVCC_FLAGS:-} "$src" -o "$OUT_DIR/$name.tmp" >"$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    rm -f "$OUT_DIR/$name.tmp" "$OUT_DIR/$name"
    {
      echo "===== FAILED to compile $name.cu (nvcc exit $rc; arch: $arches) ====="
      cat "$log"
      echo "===== end of $name.cu errors ====="
    } >&2
    touch "$OUT_DIR/.failed"
    return 1
  fi
  mv -f "$OUT_DIR/$name.tmp" "$OUT_DIR/$name"
  [ -s "$log" ] && sed "s/^/  [$name] /" "$log"   # warnings, if any
  echo "built $name ($arches, $((SECONDS - t0)) s)"
}
export -f compile_one
export NVCC REPO="$repo" HERE="$here" OUT_DIR="$out" NVCC_FLAGS="${NVCC_FLAGS:-}"

jobs=${LAB_JOBS:-$(nproc 2>/dev/null || echo 4)}
echo "build.sh: ${#srcs[@]} file(s) with $NVCC ($("$NVCC" --version | tail -n 1)), $jobs at a time -> $out"
printf '%s\0' "${srcs[@]}" | xargs -0 -n 1 -P "$jobs" bash -c 'compile_one "$1"' _
rc=$?
if [ $rc -ne 0 ]; then
  failed=$(for s in "${srcs[@]}"; do n=$(basename "$s" .cu); [ -x "$out/$n" ] || echo -n "$n "; done)
  echo "build.sh: BUILD FAILED (first error printed above; not built: ${failed:-?})" >&2
  exit 1
fi
echo "build.sh: all built in $out"
