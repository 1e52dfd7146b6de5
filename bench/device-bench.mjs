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

/** `warmups` launches, then the median ms of `reps` launches each between its own pair of events on `stream`. */
export function timeMedian(stream, launch, { warmups, reps }) {
  for (let i = 0; i < warmups; i++) launch();
  const out = [];
  for (let i = 0; i < reps; i++) {
    const [s, e] = [new Event(0), new Event(0)];
    s.record(stream);
    launch();
    e.record(stream);
    e.synchronize();
    out.push(e.elapsedSince(s));
    s.dispose();
    e.dispose();
  }
  return median(out);
}
