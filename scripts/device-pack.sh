#!/usr/bin/env bash
# Prepares what the lent GPU host needs and does not have, under .device/ (git-ignored through
# .git/info/exclude): this machine's Node binary, the built packages with the test runner's
# dependencies, and a project installed from the packed tarballs on a PATH without nvcc.
# Then `device run` carries .device and runs scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
# Node stripped of its symbols (12 MB less; what travels is capped at 64 MiB).
if [ ! -s .device/node.xz ]; then
  cp "$(readlink -f "$(command -v node)")" /tmp/deepwell-node && strip /tmp/deepwell-node
  xz -9e -T2 -c /tmp/deepwell-node > .device/node.xz && rm -f /tmp/deepwell-node
fi
pnpm build
# The workspace's node_modules without the build-only giants (the checks there only run tests).
tar -cJf .device/deps.tar.xz \
  --exclude='node_modules/.pnpm/typescript@*' --exclude='node_modules/.pnpm/@turbo+*' --exclude='node_modules/.pnpm/turbo@*' \
  --exclude='node_modules/.pnpm/prettier@*' --exclude='node_modules/.pnpm/@esbuild+*' --exclude='node_modules/.pnpm/esbuild@*' \
  --exclude='node_modules/.pnpm/@resvg+*' --exclude='node_modules/.pnpm/@types+*' --exclude='node_modules/.pnpm/@changesets+*' \
  --exclude='node_modules/.pnpm/lightningcss*' --exclude='node_modules/.pnpm/@rollup+*' --exclude='node_modules/.pnpm/rollup@*' \
  --exclude='node_modules/.pnpm/tsup@*' --exclude='node_modules/.pnpm/sucrase@*' --exclude='packages/*/dist/*.map' \
  node_modules packages/*/node_modules examples/*/node_modules bench/node_modules fuzz/node_modules packages/*/dist packages/kernels-native/prebuilds
# The tarball install (gpu-check.sh's `installed` step); DEVICE_PACK_NO_INSTALL=1 leaves it out.
if [ -z "${DEVICE_PACK_NO_INSTALL:-}" ]; then
  node scripts/pack-install.mjs --dest /tmp/deepwell-device-install > /dev/null
  tar -C /tmp/deepwell-device-install -cJf .device/installed.tar.xz project
else
  rm -f .device/installed.tar.xz
fi
# The commit packed (with '-dirty' for uncommitted changes): the GPU host's copy has no reliable .git.
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo -dirty)" > .device/commit
ls -la .device
