/** The probe report as text a person reads, and the deepwell-probe command line. */
import type { VendorLibraryReport } from '@deepwell/kernels-native';
import { probe, type ProbeReport } from './report.js';
import { invalid } from '@deepwell/core';

const GiB = 1024 ** 3;
const fmt = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;
const LIBRARY_NAMES: Record<string, string> = { cublasLt: 'cuBLASLt', nccl: 'NCCL', nvml: 'NVML' };
const and = (xs: string[]) => (xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`);

/** Why a vendor library was not found, in words: where it was looked for and how to point to it. */
function notFound(lib: VendorLibraryReport): string {
  const [first] = lib.tried;
  // A single pseudo-candidate: the library was not looked for at all (hidden, or no addon).
  if (lib.tried.length === 1 && first && first.candidate.startsWith('(')) return `not looked for: ${first.error}`;
  // A bare file name is looked up by the dynamic loader (LD_LIBRARY_PATH, ldconfig); a path, in its folder.
  const files = [...new Set(lib.tried.map((t) => t.candidate.split('/').at(-1)!))];
  const dirs = [...new Set(lib.tried.filter((t) => t.candidate.includes('/')).map((t) => t.candidate.slice(0, t.candidate.lastIndexOf('/'))))];
  const where = [lib.tried.some((t) => !t.candidate.includes('/')) ? 'on the library path' : '', dirs.length === 1 ? `in ${dirs[0]}` : dirs.length ? `in ${dirs.length} folders` : ''];
  return `not found (looked for ${and(files)} ${and(where.filter(Boolean))}; set DEEPWELL_${lib.library.toUpperCase()}_PATH to its path)`;
}

export function formatHardwareInfo(r: ProbeReport = probe()): string {
  const obj = (v: unknown) => typeof v === 'object' && v !== null;
  if (!obj(r) || !obj(r.host) || !obj(r.native) || !obj(r.cuda) || !Array.isArray(r.gpus) || !Array.isArray(r.libraries)) invalid('a report from probe()', 'formatHardwareInfo', r);
  const out: string[] = [];
  out.push(`Deepwell hardware report`);
  out.push(`  host     ${r.host.platform}-${r.host.arch}, Node ${r.host.node}, ${r.host.cpuCount} × ${r.host.cpuModel}, ${fmt(r.host.memoryBytes)}`);
  out.push(`  native   ${r.native.loaded ? `the CUDA addon loaded (GPU code for ${r.native.cudaArchs?.replace(/,/g, ', ')})` : `the CUDA addon did not load: ${r.native.error?.split('\n')[0] ?? 'unknown'}`}`);
  const c = r.cuda;
  const versions = c.driverVersion ? ` (driver for CUDA ${c.driverVersion}, runtime ${c.runtimeVersion ?? 'unknown'})` : '';
  // The reason may name the versions itself (a driver too old for the runtime): then not twice.
  const reason = r.native.loaded ? (c.reason ?? 'unknown') : 'the CUDA addon did not load (above)';
  out.push(`  cuda     ${c.available ? `available${versions}` : `not available: ${reason}${/CUDA \d/.test(reason) ? '' : versions}`}`);
  if (r.gpus.length === 0) out.push('  gpus     none: Deepwell runs on the CPU, with its reference kernels (correct, not fast)');
  for (const g of r.gpus) {
    const feats = Object.entries(g.features).filter(([, v]) => v).map(([k]) => k).join(' ');
    out.push(`  gpu ${g.index}    ${g.name}, compute ${g.computeCapability}, ${g.smCount} SMs, ${fmt(g.memoryBytes)} (${fmt(g.memoryCudaTotalBytes)} usable, ${fmt(g.memoryFreeBytes)} free), L2 ${(g.l2CacheBytes / 2 ** 20).toFixed(0)} MiB`);
    out.push(`           clocks ${g.smClockMHz} MHz SM / ${g.memoryClockMHz} MHz memory, ${g.memoryBusWidthBits}-bit bus, ~${(g.memoryBandwidthGBps / 1000).toFixed(2)} TB/s theoretical`);
    out.push(`           features ${feats || 'none'}; runs ${g.kernelImage}`);
    if (g.peak) out.push(`           peak ${g.peak.bf16Tflops} TFLOP/s bf16, ${g.peak.fp8Tflops} fp8, ${g.peak.memoryGBps / 1000} TB/s (${g.peak.source})`);
    if (g.live) {
      const l = g.live;
      out.push(`           now ${l.smClockMHz ?? '?'} MHz SM, ${l.powerW ?? '?'} W of ${l.powerLimitW ?? '?'} W, ${l.gpuUtilization ?? '?'}% busy, ${l.temperatureC ?? '?'} °C`);
    }
  }
  // Without a GPU the vendor libraries do not matter: one line for those missing.
  const missing = r.libraries.filter((l) => !l.found);
  if (r.gpus.length === 0 && missing.length) {
    out.push(`  libs     ${and(missing.map((l) => LIBRARY_NAMES[l.library] ?? l.library))} not found (used only with a GPU)`);
  }
  for (const lib of r.libraries) {
    if (!lib.found && r.gpus.length === 0) continue;
    out.push(`  ${(LIBRARY_NAMES[lib.library] ?? lib.library).padEnd(8)} ${lib.found ? `${lib.version} at ${lib.path}` : notFound(lib)}`);
  }
  return out.join('\n');
}

export function printHardwareInfo(r: ProbeReport = probe()): void {
  console.log(formatHardwareInfo(r));
}

/** deepwell-probe [--json]: exit code 0 whether or not a GPU is present; 2 for bad arguments. */
export async function main(argv: string[]): Promise<number> {
  if (!Array.isArray(argv) || argv.some((a) => typeof a !== 'string')) invalid('an array of argument strings', 'deepwell-probe main(argv)', argv);
  const unknown = argv.filter((a) => a !== '--json' && a !== '--help' && a !== '-h');
  if (unknown.length || argv.includes('--help') || argv.includes('-h')) {
    const usage = 'Usage: deepwell-probe [--json]\n  Prints the GPUs, their capabilities and the vendor libraries found. --json prints the report as JSON (its gpus array is empty without a GPU).';
    if (unknown.length) {
      console.error(`deepwell-probe: unknown argument ${unknown.map((u) => `'${u}'`).join(', ')}\n${usage}`);
      return 2;
    }
    console.log(usage);
    return 0;
  }
  const r = probe();
  if (argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else printHardwareInfo(r);
  return 0;
}
