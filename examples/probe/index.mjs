// examples/probe: what hardware is here and what it can do.
//   node index.mjs          the report as text
//   node index.mjs --json   the report as JSON
import { printHardwareInfo, probe } from '@deepwell/probe';

const report = probe();
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(report, null, 2));
} else {
  printHardwareInfo(report);
  const best = report.gpus.find((g) => g.features.wgmma || g.features.tcgen05);
  console.log(
    best
      ? `\nGPU ${best.index} (${best.name}) runs Deepwell's ${best.kernelImage} kernels.`
      : report.gpus.length
        ? '\nThe GPUs here predate Hopper: Deepwell runs them through PTX, without its Hopper and Blackwell kernels.'
        : '\nNo GPU here: Deepwell runs on its CPU reference backend.',
  );
}
