# torch._grouped_mm at the cases of bench/grouped-gemm-cases.json, bf16, measured as
# bench/grouped_gemm.mjs measures Deepwell's grouped GEMM (bench/gemm_method.py: operand sets cycled
# so at least 256 MiB is touched, at least 300 ms of warm-up, 9 samples of back-to-back calls of
# about 25 ms between one pair of CUDA events, the median per call). The group sizes follow the
# cases file's rule (the same function as the .mjs side). 'fwd': torch._grouped_mm(x [R, K],
# w [E, K, N], offs) with offs the int32 end offsets of the groups; 'wgrad':
# torch._grouped_mm(x.t() [K, R], g [R, N], offs) -> [E, K, N]; 'fp8': torch._scaled_grouped_mm (e4m3,
# rowwise scales: not the blockwise scaling Deepwell's side runs, the same FP8 work); 'gelu':
# torch._grouped_mm then torch.nn.functional.gelu(approximate='tanh'). A case torch refuses prints
# its error.
import json, os, torch

from gemm_method import measure, operand_sets

CASES = json.load(open(os.path.join(os.path.dirname(__file__), "grouped-gemm-cases.json")))["cases"]
WANTED = [c for c in os.environ.get("GROUPED_GEMM_CASES", "").split(",") if c]
ROUND = int(os.environ.get("GROUPED_GEMM_ROUND", "1"))


def group_sizes(E, R, routing):
    w = [1.0 / (e + 1) if routing == "skewed" else 1.0 for e in range(E)]
    total = sum(w)
    sizes = [int((R * x) // total) for x in w]
    left, e = R - sum(sizes), 0
    while left > 0:
        sizes[e] += 1
        e, left = (e + 1) % E, left - 1
    return sizes


print(json.dumps({"impl": "torch", "round": ROUND, "info": {"torch": torch.__version__, "cuda": torch.version.cuda}}), flush=True)
for name, E, R, K, N, routing, pass_ in CASES:
    if WANTED and name not in WANTED:
        continue
    if pass_ in ("fp8-gelu", "fp8-dgelu", "fp8-swiglu"):  # no torch call fuses the activation and the quantize into a grouped GEMM
        print(json.dumps({"impl": "torch", "round": ROUND, "name": name, "skipped": "no torch grouped GEMM with a fused activation and FP8 quantize; compare with the fp8 case"}), flush=True)
        continue
    if pass_ == "fp8-wgrad":  # no torch call computes a k-grouped FP8 weight gradient; the bf16 'wgrad' case is the comparison
        print(json.dumps({"impl": "torch", "round": ROUND, "name": name, "skipped": "no torch k-grouped FP8 weight gradient; compare with the bf16 wgrad case"}), flush=True)
        continue
    try:
        sizes = group_sizes(E, R, routing)
        offs = torch.tensor(sizes, device="cuda", dtype=torch.int32).cumsum(0, dtype=torch.int32)
        elems = (R * K, R * N, E * K * N)
        sets = operand_sets(2 * sum(elems))
        ops = []
        for _ in range(sets):
            x = torch.rand(R, K, device="cuda", dtype=torch.bfloat16) * 2 - 1
            if pass_ == "wgrad":
                g = torch.rand(R, N, device="cuda", dtype=torch.bfloat16) * 2 - 1
                ops.append((x.t(), g))
            elif pass_ == "fp8":
                # torch._scaled_grouped_mm: e4m3 x [R, K] with a scale per row, w as [E, K, N] column-major
                # (the transpose of [E, N, K]) with a scale per (expert, column).
                xq = x.to(torch.float8_e4m3fn)
                wq = (torch.rand(E, N, K, device="cuda", dtype=torch.bfloat16) * 2 - 1).to(torch.float8_e4m3fn).transpose(-2, -1)
                sa = torch.rand(R, device="cuda", dtype=torch.float32) + 0.5
                sb = torch.rand(E, N, device="cuda", dtype=torch.float32) + 0.5
                ops.append((xq, wq, sa, sb))
            else:
                w = torch.rand(E, K, N, device="cuda", dtype=torch.bfloat16) * 2 - 1
                ops.append((x, w))
        state = {"i": 0}

        def launch():
            op = ops[state["i"] % sets]
            state["i"] += 1
            if pass_ == "fp8":
                torch._scaled_grouped_mm(op[0], op[1], op[2], op[3], offs=offs, out_dtype=torch.bfloat16)
            elif pass_ == "gelu":
                torch.nn.functional.gelu(torch._grouped_mm(op[0], op[1], offs=offs), approximate="tanh")
            else:
                torch._grouped_mm(op[0], op[1], offs=offs)

        ms, per = measure(launch, sets)
        print(json.dumps({"impl": "torch", "round": ROUND, "name": name, "E": E, "R": R, "K": K, "N": N, "routing": routing, "pass": pass_, "ms": ms, "tflops": 2 * R * K * N / (ms * 1e9), "launchesPerSample": per, "operandSets": sets, "sizes": [min(sizes), max(sizes)]}), flush=True)
        del ops
        torch.cuda.empty_cache()
    except Exception as e:  # a case torch refuses: say so and go on
        print(json.dumps({"impl": "torch", "round": ROUND, "name": name, "error": str(e).splitlines()[0]}), flush=True)
