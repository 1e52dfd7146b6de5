# PyTorch reference timings for fused attention, printed beside the kernel lab's (dev/cuda/attention/)
# in the same run by scripts/attention-check.sh, and merged with them by bench/attention_table.py.
#
#   python3 bench/attention_torch.py [out.json]      (default bench/attention_torch.json)
#
# Per case (bf16, q/k/v [B, H, S, D] contiguous, torch.randn) and backend:
#   default  the plain F.scaled_dot_product_attention call; which backend it picked is recorded
#            (judged from the kernel names the profiler saw; torch._fused_sdp_choice beside it)
#   cudnn    inside sdpa_kernel(SDPBackend.CUDNN_ATTENTION)
#   fa2      inside sdpa_kernel(SDPBackend.FLASH_ATTENTION)
# fwd: a training forward (inputs require grad, so the log-sum-exp is kept, as our kernels write it),
#      CUDA events around each call, 10 warm-up, median of 30.
# bwd: only out.backward(grad, retain_graph=True) on one prepared forward, the inputs' .grad cleared
#      (outside the events) before each so no accumulation kernel is timed; 10 warm-up, median of 30.
# TFLOP/s as FlashAttention counts: fwd 4*B*H*pairs*D (pairs S*S, causal S*(S+1)/2), bwd 2.5x.
# A backend that rejects a case prints the reason; for GQA a rejected enable_gqa=True is retried with
# k/v expanded by repeat_interleave outside the timed region (the row says so).
# The seed case (B1 H8 S512 D64 causal) also gets, for cudnn and fa2: the forward under CUDA-graph
# replay (20 calls captured in one graph, 50 timed replays, median per call in us), and the
# kernel-only time from torch.profiler (sum of device time of one call, median over 30 calls).
import datetime, json, math, os, statistics, subprocess, sys, time, traceback, warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

WARM, ITERS = 10, 30
GRAPH_CALLS, GRAPH_REPLAYS = 20, 50
PROF_CALLS = 30
DT = torch.bfloat16

# (B, H, Hkv, S, D, causal)
CASES = [
    (16, 12, 12, 1024, 64, True),
    (4, 16, 16, 4096, 128, True),
    (4, 16, 16, 4096, 128, False),
    (8, 16, 16, 2048, 64, True),
    (1, 32, 32, 16384, 128, True),
    (2, 32, 8, 8192, 128, True),
    (1, 8, 8, 512, 64, True),  # the seed config
]
SEED = (1, 8, 8, 512, 64, True)


def case_name(B, H, Hkv, S, D, causal):
    heads = f"H{H}" if Hkv == H else f"H{H}_Hkv{Hkv}"
    return f"B{B}_{heads}_S{S}_D{D}_{'causal' if causal else 'noncausal'}"


def fwd_flops(B, H, S, D, causal):
    pairs = S * (S + 1) / 2 if causal else S * S
    return 4.0 * B * H * pairs * D


BACKENDS = {
    "default": None,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "fa2": SDPBackend.FLASH_ATTENTION,
}


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def ctx(backend):
    b = BACKENDS[backend]
    return _Null() if b is None else sdpa_kernel(b)


def backend_names():
    try:
        return {int(v): k.lower() for k, v in SDPBackend.__members__.items()}
    except Exception:
        return {}


def chosen_backend(q, k, v, causal, gqa):
    """What the dispatcher picks under the current sdpa_kernel setting (private API; best effort)."""
    try:
        try:
            c = torch._fused_sdp_choice(q, k, v, None, 0.0, causal, None, gqa)
        except TypeError:
            c = torch._fused_sdp_choice(q, k, v, None, 0.0, causal)
        return backend_names().get(int(c), str(int(c)))
    except Exception as e:
        return f"unknown ({type(e).__name__})"


def backend_from_kernels(names):
    s = " ".join(names).lower()
    if "cudnn" in s:
        return "cudnn_attention"
    if "flash_fwd" in s or "pytorch_flash" in s or "flash_attn" in s:
        return "flash_attention"
    if "fmha_cutlass" in s or "efficient" in s or "mem_eff" in s:
        return "efficient_attention"
    return None


