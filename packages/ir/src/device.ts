/**
 * A device name as dryrun, compile and nn's Generator take it: core's parseDevice (the devices' one
 * parser), in its canonical spelling only ('cpu' or 'cuda:N'; its 'cuda' alias and 'cuda:01' are refused).
 */
import { DeepwellError, describe, parseDevice, type Device } from '@deepwell/core';

/** `value` as a Device, or an INVALID_ARGUMENT error naming `what`. */
export function checkDeviceName(value: unknown, what: string): Device {
  let d: Device | null = null;
  try {
    d = parseDevice(value);
  } catch {
    d = null;
  }
  if (d === null || d !== value) throw new DeepwellError('INVALID_ARGUMENT', `Expected 'cpu' or 'cuda:N' for ${typeof what === 'string' ? what : 'a device'} but received ${describe(value)}`);
  return d;
}
