#!/usr/bin/env bash
# Prepares what the lent GPU host needs and does not have, under .device/ (git-ignored through
# .git/info/exclude): this machine's Node binary, the built packages with the test runner's
# dependencies, and a project installed from the packed tarballs on a PATH without nvcc.
# Then `device run` carries .device and runs scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
[ -s .device/node.xz ] || xz -T2 -c "$(readlink -f "$(command -v node)")" > .device/node.xz
pnpm build
# The workspace's node_modules without the build-only giants (the checks there only run tests).
tar -cJf .device/deps.tar.xz \
  --exclude='node_modules/.pnpm/typescript@*' --exclude='node_modules/.pnpm/@turbo+*' --exclude='node_modules/.pnpm/turbo@*' \
  --exclude='node_modules/.pnpm/prettier@*' --exclude='node_modules/.pnpm/@esbuild+*' --exclude='node_modules/.pnpm/esbuild@*' \
  --exclude='node_modules/.pnpm/@resvg+*' --exclude='node_modules/.pnpm/@types+*' --exclude='node_modules/.pnpm/@changesets+*' \
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
