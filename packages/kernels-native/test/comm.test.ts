// NCCL communicators (src/comm.ts over native/comm/nccl.cpp). On any machine: bad options are typed
// errors before anything native, and without NCCL every call says LIBRARY_UNAVAILABLE. On a GPU with
// NCCL (the H200: world size 1, the real NCCL path): all-reduce, reduce-scatter, all-gather and
// broadcast of fresh random data equal their input exactly (one rank), outputs poisoned first; a
// destroyed communicator refuses use; a world of 2 whose second rank never comes fails with TIMEOUT
// within its timeout, not a hang. Written in session 17; the GPU part not yet run.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Communicator, NCCL_UNIQUE_ID_BYTES, Stream, cudaBackend, cudaStatus, findLibrary, loadNative, ncclUniqueId, tryLoadNative, type DevArg } from '../src/index.js';
import { errorOf } from './helpers.js';

const gpu = cudaStatus().available;
const nccl = tryLoadNative() !== null && findLibrary('nccl').found;

describe('Communicator without a GPU or NCCL', () => {
  it('refuses bad options before anything native', () => {
    const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ rank: 2, worldSize: 2, id }, /rank of Communicator.create/],
      [{ rank: 0, worldSize: 0, id }, /worldSize of Communicator.create/],
      [{ rank: 0, worldSize: 1, id: new Uint8Array(16) }, /a Uint8Array of 128 bytes\) for id of Communicator\.create but received 16 bytes/],
      [{ rank: 0, worldSize: 1, id: 'abc' }, /NCCL unique id/],
      [{ rank: 0, worldSize: 1, id, device: 64 }, /device of Communicator.create/],
      [{ rank: 0, worldSize: 1, id, timeoutMs: 0 }, /timeoutMs of Communicator.create/],
      [{ rank: 0, worldSize: 1, id, timeout: 5 }, /timeout/],
    ];
    for (const [o, msg] of cases) {
      const e = errorOf(() => Communicator.create(o as never));
      expect(e.code, JSON.stringify(Object.keys(o))).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(msg);
    }
  });

  it.skipIf(nccl)('says LIBRARY_UNAVAILABLE (or that the addon is missing) where NCCL is not found', () => {
    const e = errorOf(() => ncclUniqueId());
    expect(['LIBRARY_UNAVAILABLE', 'NATIVE_LOAD_FAILED']).toContain(e.code);
    if (e.code === 'LIBRARY_UNAVAILABLE') expect(e.message).toMatch(/libnccl\.so\.2\) was not found[\s\S]*DEEPWELL_NCCL_PATH/);
  });
});

describe.skipIf(!gpu || !nccl)('Communicator on the GPU (world size 1, the real NCCL path)', () => {
  const be = gpu ? cudaBackend(0) : (null as never);
  const arg = (b: { ptr: number; bytes: number }): DevArg => ({ base: b.ptr, offset: 0, bytes: b.bytes });

  it('every collective of one rank returns its input exactly, in and out of place; destroyed, it refuses use', () => {
    const id = ncclUniqueId();
    expect(id.some((b) => b !== 0)).toBe(true);
    const comm = Communicator.create({ rank: 0, worldSize: 1, id, timeoutMs: 60_000 });
    const stream = new Stream(0);
    const n = 1000 + Math.floor(Math.random() * 5000);
    const data = new Float32Array(n);
    randomFillSync(new Uint32Array(data.buffer)); // random bit patterns ...
    for (let i = 0; i < n; i++) if (!Number.isFinite(data[i]!)) data[i] = i; // ... finite
    const src = be.alloc(n * 4);
    const dst = be.alloc(n * 4);
    be.write(src, data);
    const read = () => {
      stream.synchronize();
      const out = new Float32Array(n);
      be.read(dst, out);
      return out;
    };
    const poison = () => be.write(dst, new Float32Array(n).fill(Number.NaN));
    for (const [name, run] of [
      ['allReduce sum', () => comm.allReduce(stream.handle, 'f32', arg(src), arg(dst), n, 'sum')],
      ['allReduce max', () => comm.allReduce(stream.handle, 'f32', arg(src), arg(dst), n, 'max')],
      ['reduceScatter', () => comm.reduceScatter(stream.handle, 'f32', arg(src), arg(dst), n)],
      ['allGather', () => comm.allGather(stream.handle, 'f32', arg(src), arg(dst), n)],
      ['broadcast', () => comm.broadcast(stream.handle, 'f32', arg(src), arg(dst), n, 0)],
    ] as const) {
      poison();
      run();
      expect(Array.from(read()), name).toEqual(Array.from(data));
    }
    // In place.
    be.write(dst, data);
    comm.allReduce(stream.handle, 'f32', arg(dst), arg(dst), n, 'sum');
    expect(Array.from(read())).toEqual(Array.from(data));
    comm.check();
    // waitStream: the stream done, watched through NCCL.
    comm.allReduce(stream.handle, 'f32', arg(src), arg(dst), n, 'sum');
    comm.waitStream(stream.handle);
    expect(Array.from(read())).toEqual(Array.from(data));
    // Sizes past the buffers are refused before NCCL sees them.
    expect(errorOf(() => comm.allReduce(stream.handle, 'f32', arg(src), arg(dst), n + 1)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => comm.broadcast(stream.handle, 'f32', arg(src), arg(dst), n, 1)).message).toMatch(/root of Communicator.broadcast/);
    comm.destroy();
    expect(errorOf(() => comm.allReduce(stream.handle, 'f32', arg(src), arg(dst), n)).code).toBe('DISPOSED');
    expect(errorOf(() => comm.waitStream(stream.handle)).code).toBe('DISPOSED');
    // An unknown handle at the native boundary.
    expect(errorOf(() => loadNative().ncclCommCheck(123456)).message).toMatch(/live communicator handle/);
    be.free(src);
    be.free(dst);
    stream.dispose();
  });

  it('a world of 2 whose second rank never comes: TIMEOUT within the timeout, and the process ends', () => {
    // In a process of its own: NCCL's bootstrap keeps waiting for the missing peer (a communicator
    // whose init timed out cannot be aborted safely), so the process must be able to end anyway.
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const code = `const { Communicator, ncclUniqueId } = await import(${JSON.stringify(dist)});
      const t0 = Date.now();
      try { Communicator.create({ rank: 0, worldSize: 2, id: ncclUniqueId(), timeoutMs: 3000 }); console.log('created?!'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, ms: Date.now() - t0 })); }
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { code: string; message: string; ms: number };
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toMatch(/ncclCommInitRank \(rank 0 of 2\) did not finish within 3000 ms.*end this process/);
    expect(e.ms).toBeLessThan(30_000);
  }, 120_000);
});
