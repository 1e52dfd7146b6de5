# Sourced by the GPU host's check scripts (step-check.sh, fp8-check.sh): the prologue and epilogue
# they share. The script sets `parts` (its arguments, or its default parts), then:
#   device_begin <name prefix>   # $OUT/<prefix>-<parts>/ for the part files, the log beside it
#                                # (everything printed is teed into it), Node and the packages
#                                # from .device/ (scripts/device-pack.sh), the date, GPU and commit
#   step "what"                  # a heading in the log, with the seconds so far
#   device_end                   # the part files packed into $OUT/<prefix>-<parts>.tgz
step() { printf '\n##### %s  (t=%ss)\n' "$*" "$SECONDS"; }

device_begin() {
  TOP=${OUT:-$PWD/gpu-out}
  name=$1-$(IFS=-; echo "${parts[*]}" | tr , _)
  OUT=$TOP/$name
  mkdir -p "$OUT"
  exec > >(tee "$TOP/$name.log") 2>&1
  export PATH=/tmp:$PATH:/usr/local/cuda/bin NCCL_NVLS_ENABLE=0 FORCE_COLOR=0 NO_COLOR=1
  [ -x /tmp/node ] || { xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node; }
  [ -d node_modules/.pnpm ] || tar -xJf .device/deps.tar.xz
  export DEEPWELL_COMMIT=$(cat .device/commit 2>/dev/null || echo unknown)
  step "date and GPU"; date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
  echo "commit (as packed): $DEEPWELL_COMMIT"
}

device_end() {
  step "done"
  tar -czf "$TOP/$name.tgz" -C "$TOP" "$name" && rm -rf "$OUT"
}
