// Issue 20: precision reads device names with core's parseDevice, not its own regexes: a name that
// is no device (a typo) is an error, not "no GPU here" (before: computeCapabilityOf('gpu0') and a
// policy run with device 'cuda-0' quietly took the CPU's path).
import { describe, expect, it } from 'vitest';
import { computeCapabilityOf } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

describe('precision device names through parseDevice', () => {
  it('computeCapabilityOf refuses a name that is no device (before: null, as for the CPU)', () => {
    for (const name of ['gpu0', 'cuda-0', `cuda:${rand(10_000, 9e9)}`, 'cuda:01', 'CPU']) {
      expect(errorOf(() => computeCapabilityOf(name)).code, name).toBe('INVALID_ARGUMENT');
    }
    expect(computeCapabilityOf('cpu')).toBeNull();
    expect(computeCapabilityOf(undefined)).toBeNull();
    const cc = computeCapabilityOf(`cuda:${rand(0, 3)}`);
    expect(cc === null || /^\d+\.\d+$/.test(cc)).toBe(true);
  });
});