def event_ms(fn, warm=WARM, iters=ITERS, before=None):
    for _ in range(warm):
        if before:
            before()
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(iters):
        if before:
            before()
        s.record()
        fn()
        e.record()
        e.synchronize()
        ms.append(s.elapsed_time(e))
    return statistics.median(ms)


def short_reason(e, caught):
    msgs = [str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()]
    msg = "; ".join(dict.fromkeys(msgs))  # the dispatcher's per-backend reasons come as warnings
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    r = f"{type(e).__name__}: {first}" + (f" | {msg}" if msg else "")
    return r[:600]


def try_call(fn):
    """(result, None) or (None, reason)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = fn()
            torch.cuda.synchronize()
            return r, None
        except Exception as e:  # noqa: BLE001 - any rejection is reported, not fatal
            torch.cuda.synchronize()
            return None, short_reason(e, caught)


def device_events(prof):
    from torch.autograd import DeviceType

    out = []
    for ev in prof.events():
        if getattr(ev, "device_type", None) == DeviceType.CUDA:
            out.append((ev.time_range.start, ev.time_range.end, ev.name))
    out.sort()
    return out


def profile_kernels(fn, calls):
    """Calls fn `calls` times under torch.profiler, a sync and a 2 ms pause between calls; groups the
    device events by those gaps. Returns (median us per call, kernel names of one call, groups)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
            torch.cuda.synchronize()
            time.sleep(0.002)
    evs = device_events(prof)
    groups, cur, last_end = [], [], None
    for st, en, name in evs:
        if last_end is not None and st - last_end > 1000:
            groups.append(cur)
            cur = []
        cur.append((st, en, name))
        last_end = en if last_end is None else max(last_end, en)
    if cur:
        groups.append(cur)
    sums = [sum(en - st for st, en, _ in g) for g in groups]
    names = [n for _, _, n in groups[len(groups) // 2]] if groups else []
    return (statistics.median(sums) if sums else float("nan")), names, len(groups)


def short_kernel(n):
    n = n.split("(")[0]
    return n if len(n) <= 90 else n[:87] + "..."


def run_case(case, rows, seed_rows):
    B, H, Hkv, S, D, causal = case
    name = case_name(*case)
    gqa = Hkv != H
    flops = fwd_flops(B, H, S, D, causal)
    torch.manual_seed(0)
    q0 = torch.randn(B, H, S, D, device="cuda", dtype=DT)
    k0 = torch.randn(B, Hkv, S, D, device="cuda", dtype=DT)
    v0 = torch.randn(B, Hkv, S, D, device="cuda", dtype=DT)
    for backend in BACKENDS:
        base = {"case": name, "B": B, "H": H, "Hkv": Hkv, "S": S, "Sq": S, "Sk": S, "D": D, "causal": causal, "backend": backend}
        notes = []
        q = q0.detach().clone().requires_grad_()
        k = k0.detach().clone().requires_grad_()
        v = v0.detach().clone().requires_grad_()
        kw = {"is_causal": causal}
        if gqa:
            kw["enable_gqa"] = True

        def fwd():
            with ctx(backend):
                return F.scaled_dot_product_attention(q, k, v, **kw)

        out, why = try_call(fwd)
        if out is None and gqa:
            notes.append(f"enable_gqa rejected ({why}); k/v expanded with repeat_interleave outside the timed region")
            rep = H // Hkv
            k = k0.repeat_interleave(rep, dim=1).detach().requires_grad_()
            v = v0.repeat_interleave(rep, dim=1).detach().requires_grad_()
            kw.pop("enable_gqa")
            out, why = try_call(fwd)
        if out is None:
            for p in ("fwd", "bwd"):
                rows.append({**base, "pass": p, "ms": None, "tflops": None, "error": why, "note": "; ".join(notes)})
                print(f"torch backend={backend} case={name} pass={p} SKIP reason={json.dumps(why)}", flush=True)
            continue
        with ctx(backend):
            base["sdp_choice"] = chosen_backend(q, k, v, causal, "enable_gqa" in kw)
        base["ran"] = base["sdp_choice"]
        if backend == "default":
            # Which kernels the plain call launched (one forward, one backward).
            try:
                g1 = torch.randn_like(out)
                _, fnames, _ = profile_kernels(fwd, 1)
                o1 = fwd()
                _, bnames, _ = profile_kernels(lambda: torch.autograd.grad(o1, (q, k, v), g1, retain_graph=True), 1)
                base["kernels_fwd"] = [short_kernel(n) for n in fnames]
                base["kernels_bwd"] = [short_kernel(n) for n in bnames]
                # The kernels are the evidence; torch._fused_sdp_choice has said "math" for a GQA
                # call that ran cuDNN.
                base["ran"] = backend_from_kernels(fnames) or base["sdp_choice"]
            except Exception as e:  # noqa: BLE001
                notes.append(f"profiler failed: {type(e).__name__}: {e}"[:200])
        note = "; ".join(notes)

        # Forward.
        ms, err = None, None
        try:
            ms = event_ms(fwd)
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"[:400]
        rows.append({**base, "pass": "fwd", "ms": ms, "tflops": flops / (ms * 1e9) if ms else None, "error": err, "note": note})
        emit(rows[-1])

        # Backward only, on one prepared forward.
        ms, err = None, None
        try:
            out = fwd()
            grad = torch.randn_like(out)

            def clear():
                q.grad = k.grad = v.grad = None

            ms = event_ms(lambda: out.backward(grad, retain_graph=True), before=clear)
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"[:400]
        rows.append({**base, "pass": "bwd", "ms": ms, "tflops": 2.5 * flops / (ms * 1e9) if ms else None, "error": err, "note": note})
        emit(rows[-1])
        del out
        q.grad = k.grad = v.grad = None

        if case == SEED and backend in ("cudnn", "fa2"):
            seed_rows.extend(seed_extras(backend, name, fwd, flops, note))
    del q0, k0, v0
    torch.cuda.empty_cache()


def emit(r):
    if r["ms"] is None:
        print(f"torch backend={r['backend']} case={r['case']} pass={r['pass']} FAIL reason={json.dumps(r['error'])}", flush=True)
        return
    extra = f" ran={r['ran']}" if r.get("ran") and r["backend"] == "default" else ""
    if r.get("note"):
        extra += f" note={json.dumps(r['note'])}"
    print(f"torch backend={r['backend']} case={r['case']} pass={r['pass']} ms={r['ms']:.4f} tflops={r['tflops']:.1f}{extra}", flush=True)


def graph_us(fwd):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fwd()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    keep = []
    with torch.cuda.graph(g):
        for _ in range(GRAPH_CALLS):
            keep.append(fwd())
    for _ in range(WARM):
        g.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(GRAPH_REPLAYS):
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
    del g, keep
    return statistics.median(ms) / GRAPH_CALLS * 1000


def seed_extras(backend, name, fwd, flops, note):
    res = []
    # CUDA-graph replay: GRAPH_CALLS forwards in one graph; the sdpa_kernel setting is read at call
    # time, so fwd() carries it into the capture. A training forward first; if capture rejects it,
    # an inference forward (torch.no_grad), and the row says so.
    errs = []
    for mode in ("training", "inference"):
        try:
            with (torch.no_grad() if mode == "inference" else _Null()):
                us = graph_us(fwd)
            res.append({"case": name, "backend": backend, "pass": "fwd", "method": f"cuda-graph replay ({mode} forward): {GRAPH_CALLS} calls per graph, median of {GRAPH_REPLAYS} replays, per call",
                        "us": us, "tflops": flops / (us * 1e6), "error": None, "note": "; ".join(x for x in [note] + errs if x)})
            break
        except Exception as e:  # noqa: BLE001
            torch.cuda.synchronize()
            errs.append(f"{mode} capture failed: {type(e).__name__}: {e}"[:300])
    else:
        res.append({"case": name, "backend": backend, "pass": "fwd", "method": "cuda-graph replay", "us": None, "error": " | ".join(errs)})
    # Kernel-only time from the profiler.
    try:
        for _ in range(WARM):
            fwd()
        us, names, n = profile_kernels(fwd, PROF_CALLS)
        res.append({"case": name, "backend": backend, "pass": "fwd", "method": f"torch.profiler: device time summed per call, median of {n} calls",
                    "us": us, "tflops": flops / (us * 1e6) if us == us and us > 0 else None, "kernels": [short_kernel(x) for x in names], "error": None, "note": note})
    except Exception as e:  # noqa: BLE001
        res.append({"case": name, "backend": backend, "pass": "fwd", "method": "torch.profiler", "us": None, "error": f"{type(e).__name__}: {e}"[:400]})
    for r in res:
        tag = "graph" if r["method"].startswith("cuda-graph") else "profiler"
        if r["us"] is None:
            print(f"torch backend={backend} case={name} pass=fwd timing={tag} FAIL reason={json.dumps(r['error'])}", flush=True)
        else:
            k = f" kernels={','.join(r['kernels'])}" if r.get("kernels") else ""
            print(f"torch backend={backend} case={name} pass=fwd timing={tag} us={r['us']:.2f} tflops={r['tflops']:.1f}{k}", flush=True)
    return res


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention_torch.json")
    if not torch.cuda.is_available():
        print("torch: no CUDA device", flush=True)
        sys.exit(1)
    gpu = torch.cuda.get_device_name(0)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm", "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        smi = f"nvidia-smi failed: {e}"
    flash_impl = None
    try:
        flash_impl = torch.nn.attention.current_flash_attention_impl()
    except Exception:  # noqa: BLE001
        pass
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": gpu,
        "nvidia_smi": smi,
        "capability": list(torch.cuda.get_device_capability(0)),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "flash_attention_impl": flash_impl,
        "method": (
            "bf16 q/k/v [B,H,S,D] contiguous torch.randn; F.scaled_dot_product_attention with is_causal (enable_gqa=True for Hkv<H); "
            f"backends: default (plain call; 'ran' = judged from the profiled kernel names, else torch._fused_sdp_choice), cudnn = sdpa_kernel(CUDNN_ATTENTION), fa2 = sdpa_kernel(FLASH_ATTENTION); "
            f"fwd = training forward (inputs require grad), CUDA events around each call, {WARM} warm-up, median of {ITERS}; "
            f"bwd = out.backward(grad, retain_graph=True) only, on one prepared forward, .grad cleared before each, {WARM} warm-up, median of {ITERS}; "
            "TFLOP/s: fwd 4*B*H*pairs*D (pairs S*S, causal S*(S+1)/2), bwd 2.5*fwd; "
            f"seed extras: CUDA graph of {GRAPH_CALLS} forwards, median of {GRAPH_REPLAYS} replays / {GRAPH_CALLS}; profiler device time per call, median of {PROF_CALLS}"
        ),
    }
    print(f"torch gpu={json.dumps(gpu)} nvidia-smi={json.dumps(smi)} torch={torch.__version__} cuda={torch.version.cuda} cudnn={meta['cudnn']} flash_impl={flash_impl}", flush=True)
    rows, seed_rows = [], []
    for case in CASES:
        try:
            run_case(case, rows, seed_rows)
        except Exception as e:  # noqa: BLE001 - one case failing (e.g. out of memory) does not end the run
            traceback.print_exc()
            print(f"torch case={case_name(*case)} FAIL reason={json.dumps(f'{type(e).__name__}: {e}'[:400])}", flush=True)
            rows.append({"case": case_name(*case), "backend": "all", "pass": "all", "ms": None, "tflops": None, "error": f"{type(e).__name__}: {e}"[:400]})
            torch.cuda.empty_cache()
    meta["rows"] = rows
    meta["seed"] = seed_rows
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(meta, f, indent=1)
    print(f"torch wrote {out_path}", flush=True)


if __name__ == "__main__":
    main()
