# torch.matmul at the shapes of bench/gemm.mjs, measured the same way: random bf16 inputs, operand
# sets cycled so at least 256 MiB is touched, at least 300 ms of warm-up per shape, then 9 samples of
# back-to-back calls (about 25 ms each) between one pair of CUDA events; the median per call. The
# method's code is bench/gemm_method.py, shared with bench/scaled_gemm_torch.py.
import json, os, torch

from gemm_method import measure, operand_sets

SHAPES = json.load(open(os.path.join(os.path.dirname(__file__), "gemm-shapes.json")))["shapes"]
ROUND = int(os.environ.get("GEMM_ROUND", "1"))


for name, M, N, K, ta, tb in SHAPES:
    sets = operand_sets(2 * (M * K + K * N + M * N))
    ops = []
    for _ in range(sets):
        # Stored as the Deepwell side stores them; the transposes are views, as in a model.
        a = torch.randn(*((K, M) if ta else (M, K)), device="cuda", dtype=torch.bfloat16)
        b = torch.randn(*((N, K) if tb else (K, N)), device="cuda", dtype=torch.bfloat16)
        d = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        ops.append((a.t() if ta else a, b.t() if tb else b, d))
    state = {"i": 0}

    def launch():
        A, B, D = ops[state["i"] % sets]
        state["i"] += 1
        torch.matmul(A, B, out=D)

    ms, per = measure(launch, sets)
    print(json.dumps({"impl": "torch", "round": ROUND, "name": name, "M": M, "N": N, "K": K, "ms": ms, "tflops": 2 * M * N * K / (ms * 1e9), "launchesPerSample": per, "operandSets": sets}), flush=True)
    del ops
    torch.cuda.empty_cache()
