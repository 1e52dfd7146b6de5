// Bad input at the native boundary: each call gives a typed error and the process goes on. The raw
// addon is called directly here, bypassing the TypeScript checks, to prove native code checks too.
import { DeepwellError } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { CudaBackend, PinnedBuffer, Stream, cudaStatus, fromNative, loadNative, registerCudaBackends } from '../src/index.js';
import { errorOf } from './helpers.js';

const n = loadNative();
const bogus = 0x7f00_0000_0000 + Math.floor(Math.random() * 1e6) * 256;

describe('native argument checks (no GPU needed)', () => {
  it('rejects sizes that are negative, fractional, absurd or not numbers', () => {
    for (const bad of [-1, 1.5, 2 ** 47, NaN, Infinity, '64', null, undefined]) {
      expect(errorOf(() => n.alloc(0, bad as number)).code).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => n.alloc(-1, 64)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.alloc(0, -5)).message).toBe('Expected an integer in [0, 70368744177664] for bytes of alloc but received -5');
    expect(errorOf(() => n.alloc(0, 2 ** 47)).message).toBe('Expected an integer in [0, 70368744177664] for bytes of alloc but received 140737488355328');
  });

  it('allocFault: refuses a negative count, and counts allocations between calls (none here)', () => {
    expect(errorOf(() => n.allocFault(-1)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.allocFault(1.5)).code).toBe('INVALID_ARGUMENT');
    expect(n.allocFault(0)).toBeGreaterThanOrEqual(0);
    expect(n.allocFault(0)).toBe(0);
  });

  it('a device argument of the wrong shape is INVALID_ARGUMENT, not a TypeError from the binding', () => {
    const e = errorOf(() => n.layernorm(0, 0, 1, 4, 1e-5, null as never, null as never, null as never, null as never, null as never, null as never));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.cause).toBeInstanceOf(TypeError);
  });

  it('rejects pointers it never handed out', () => {
    expect(errorOf(() => n.free(bogus)).code).toBe('DOUBLE_FREE');
    expect(errorOf(() => n.copyHtoD(bogus, 0, new Uint8Array(4))).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.copyDtoH(new Uint8Array(4), bogus, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.copyDtoD(bogus, 0, bogus, 0, 4, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.memsetAsync(bogus, 0, 1, 4, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.fillHash(bogus, 0, 4, 1, 0)).code).toBe('INVALID_ARGUMENT');
    expect(n.lookup(bogus)).toBeNull();
  });

  it('rejects handles it never handed out', () => {
    expect(errorOf(() => n.streamDestroy(987654)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.streamDestroy(0)).code).toBe('INVALID_ARGUMENT'); // the default stream is not ours to destroy
    expect(errorOf(() => n.streamSynchronize(987654)).message).toMatch(/live stream handle/);
    expect(errorOf(() => n.eventRecord(987654, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.eventElapsed(987654, 987655)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.graphLaunch(987654, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.captureBegin(0)).message).toMatch(/default stream/);
  });

  it('rejects wrong argument types', () => {
    expect(errorOf(() => n.copyHtoD(bogus, 0, 'bytes' as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.hostFree(new ArrayBuffer(8))).code).toBe('DOUBLE_FREE');
    expect(errorOf(() => n.hostFree('x' as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.openLibrary('cudnn' as never, [])).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.openLibrary('nvml', [5 as never])).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.nvmlDeviceStats(5 as never)).code).toBe('INVALID_ARGUMENT');
  });

  it('maps native failures to DeepwellError codes and keeps the cause', () => {
    const raw = Object.assign(new Error('cudaMalloc failed'), { code: 'OUT_OF_MEMORY', cudaError: 'cudaErrorMemoryAllocation', cudaErrorCode: 2 });
    const e = fromNative(raw);
    expect([e.code, e.details.cudaError, e.details.cudaErrorCode, e.cause]).toEqual(['OUT_OF_MEMORY', 'cudaErrorMemoryAllocation', 2, raw]);
    expect(fromNative(new TypeError('weird')).code).toBe('INTERNAL');
    const mine = new DeepwellError('DISPOSED', 'x');
    expect(fromNative(mine)).toBe(mine);
  });
});

describe.skipIf(cudaStatus().available)('without a GPU', () => {
  it('says CUDA is unavailable instead of crashing', () => {
    expect(errorOf(() => n.alloc(0, 1024)).code).toBe('CUDA_UNAVAILABLE');
    expect(errorOf(() => new CudaBackend(0)).code).toBe('CUDA_UNAVAILABLE');
    expect(errorOf(() => new Stream(0)).code).toBe('CUDA_UNAVAILABLE');
    expect(errorOf(() => new PinnedBuffer(64)).code).toBe('CUDA_UNAVAILABLE');
    expect(registerCudaBackends()).toEqual([]);
  });
});
