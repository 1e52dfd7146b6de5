// Issue 20: dryrun and compile check the device with core's parseDevice (checkDeviceName), not
// their own /^(cpu|cuda:\d+)$/ regexes: 'cuda:01' and an index past what parseDevice takes
// (cuda:12345678901) were accepted by dryrun (and reached compile's CUDA lookup).
import { describe, expect, it } from 'vitest';
import { GraphBuilder, checkDeviceName, compile, dryrun, matmul } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
function graph() {
  const b = new GraphBuilder();
  const x = b.input('x', [rand(1, 4), 4]);
  const w = b.param('w', [4, rand(1, 4)], 'f32', { dist: 'normal', scale: 0.1 });
  b.output('y', matmul(x, w));
  return b.graph;
}
const odd = () => ['cuda:01', `cuda:${rand(10_000, 9e9)}`, 'cuda:+1', 'CUDA:0', ' cpu'];

describe('one device check (parseDevice) in dryrun and compile', () => {
  it('dryrun refuses device names parseDevice refuses (before: cuda:01 and huge indexes were taken)', () => {
    for (const device of odd()) {
      const e = errorOf(() => dryrun(graph(), { device: device as never }));
      expect(e.code, device).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/'cpu' or 'cuda:N' for dryrun device/);
    }
    expect(dryrun(graph(), { device: 'cpu' }).totalBytes).toBeGreaterThan(0);
  });

  it('compile refuses them with INVALID_ARGUMENT before looking for a GPU', () => {
    for (const device of ['cuda:01', `cuda:${rand(10_000, 9e9)}`]) expect(errorOf(() => compile(graph(), { device: device as never })).code, device).toBe('INVALID_ARGUMENT');
  });

  it('checkDeviceName takes the canonical names only', () => {
    expect(checkDeviceName('cpu', 'd')).toBe('cpu');
    const n = rand(0, 7);
    expect(checkDeviceName(`cuda:${n}`, 'd')).toBe(`cuda:${n}`);
    for (const v of ['cuda', 'gpu', 3, null, ...odd()]) expect(errorOf(() => checkDeviceName(v, 'the probe')).message).toMatch(/for the probe but received/);
  });
});
