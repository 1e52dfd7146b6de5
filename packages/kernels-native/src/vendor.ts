/**
 * Vendor libraries found at run time, never linked: cuBLASLt (GEMMs), NCCL (multi-GPU) and NVML
 * (live clocks, power, utilisation). This file decides where to look; native code opens the first
 * candidate that loads and reads its version. Order, first match wins:
 *   1. an environment override: DEEPWELL_CUBLASLT_PATH, DEEPWELL_NCCL_PATH, DEEPWELL_NVML_PATH
 *      (the value 'none' hides the library: Deepwell then uses what comes below it)
 *   2. the bare soname, which the dynamic loader resolves through LD_LIBRARY_PATH and ldconfig
 *   3. the CUDA toolkit: $CUDA_HOME/lib64, /usr/local/cuda/lib64 (and targets/x86_64-linux/lib)
 *   4. pip's nvidia-* wheels in any site-packages we can find (nvidia/cublas/lib, nvidia/cu13/lib,
 *      nvidia/nccl/lib), including $VIRTUAL_ENV and /opt/<name>/.venv
 */
import { checkKeys, checkOneOf } from '@deepwell/core';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { tryLoadNative } from './loader.js';
import type { NativeLibraryResult, NvmlStats } from './abi-types.js';

export type VendorLibrary = 'cublasLt' | 'nccl' | 'nvml';

const SONAMES: Record<VendorLibrary, string[]> = {
  cublasLt: ['libcublasLt.so.13', 'libcublasLt.so.12'],
  nccl: ['libnccl.so.2'],
  nvml: ['libnvidia-ml.so.1'],
};
const ENV: Record<VendorLibrary, string> = { cublasLt: 'DEEPWELL_CUBLASLT_PATH', nccl: 'DEEPWELL_NCCL_PATH', nvml: 'DEEPWELL_NVML_PATH' };
const PIP_DIRS: Record<VendorLibrary, string[]> = {
  cublasLt: ['nvidia/cu13/lib', 'nvidia/cublas/lib', 'nvidia/cu12/lib'],
  nccl: ['nvidia/nccl/lib', 'nvidia/cu13/lib'],
  nvml: [],
};

function ls(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** site-packages folders where pip may have put nvidia-* wheels. */
export function sitePackages(): string[] {
  const prefixes = ['/usr/lib', '/usr/local/lib', join(homedir(), '.local/lib')];
  if (process.env.VIRTUAL_ENV) prefixes.push(join(process.env.VIRTUAL_ENV, 'lib'));
  if (process.env.CONDA_PREFIX) prefixes.push(join(process.env.CONDA_PREFIX, 'lib'));
  for (const d of ls('/opt')) prefixes.push(join('/opt', d, '.venv/lib'), join('/opt', d, 'lib'));
  const out: string[] = [];
  for (const p of prefixes) {
    for (const py of ls(p).filter((d) => /^python3(\.\d+)?$/.test(d))) {
      for (const sp of ['site-packages', 'dist-packages']) {
        const dir = join(p, py, sp);
        if (existsSync(join(dir, 'nvidia'))) out.push(dir);
      }
    }
  }
  return out;
}

/** Where `lib` is looked for, in order. */
export function libraryCandidates(lib: VendorLibrary): string[] {
  checkOneOf(lib, Object.keys(SONAMES) as VendorLibrary[], 'libraryCandidates library');
  const out: string[] = [];
  const override = process.env[ENV[lib]];
  if (override) out.push(override);
  out.push(...SONAMES[lib]);
  const cudaDirs = [process.env.CUDA_HOME, '/usr/local/cuda'].filter((d): d is string => !!d);
  for (const d of cudaDirs) for (const sub of ['lib64', 'targets/x86_64-linux/lib']) for (const so of SONAMES[lib]) out.push(join(d, sub, so));
  if (lib === 'nvml') for (const so of SONAMES.nvml) out.push(join('/usr/local/nvidia/lib64', so), join('/usr/lib/x86_64-linux-gnu', so));
  for (const sp of sitePackages()) for (const sub of PIP_DIRS[lib]) for (const so of SONAMES[lib]) out.push(join(sp, sub, so));
  return [...new Set(out)].filter((c) => !c.includes('/') || existsSync(c));
}

export interface VendorLibraryReport {
  library: VendorLibrary;
  found: boolean;
  path: string | null;
  version: string | null;
  /** Each candidate that failed, with the loader's reason. */
  tried: { candidate: string; error: string }[];
}

// One cache per process, shared by the ESM and CJS copies of this package (as core's registry is).
const FOUND = Symbol.for('deepwell.vendorLibraries');
const found: Map<VendorLibrary, VendorLibraryReport> = ((globalThis as Record<symbol, unknown>)[FOUND] as Map<VendorLibrary, VendorLibraryReport> | undefined) ?? new Map();
(globalThis as Record<symbol, unknown>)[FOUND] = found;

/** Find and open one vendor library (once per process; `refresh` looks again). */
export function findLibrary(lib: VendorLibrary, options: { refresh?: boolean } = {}): VendorLibraryReport {
  checkOneOf(lib, Object.keys(SONAMES) as VendorLibrary[], 'findLibrary library');
  checkKeys(options, ['refresh'], 'findLibrary');
  const hit = found.get(lib);
  if (hit && !options.refresh) return hit;
  const addon = tryLoadNative();
  let report: VendorLibraryReport;
  if (process.env[ENV[lib]] === 'none') {
    // Hidden on purpose: to run without it, or to test the fallbacks below it.
    report = { library: lib, found: false, path: null, version: null, tried: [{ candidate: '(none)', error: `${ENV[lib]}=none hides it` }] };
  } else if (!addon) {
    report = { library: lib, found: false, path: null, version: null, tried: [{ candidate: '(all)', error: 'the native addon is not loaded' }] };
  } else {
    const r: NativeLibraryResult = addon.openLibrary(lib, libraryCandidates(lib));
    report = { library: lib, found: r.path !== null, path: r.path, version: r.version, tried: r.tried };
  }
  found.set(lib, report);
  return report;
}

/** cuBLASLt, NCCL and NVML: which were found, where, and their versions. */
export function findVendorLibraries(options: { refresh?: boolean } = {}): VendorLibraryReport[] {
  return (['cublasLt', 'nccl', 'nvml'] as const).map((l) => findLibrary(l, options));
}

/** Live NVML readings for the GPU at `pciBusId`, or null when NVML is unavailable. */
export function nvmlStats(pciBusId: string): NvmlStats | null {
  const addon = tryLoadNative();
  if (!addon || !findLibrary('nvml').found) return null;
  try {
    return addon.nvmlDeviceStats(pciBusId);
  } catch {
    return null;
  }
}
