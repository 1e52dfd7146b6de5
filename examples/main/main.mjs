// Deepwell's main job (`pnpm start`): report the hardware, then run the device smoke test on every
// device present — the GPUs when there are any, the CPU reference backend otherwise — through the
// shared kernel registry, and say which kernel served each call. Exits 1 if any element is wrong.
import { registry } from '@deepwell/core';
import { registerCudaBackends } from '@deepwell/kernels-native';
import { printHardwareInfo, smokeTest } from '@deepwell/probe';

printHardwareInfo();
const gpus = registerCudaBackends();
const devices = gpus.length ? gpus : ['cpu'];
console.log(`\nSmoke test on ${devices.join(', ')}${gpus.length ? '' : ' (no GPU: the embedded default is the CPU)'}`);
let failed = false;
for (const device of devices) {
  const r = smokeTest(device, 1 << 22);
  failed ||= r.mismatches !== 0;
  console.log(`  ${device}: ${r.elements} elements by ${r.kernel}: ${r.mismatches === 0 ? 'all correct' : `${r.mismatches} WRONG`} (${r.ms.toFixed(1)} ms with the copy back)`);
}
console.log('\nKernels that served this run:');
for (const row of registry.summary()) console.log(`  ${row.op} -> ${row.kernel} [${row.backend}]: ${row.calls} call(s)`);
process.exitCode = failed ? 1 : 0;
