# PyTorch's default scaled_dot_product_attention on the shapes of bench/sparsek.mjs, in the same run
# (scripts/sparsek-check.sh): bf16, q [1, 32, S, 128], k and v [1, 8, S, 128] (enable_gqa=True),
# causal, torch.rand in [-1, 1]. fwd: a training forward (inputs require grad); bwd:
# out.backward(grad, retain_graph=True) on one prepared forward, .grad cleared outside the events.
# CUDA events around each call, WARMUP warm-ups, median of REPS. Which backend PyTorch picked is
# recorded from the profiler's kernel names.
#
#   python3 bench/sparsek_torch.py out.json [S ...]
import datetime, json, statistics, sys

import torch
import torch.nn.functional as F

WARMUP, REPS = 2, 7
B, H, HKV, D = 1, 32, 8, 128


def timed(fn):
    for _ in range(WARMUP):
        fn()
    out = []
    for _ in range(REPS):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        out.append(s.elapsed_time(e))
    return statistics.median(out)


def backend_of(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    for key, label in (("cudnn", "cudnn"), ("flash", "flash"), ("fmha", "efficient"), ("efficient", "efficient")):
        if any(key in n.lower() for n in names):
            return label
    return "math?"


def main():
    path = sys.argv[1]
    sizes = [int(s) for s in sys.argv[2:]] or [8192, 32768, 65536]
    rows = []
    for S in sizes:
        q = (torch.rand(B, H, S, D, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
        k = (torch.rand(B, HKV, S, D, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
        v = (torch.rand(B, HKV, S, D, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
        g = torch.rand(B, H, S, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
        fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        t_f = timed(fwd)
        out = fwd()

        def bwd():
            q.grad = k.grad = v.grad = None
            out.backward(g, retain_graph=True)

        t_b = timed(bwd)
        rows.append({"S": S, "fwd_ms": t_f, "bwd_ms": t_b, "backend": backend_of(fwd)})
        print(f"torch default SDPA S={S}: fwd {t_f:.2f} ms, bwd {t_b:.2f} ms ({rows[-1]['backend']})", flush=True)
        del q, k, v, g, out
        torch.cuda.empty_cache()
    doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "method": f"CUDA events per call, {WARMUP} warm-ups, median of {REPS}", "rows": rows}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
