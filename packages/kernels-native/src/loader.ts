/**
 * Finding and loading the native addon. The prebuilt binary ships inside the package in the
 * prebuildify layout (prebuilds/linux-x64/*.node) and node-gyp-build picks it; DEEPWELL_NATIVE_PATH
 * names a .node file to use instead. When loading fails the error says what was tried and how to
 * fix it, and every other package keeps working on the CPU.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeepwellError } from '@deepwell/core';
import { wrapAddon, type NativeAddon } from './native.js';

const require = createRequire(import.meta.url);
/** The package root: dist/ sits one level below it, as src/ does in tests. */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

let cached: { addon: NativeAddon | null; error: DeepwellError | null; path: string | null } | null = null;

function attempt(): { addon: NativeAddon; path: string } {
  const tried: string[] = [];
  const override = process.env.DEEPWELL_NATIVE_PATH;
  const platformDir = join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
  let path: string | null = null;
  let cause: unknown;
  try {
    if (override) {
      tried.push(`DEEPWELL_NATIVE_PATH=${override}${existsSync(override) ? '' : ' (no such file)'}`);
      path = override;
    } else {
      tried.push(`${platformDir}: ${existsSync(platformDir) ? readdirSync(platformDir).join(', ') || 'empty' : 'missing'}`);
      path = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(PACKAGE_ROOT);
    }
    return { addon: wrapAddon(require(path) as Record<string, unknown>), path };
  } catch (e) {
    cause = e;
  }
  const reason = (cause instanceof Error ? cause.message.split('\n')[0] : undefined) ?? String(cause);
  const fixes = [
    process.platform !== 'linux' || process.arch !== 'x64'
      ? `Deepwell's prebuilt binaries are for linux-x64 only; this is ${process.platform}-${process.arch}.`
      : null,
    'Reinstall @deepwell/kernels-native so its install step runs (npm rebuild @deepwell/kernels-native).',
    'With the CUDA toolkit installed (nvcc on PATH or CUDA_HOME set), build from source: npx deepwell-build-native, or pnpm --filter @deepwell/kernels-native build:native in the repository.',
    'Point DEEPWELL_NATIVE_PATH at a built @deepwell+kernels-native.napi.node.',
    /GLIBC|GLIBCXX/.test(reason) ? 'The binary needs a newer C or C++ runtime than this system has: build from source here.' : null,
  ].filter(Boolean);
  throw new DeepwellError(
    'NATIVE_LOAD_FAILED',
    `Could not load the Deepwell native addon: ${reason}\nTried:\n  ${tried.join('\n  ')}\nPossible fixes:\n  - ${fixes.join('\n  - ')}`,
    { cause, details: { tried, platform: `${process.platform}-${process.arch}` } },
  );
}

/** The addon, or null when it cannot load (see `nativeLoadError()`). Loads once per process. */
export function tryLoadNative(): NativeAddon | null {
  if (!cached) {
    try {
      const { addon, path } = attempt();
      cached = { addon, error: null, path };
    } catch (e) {
      cached = { addon: null, error: e as DeepwellError, path: null };
    }
  }
  return cached.addon;
}

/** The addon; throws NATIVE_LOAD_FAILED with what was tried and the fixes when it cannot load. */
export function loadNative(): NativeAddon {
  const addon = tryLoadNative();
  if (!addon) throw cached!.error!;
  return addon;
}

export function nativeLoadError(): DeepwellError | null {
  tryLoadNative();
  return cached!.error;
}

export function nativePath(): string | null {
  tryLoadNative();
  return cached!.path;
}
