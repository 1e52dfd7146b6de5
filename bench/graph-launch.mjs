#!/usr/bin/env node
// The host time of cudaGraphLaunch for a captured straight-line graph, by its size and the kinds of
// node in it: N small kernels (fill of 1,024 floats), alone or with a memset node (64 bytes) or a
// device-to-device copy node (64 bytes) after every 4th kernel. The question it answers: does a
// replayed step's launch cost grow with its nodes, and do memset or copy nodes (cuBLASLt's, for
// instance) make it grow, and do they once turned into kernel nodes (the runtime's default)? Method: each graph launched 20 times to warm up, then 200 times, each
// launch timed alone on the host (performance.now() around the call; the stream synchronized after
// it, untimed), the median. The time of the next API call after a launch (a 4-byte async copy to
// pinned memory) is reported too: a launch may leave work to the next call.
//   node bench/graph-launch.mjs
import { Graph, PinnedBuffer, Stream, cudaBackend, cudaStatus, loadNative } from '@deepwell/kernels-native';

if (!cudaStatus().available) {
  console.log(`no GPU: ${cudaStatus().reason}`);
  process.exit(0);
}
const be = cudaBackend(0);
const native = loadNative();
const stream = new Stream(0);
const buf = be.alloc(1 << 20);
const pinned = new PinnedBuffer(4);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function build(n, extra) {
  return Graph.capture(stream, () => {
    for (let i = 0; i < n; i++) {
      native.fill(stream.handle, 0, 1024, i, { base: buf.ptr, offset: 0, bytes: 4096 });
      if (i % 4 !== 3) continue;
      if (extra === 'memset') native.memsetAsync(buf.ptr, 8192, 0, 64, stream.handle);
      if (extra === 'memcpy') native.copyDtoD(buf.ptr, 16384, buf.ptr, 0, 64, stream.handle);
    }
  });
}

const rows = [];
for (const n of [80, 400, 1000]) {
  for (const extra of ['none', 'memset', 'memset kept', 'memcpy']) {
    // 'memset kept': the memset nodes as captured (DEEPWELL_GRAPH_MEMSET=keep); 'memset': as the
    // runtime leaves them by default, turned into kernel nodes at capture (runtime/graph_memset.cu).
    if (extra === 'memset kept') process.env.DEEPWELL_GRAPH_MEMSET = 'keep';
    const g = build(n, extra.split(' ')[0]);
    delete process.env.DEEPWELL_GRAPH_MEMSET;
    const launch = [];
    const next = [];
    for (let r = 0; r < 220; r++) {
      const t0 = performance.now();
      g.launch(stream);
      const t1 = performance.now();
      native.copyDtoHAsync(new Uint8Array(pinned.buffer, 0, 4), buf.ptr, 0, stream.handle);
      const t2 = performance.now();
      stream.synchronize();
      if (r >= 20) (launch.push(t1 - t0), next.push(t2 - t1));
    }
    rows.push({ kernels: n, extra, nodes: g.nodes, kinds: g.kinds, launchUs: 1000 * median(launch), nextCallUs: 1000 * median(next) });
    g.dispose();
  }
}
console.log('| kernels | every 4th kernel followed by | graph nodes | launch µs (median) | next API call µs |\n| --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.kernels} | ${r.extra} | ${r.nodes} | ${r.launchUs.toFixed(1)} | ${r.nextCallUs.toFixed(1)} |`);
console.log(JSON.stringify({ date: new Date().toISOString(), rows }));
pinned.dispose();
be.free(buf);
stream.dispose();
