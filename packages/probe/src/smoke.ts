/**
 * The device smoke test, as an op in the shared registry: 'probe.smoke_fill' writes
 * u32[i] = smokeHash(seed, i). Its CUDA kernel and the hash's reference come from kernels-native; the
 * CPU candidate computes that reference. Running it on whatever device is present shows allocation, a kernel, copies and the
 * registry's choice working together, and checks every element.
 */
import { DeepwellError, Tensor, checkInteger, hasBackend, invalid, registry, scope, type Device } from '@deepwell/core';
import { countHashMismatches, fillHash, fillHashHost, type CudaBuffer } from '@deepwell/kernels-native';

interface FillParams {
  out: Tensor;
  seed: number;
}

const OP = 'probe.smoke_fill';

let registered = false;
function registerKernels(): void {
  if (registered) return;
  registered = true;
  registry.register<FillParams, void>({
    op: OP,
    backend: 'cuda',
    name: 'smoke_fill_u32_cuda',
    priority: 100,
    supports: ({ out }) => (out.device.startsWith('cuda') ? true : `output is on ${out.device}`),
    run: ({ out, seed }) => fillHash(out.buffer as CudaBuffer, out.numel, seed),
  });
  registry.register<FillParams, void>({
    op: OP,
    backend: 'cpu',
    name: 'smoke_fill_u32_reference',
    priority: 0,
    supports: ({ out }) => (out.device === 'cpu' ? true : `output is on ${out.device}`),
    run: ({ out, seed }) => {
      const host = new Uint32Array(out.numel);
      fillHashHost(host, seed);
      out.backend.write(out.buffer, host);
    },
  });
}

export interface SmokeTestResult {
  device: Device;
  kernel: string;
  elements: number;
  mismatches: number;
  ms: number;
}

/** Fill `elements` u32 on `device` through the registry and check every one. */
export function smokeTest(device: Device = 'cpu', elements = 1 << 20): SmokeTestResult {
  if (typeof device !== 'string') invalid("a device name ('cpu' or 'cuda:N')", 'smokeTest device', device);
  // The CPU checks every element in JavaScript: 2^26 of them take about a second there.
  checkInteger(elements, `smokeTest elements on ${device}`, 1, device === 'cpu' ? 2 ** 26 : 2 ** 30);
  registerKernels();
  if (!hasBackend(device)) {
    throw new DeepwellError('NO_BACKEND', `No backend for ${device}: call registerCudaBackends() from @deepwell/kernels-native first`);
  }
  return scope(() => {
    const seed = (Math.random() * 2 ** 32) >>> 0;
    // i32 storage holding u32 bits; poisoned so an element the kernel skipped cannot match.
    const t = Tensor.from(new Int32Array(elements).fill(0xa5a5a5a5 | 0), [elements], 'i32', { device });
    const params = { out: t, seed };
    const kernel = registry.select<FillParams>(OP, params).name;
    const t0 = performance.now();
    registry.dispatch<FillParams>(OP, params);
    const host = new Uint32Array((t.toHost() as Int32Array).buffer);
    const ms = performance.now() - t0;
    const mismatches = countHashMismatches(host, seed);
    return { device, kernel, elements, mismatches, ms };
  });
}
