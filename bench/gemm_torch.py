# torch.matmul at the shapes of bench/gemm.mjs, measured the same way: random bf16 inputs, 5 warm-up
# calls, 20 calls each timed by its own pair of CUDA events, the median.
import json, torch

SHAPES = [
    ("8192^3", 8192, 8192, 8192, False, False),
    ("fc: x·Wᵀ 16384×3072×768", 16384, 3072, 768, False, True),
    ("fc dX: g·W 16384×768×3072", 16384, 768, 3072, False, False),
    ("fc dW: gᵀ·x 3072×768×16384", 3072, 768, 16384, True, False),
    ("proj: x·Wᵀ 16384×768×3072", 16384, 768, 3072, False, True),
    ("proj dX: g·W 16384×3072×768", 16384, 3072, 768, False, False),
    ("proj dW: gᵀ·x 768×3072×16384", 768, 3072, 16384, True, False),
    ("qkv: x·Wᵀ 16384×2304×768", 16384, 2304, 768, False, True),
    ("qkv dX: g·W 16384×768×2304", 16384, 768, 2304, False, False),
    ("qkv dW: gᵀ·x 2304×768×16384", 2304, 768, 16384, True, False),
    ("lm_head: x·Wᵀ 16384×50304×768", 16384, 50304, 768, False, True),
    ("lm_head dX: g·W 16384×768×50304", 16384, 768, 50304, False, False),
    ("lm_head dW: gᵀ·x 50304×768×16384", 50304, 768, 16384, True, False),
]

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
