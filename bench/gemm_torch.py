# torch.matmul at the shapes of bench/gemm.mjs, measured the same way: random bf16 inputs, 5 warm-up
# calls, 20 calls each timed by its own pair of CUDA events, the median.
import json, os, torch

SHAPES = json.load(open(os.path.join(os.path.dirname(__file__), "gemm-shapes.json")))["shapes"]

for name, M, N, K, ta, tb in SHAPES:
    # Stored as the Deepwell side stores them; the transposes are views, as in a model.
    a = torch.randn(*((K, M) if ta else (M, K)), device="cuda", dtype=torch.bfloat16)
    b = torch.randn(*((N, K) if tb else (K, N)), device="cuda", dtype=torch.bfloat16)
    A = a.t() if ta else a
    B = b.t() if tb else b
    for _ in range(5):
        torch.matmul(A, B)
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        torch.matmul(A, B)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    ms = sorted(times)[len(times) // 2]
    print(json.dumps({"impl": "torch", "name": name, "M": M, "N": N, "K": K, "ms": ms, "tflops": 2 * M * N * K / (ms * 1e9)}), flush=True)
    del a, b, A, B
    torch.cuda.empty_cache()
