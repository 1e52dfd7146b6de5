// The GEMM benchmarks' method on the Deepwell side, shared by bench/gemm.mjs (bf16) and
// bench/scaled_gemm.mjs (FP8): inputs tiled from a 64 MiB random host block (not zero-filled);
// operand sets cycled so at least 256 MiB is touched (inputs are not served from the 60 MiB L2 on
// the next launch); at least 300 ms of warm-up launches per case; then 9 samples, each a batch of
// back-to-back launches (about 25 ms) between one pair of CUDA events; the median time per launch.
// bench/gemm_method.py is the same method for the PyTorch side.
import { Event } from '@deepwell/kernels-native';
import { median } from './bench-stats.mjs';

export const L2_ROTATE_BYTES = 256 << 20; // operand sets cycled through so inputs do not stay in the 60 MiB L2
export const RANDOM_BLOCK_BYTES = 64 << 20; // the random host block tiled through every input buffer

/** A buffer as the typed entry points take a tensor: { base, offset, bytes }. */
export const tensorArg = (buf) => ({ base: buf.ptr, offset: 0, bytes: buf.bytes });

/** How many operand sets of `setBytes` each to cycle through (1 to 8) so >= 256 MiB is touched. */
export const operandSets = (setBytes) => Math.max(1, Math.min(8, Math.ceil(L2_ROTATE_BYTES / setBytes)));

/**
 * A device buffer of `bytes` filled with `block` (a typed array of random values) repeated: the
 * block is written once, then the filled part is doubled by device copies until the buffer is full.
 */
export function tiledBuffer(be, block, bytes) {
  const buf = be.alloc(bytes);
  const first = Math.min(block.byteLength, bytes);
  be.write(buf, new Uint8Array(block.buffer, block.byteOffset, first));
  for (let done = first; done < bytes; ) {
    const k = Math.min(done, bytes - done);
    be.copy(buf, buf, k, done, 0);
    done += k;
  }
  return buf;
}

/** Milliseconds between a pair of CUDA events recorded on `stream` around `launches()`. */
export function timed(stream, launches) {
  const [s, e] = [new Event(0), new Event(0)];
  s.record(stream);
  launches();
  e.record(stream);
  e.synchronize();
  const ms = e.elapsedSince(s);
  s.dispose();
  e.dispose();
  return ms;
}

/**
 * The method on one case: `launch()` enqueues one launch on `stream` (cycling its own operand
 * sets); `sets` is how many it cycles. Returns the median milliseconds per launch of 9 samples
 * and the launches per sample.
 */
export function measure(stream, launch, sets) {
  // Warm-up: at least 300 ms of this GEMM (clocks settle, the plan is cached). The batch is first
  // sized from one launch, but a case's first launch also builds its plan (host time between the
  // events: in GEMM run 5, 8192³'s first launch timed > 25 ms, so its samples were one launch of
  // 1.6 ms each), so it is sized again from the last warm-up batch.
  let per = Math.max(sets, Math.ceil(25 / Math.max(timed(stream, () => launch()), 1e-3)));
  const batch = () => {
    for (let i = 0; i < per; i++) launch();
  };
  let last = 0;
  for (let t = 0; t < 300; ) {
    const ms = timed(stream, batch);
    t += ms;
    last = ms / per;
  }
  per = Math.max(sets, Math.ceil(25 / Math.max(last, 1e-3)));
  // 9 samples, each a batch of back-to-back launches (>= ~25 ms) between one pair of events.
  const samples = [];
  for (let r = 0; r < 9; r++) samples.push(timed(stream, batch) / per);
  return { ms: median(samples), per };
}
