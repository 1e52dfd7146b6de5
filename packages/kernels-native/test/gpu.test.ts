// GPU tests: run on a machine with a GPU, skipped cleanly without one. Inputs are random every run,
// outputs are poisoned before each kernel, and every element is checked.
import { randomFillSync } from 'node:crypto';
import { Tensor, scope } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  CudaBuffer,
  Event,
  Graph,
  PinnedBuffer,
  Stream,
  addU32,
  cudaBackend,
  cudaStatus,
  deviceProperties,
  fillHash,
  loadNative,
  memGetInfo,
  registerCudaBackends,
  smokeHash,
} from '../src/index.js';
import { errorOf } from './helpers.js';

const gpu = cudaStatus().available;
const seed = () => (Math.random() * 2 ** 32) >>> 0;

describe.skipIf(!gpu)('on the GPU', () => {
  const backend = gpu ? cudaBackend(0) : (null as never);

  it('reports the device', () => {
    const p = deviceProperties(0);
    expect(p.name).toMatch(/\w/);
    expect(p.multiProcessorCount).toBeGreaterThan(0);
    expect(p.major).toBeGreaterThanOrEqual(7);
    const m = memGetInfo(0);
    expect(m.total).toBeGreaterThan(m.free * 0.5);
  });

  it('allocates through the cache and keeps honest stats', () => {
    backend.emptyCache();
    const base = backend.memoryStats();
    const sizes = Array.from({ length: 20 }, () => 1 + Math.floor(Math.random() * 8 * 2 ** 20));
    let bufs = sizes.map((s) => backend.alloc(s));
    const during = backend.memoryStats();
    expect(during.allocations - base.allocations).toBe(sizes.length);
    expect(during.requested - base.requested).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(during.inUse - base.inUse).toBeGreaterThanOrEqual(during.requested - base.requested);
    expect(during.peak).toBeGreaterThanOrEqual(during.inUse);
    for (const b of bufs) backend.free(b);
    const mallocs = backend.memoryStats().deviceMallocs;
    bufs = sizes.map((s) => backend.alloc(s)); // same sizes again: all from the cache
    expect(backend.memoryStats().deviceMallocs).toBe(mallocs);
    for (const b of bufs) backend.free(b);
    expect(backend.memoryStats().inUse).toBe(base.inUse);
    backend.emptyCache();
    expect(backend.memoryStats().cachedBlocks).toBe(0);
  });

  it('round-trips 1 GiB host -> device -> host bit-exact', () => {
    const bytes = 2 ** 30;
    const src = randomFillSync(Buffer.allocUnsafe(bytes));
    const dst = Buffer.alloc(bytes, 0x5a); // poisoned
    const a = backend.alloc(bytes);
    const b = backend.alloc(bytes);
    try {
      backend.write(a, src);
      backend.copy(b, a, bytes); // device -> device too
      backend.read(b, dst);
      expect(dst.equals(src)).toBe(true);
    } finally {
      backend.free(a);
      backend.free(b);
    }
  }, 120_000);

  it('runs a kernel that writes every element', () => {
    const n = (1 << 22) + Math.floor(Math.random() * 1000);
    const s = seed();
    const buf = backend.alloc(n * 4 + 64);
    try {
      backend.memset(buf, 0xa5);
      const skip = 4; // elements before the offset must stay poisoned
      fillHash(buf, n, s, undefined, skip * 4);
      const host = new Uint32Array(n + skip);
      backend.read(buf, host);
      for (let i = 0; i < skip; i++) expect(host[i]).toBe(0xa5a5a5a5);
      let bad = 0;
      for (let i = 0; i < n; i++) if (host[skip + i] !== smokeHash(s, i)) bad++;
      expect(bad).toBe(0);
    } finally {
      backend.free(buf);
    }
  });

  it('holds tensors on cuda:0, and scopes free their device memory', () => {
    expect(registerCudaBackends()).toContain('cuda:0');
    const before = backend.memoryStats().inUse;
    const data = Float32Array.from({ length: 4097 }, () => Math.random() * 2 - 1);
    const kept = scope(() => {
      const t = Tensor.from(data, [17, 241], 'f32', { device: 'cuda:0' });
      const copy = t.to('cuda:0');
      expect(Array.from(copy.toHost() as Float32Array)).toEqual(Array.from(data));
      Tensor.empty([1024], 'bf16', { device: 'cuda:0' });
      return t.to('cpu');
    });
    expect(kept.device).toBe('cpu');
    expect(Array.from(kept.toHost() as Float32Array)).toEqual(Array.from(data));
    expect(backend.memoryStats().inUse).toBe(before);
    const t = Tensor.from(data, [4097], 'f32', { device: 'cuda:0' });
    t.dispose();
    expect(errorOf(() => t.toHost()).code).toBe('DISPOSED');
  });

  it('gives typed errors for bad device input and stays usable', () => {
    const a = backend.alloc(64);
    const b = backend.alloc(128);
    expect(errorOf(() => backend.copy(a, b, 128)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => backend.write(a, new Uint8Array(65))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => backend.read(a, new Uint8Array(8), 60)).code).toBe('SHAPE_MISMATCH');
    // Native code checks ranges too, when the TypeScript checks are bypassed.
    expect(errorOf(() => loadNative().copyHtoD(a.ptr, 60, new Uint8Array(8))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => loadNative().copyDtoD(a.ptr, 0, b.ptr, 0, 100, 0)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => backend.free({ device: 'cpu', bytes: 4 } as never)).code).toBe('DEVICE_MISMATCH');
    backend.free(a);
    expect(errorOf(() => backend.free(a)).code).toBe('DOUBLE_FREE');
    expect(errorOf(() => a.ptr).code).toBe('DISPOSED');
    expect(errorOf(() => backend.alloc(-1)).code).toBe('INVALID_ARGUMENT');
    const oom = errorOf(() => backend.alloc(2 ** 45)); // 32 TiB
    expect(oom.code).toBe('OUT_OF_MEMORY');
    expect(oom.details.cudaError).toBe('cudaErrorMemoryAllocation');
    // Still usable: a kernel runs and is right.
    const s = seed();
    fillHash(b, 32, s);
    const host = new Uint32Array(32);
    backend.read(b, host);
    expect(host[31]).toBe(smokeHash(s, 31));
    backend.free(b);
  });

  it('times work with events on a stream', () => {
    const stream = new Stream(0);
    const [start, end] = [new Event(0), new Event(0)];
    const n = 1 << 26;
    const buf = backend.alloc(n * 4);
    fillHash(buf, n, seed(), stream);
    start.record(stream);
    fillHash(buf, n, seed(), stream);
    end.record(stream);
    end.synchronize();
    expect(stream.query()).toBe(true);
    const ms = end.elapsedSince(start);
    expect(ms).toBeGreaterThan(0);
    expect((n * 4) / (ms * 1e6)).toBeLessThan(5000); // GB/s: nothing beats the HBM peak
    backend.free(buf);
    stream.dispose();
    start.dispose();
    end.dispose();
    expect(errorOf(() => stream.synchronize()).code).toBe('DISPOSED');
  });

  it('captures a CUDA graph once and replays it', () => {
    const stream = new Stream(0);
    const n = 100_003;
    const s = seed();
    const v = 1 + Math.floor(Math.random() * 1000);
    const buf = backend.alloc(n * 4);
    fillHash(buf, n, s, stream);
    const graph = Graph.capture(stream, () => addU32(buf, n, v, stream));
    expect(graph.nodes).toBeGreaterThanOrEqual(1);
    const replays = 3 + Math.floor(Math.random() * 5);
    for (let i = 0; i < replays; i++) graph.launch(stream);
    stream.synchronize();
    const host = new Uint32Array(n);
    backend.read(buf, host);
    let bad = 0;
    for (let i = 0; i < n; i++) if (host[i] !== ((smokeHash(s, i) + replays * v) >>> 0)) bad++;
    expect(bad).toBe(0);
    // A failure inside capture ends the capture and leaves the stream usable.
    expect(() => Graph.capture(stream, () => { throw new Error('inside capture'); })).toThrow('inside capture');
    fillHash(buf, n, s, stream);
    stream.synchronize();
    graph.dispose();
    backend.free(buf);
    stream.dispose();
  });

  it("turns a captured graph's memsets into kernel nodes that write the same bytes, in the same order", () => {
    const stream = new Stream(0);
    const native = loadNative();
    const n = 50_000 + Math.floor(Math.random() * 1000);
    const s = seed();
    const buf = backend.alloc(n * 4);
    // Memsets of random byte values over random ranges (odd offsets and lengths: the byte path;
    // 4-aligned: the word path), each followed by an add over the whole buffer, so a memset run out
    // of order or not at all shows.
    const sets = Array.from({ length: 6 }, (_, k) => {
      const aligned = k % 2 === 0;
      const offset = aligned ? 4 * Math.floor(Math.random() * (n / 2)) : 1 + Math.floor(Math.random() * (2 * n));
      const bytes = aligned ? 4 * (1 + Math.floor(Math.random() * 5000)) : 1 + Math.floor(Math.random() * 20_001);
      return { offset, bytes: Math.min(bytes, n * 4 - offset), value: Math.floor(Math.random() * 256), add: 1 + Math.floor(Math.random() * 1000) };
    });
    const record = () => sets.forEach((m) => (native.memsetAsync(buf.ptr, m.offset, m.value, m.bytes, stream.handle), addU32(buf, n, m.add, stream)));
    // What the same work gives unreplayed, on the host's model of it.
    const want = new Uint32Array(n);
    for (let i = 0; i < n; i++) want[i] = smokeHash(s, i);
    const bytes = new Uint8Array(want.buffer);
    for (const m of sets) {
      bytes.fill(m.value, m.offset, m.offset + m.bytes);
      for (let i = 0; i < n; i++) want[i] = (want[i]! + m.add) >>> 0;
    }
    for (const keep of [false, true]) {
      if (keep) process.env.DEEPWELL_GRAPH_MEMSET = 'keep';
      const graph = Graph.capture(stream, record);
      delete process.env.DEEPWELL_GRAPH_MEMSET;
      expect(graph.kinds.memset).toBe(keep ? sets.length : 0);
      expect(graph.kinds.memsetAsKernel).toBe(keep ? 0 : sets.length);
      expect(graph.kinds.kernel).toBe(sets.length + (keep ? 0 : sets.length));
      fillHash(buf, n, s, stream);
      graph.launch(stream);
      stream.synchronize();
      const got = new Uint32Array(n);
      backend.read(buf, got);
      let bad = 0;
      for (let i = 0; i < n; i++) if (got[i] !== want[i]) bad++;
      expect(bad, keep ? 'memset nodes kept' : 'memsets as kernel nodes').toBe(0);
      graph.dispose();
    }
    backend.free(buf);
    stream.dispose();
  });

  it('copies asynchronously through pinned memory, and refuses pageable memory', () => {
    const bytes = 8 * 2 ** 20 + 16 * Math.floor(Math.random() * 1000);
    const stream = new Stream(0);
    const up = new PinnedBuffer(bytes);
    const down = new PinnedBuffer(bytes);
    randomFillSync(new Uint8Array(up.buffer));
    new Uint8Array(down.buffer).fill(0x33);
    const dev = backend.alloc(bytes);
    up.copyTo(dev, stream);
    down.copyFrom(dev, stream);
    stream.synchronize();
    expect(Buffer.from(down.buffer).equals(Buffer.from(up.buffer))).toBe(true);
    expect(errorOf(() => loadNative().copyHtoDAsync(dev.ptr, 0, new Uint8Array(16), stream.handle)).message).toMatch(/pinned/);
    up.dispose();
    expect(errorOf(() => up.buffer).code).toBe('DISPOSED');
    down.dispose();
    backend.free(dev);
    stream.dispose();
  });

  it('keeps CudaBuffer pointers opaque but checked', () => {
    const b = backend.alloc(256);
    expect(b).toBeInstanceOf(CudaBuffer);
    expect(loadNative().lookup(b.ptr)).toEqual({ device: 0, bytes: 256, capacity: 512 });
    backend.free(b);
  });
});
