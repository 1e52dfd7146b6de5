# The GEMM benchmarks' method on the PyTorch side, shared by bench/gemm_torch.py (bf16) and
# bench/scaled_gemm_torch.py (FP8); bench/gemm-method.mjs is the same method on the Deepwell side:
# operand sets cycled so at least 256 MiB is touched (inputs are not served from the 60 MiB L2 on
# the next call); at least 300 ms of warm-up calls per case; then 9 samples, each a batch of
# back-to-back calls (about 25 ms) between one pair of CUDA events; the median time per call.
import math

import torch

L2_ROTATE_BYTES = 256 << 20


def operand_sets(set_bytes):
    """How many operand sets of set_bytes each to cycle through (1 to 8) so >= 256 MiB is touched."""
    return max(1, min(8, math.ceil(L2_ROTATE_BYTES / set_bytes)))


def timed(fn):
    """Milliseconds between a pair of CUDA events recorded around fn() on the current stream."""
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    e.synchronize()
    return s.elapsed_time(e)


def measure(launch, sets):
    """The method on one case: launch() makes one call (cycling its own operand sets). Returns the
    median milliseconds per call of 9 samples and the calls per sample."""
    # Warm-up: at least 300 ms. The batch is first sized from one call, but a case's first call also
    # picks its algorithm (host time between the events), so it is sized again from the last
    # warm-up batch.
    per = max(sets, math.ceil(25 / max(timed(launch), 1e-3)))

    def batch():
        for _ in range(per):
            launch()

    warm, last = 0.0, 0.0
    while warm < 300:
        ms = timed(batch)
        warm += ms
        last = ms / per
    per = max(sets, math.ceil(25 / max(last, 1e-3)))
    samples = sorted(timed(batch) / per for _ in range(9))
    return samples[len(samples) // 2], per
