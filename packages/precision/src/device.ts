/** What the precision package asks of the GPU it runs on. */
import { invalid, parseDevice } from '@deepwell/core';
import { deviceProperties, isCudaAvailable } from '@deepwell/kernels-native';

/** The compute capability ('9.0') of a CUDA device name ('cuda:0'), or null (the CPU, no GPU). */
export function computeCapabilityOf(device: string | undefined): string | null {
  if (device !== undefined && typeof device !== 'string') invalid("a device name ('cpu', 'cuda:0') or undefined", 'computeCapabilityOf', device);
  if (device === undefined) return null;
  const d = parseDevice(device); // the devices' one parser: a name that is neither is an error, not "no GPU"
  if (d === 'cpu') return null;
  try {
    if (!isCudaAvailable()) return null;
    const p = deviceProperties(Number(d.slice(5)));
    return `${p.major}.${p.minor}`;
  } catch {
    return null;
  }
}
