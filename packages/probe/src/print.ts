/** The probe report as text a person reads, and the deepwell-probe command line. */
import { probe, type ProbeReport } from './report.js';

const GiB = 1024 ** 3;
const fmt = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;

export function formatHardwareInfo(r: ProbeReport = probe()): string {
  const out: string[] = [];
  out.push(`Deepwell hardware report`);
  out.push(`  host     ${r.host.platform}-${r.host.arch}, Node ${r.host.node}, ${r.host.cpuCount} × ${r.host.cpuModel}, ${fmt(r.host.memoryBytes)}`);
  out.push(`  native   ${r.native.loaded ? `loaded (${r.native.cudaArchs})` : `not loaded: ${r.native.error?.split('\n')[0] ?? 'unknown'}`}`);
  out.push(
    `  cuda     ${r.cuda.available ? 'available' : `unavailable: ${r.cuda.reason}`}; driver ${r.cuda.driverVersion ?? 'none'}, runtime ${r.cuda.runtimeVersion ?? 'n/a'}`,
  );
  if (r.gpus.length === 0) out.push('  gpus     none: Deepwell runs on the CPU reference backend');
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
  for (const lib of r.libraries) {
    out.push(`  ${lib.library.padEnd(8)} ${lib.found ? `${lib.version} at ${lib.path}` : `not found (${lib.tried.length} places tried)`}`);
  }
  return out.join('\n');
}

export function printHardwareInfo(r: ProbeReport = probe()): void {
  console.log(formatHardwareInfo(r));
}

/** deepwell-probe [--json]: exit code 0 whether or not a GPU is present; 2 for bad arguments. */
export async function main(argv: string[]): Promise<number> {
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
