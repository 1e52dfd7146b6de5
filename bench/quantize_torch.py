# PyTorch beside bench/quantize.mjs (same run, same GPU): a device-to-device copy of the same
# 16384 x 16384 bf16 input, and MXFP8 (E4M3, blocks of 32, E8M0 scales, floor mode) rowwise and
# rowwise + columnwise quantization written in PyTorch ops, eager and torch.compile'd. Same method:
# 20 launches between two CUDA events after >= 300 ms of warm-up, 7 rounds, the median per launch.
import json, time
import torch

R = C = 16384
x = torch.randn(R, C, device="cuda", dtype=torch.bfloat16)


def mx_rowwise(t):
    b = t.float().reshape(-1, 32)
    amax = b.abs().amax(dim=1, keepdim=True)
    e = torch.where(amax > 0, torch.floor(torch.log2(amax)) - 8, torch.full_like(amax, -127)).clamp(-127, 127)
    q = (b * torch.exp2(-e)).clamp(-448, 448).to(torch.float8_e4m3fn)
    return q.reshape(t.shape), (e + 127).to(torch.uint8)


def mx_both(t):
    return mx_rowwise(t), mx_rowwise(t.t().contiguous())


def timed(fn):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
    per = []
    for _ in range(7):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(20):
            fn()
        e.record()
        e.synchronize()
        per.append(s.elapsed_time(e) / 20)
    return sorted(per)[len(per) // 2]


def report(name, ms, nbytes):
    print(json.dumps({"name": name, "ms": round(ms, 4), "gbps": round(nbytes / (ms * 1e6), 1)}))


n = R * C
y = torch.empty_like(x)
report("torch copy_, 512 MiB", timed(lambda: y.copy_(x)), 2 * x.nbytes)
row_bytes = x.nbytes + n + n // 32
report("torch eager mxfp8-e4m3 rowwise", timed(lambda: mx_rowwise(x)), row_bytes)
compiled = torch.compile(mx_rowwise)
compiled_both = torch.compile(mx_both)
report("torch.compile mxfp8-e4m3 rowwise", timed(lambda: compiled(x)), row_bytes)
report("torch.compile mxfp8-e4m3 both", timed(lambda: compiled_both(x)), x.nbytes + 2 * (n + n // 32))
