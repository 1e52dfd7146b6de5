// Device pieces the memory-bound benchmarks share (membound.mjs, layernorm.mjs): filling a large
// buffer from a random block, and the median time of a launch by CUDA events.
import { Event } from '@deepwell/kernels-native';
import { median } from './bench-stats.mjs';

/** Fills `totalBytes` of `buf` with `block` repeated (doubling device copies: cheap for GBs). */
export function fillRepeated(be, buf, block, totalBytes) {
  const first = Math.min(totalBytes, block.byteLength);
  be.write(buf, new Uint8Array(block.buffer, block.byteOffset, first));
  for (let done = first; done < totalBytes; ) {
    const n = Math.min(done, totalBytes - done);
    be.copy(buf, buf, n, done, 0);
    done += n;
  }
}

/**
 * `warmups` launches, then the median ms a launch takes over `reps` timings, each of `batch`
 * launches back to back between a pair of events on `stream` (divided by `batch`). With batch 1 an
 * idle GPU's time includes the host's launch work (it runs the start event, then waits for the
 * kernel): tens of µs beside a short kernel. Back to back, the launches queue behind each other.
 */
export function timeMedian(stream, launch, { warmups, reps, batch = 1 }) {
  for (let i = 0; i < warmups; i++) launch();
  const out = [];
  for (let i = 0; i < reps; i++) {
    const [s, e] = [new Event(0), new Event(0)];
    s.record(stream);
    for (let k = 0; k < batch; k++) launch();
    e.record(stream);
    e.synchronize();
    out.push(e.elapsedSince(s) / batch);
    s.dispose();
    e.dispose();
  }
  return median(out);
}
