# The PyTorch reference for bench.mjs: the same GPT-2 124M written against Deepwell's parameter
# names, started from Deepwell's initial weights (init.safetensors), trained on the same shard in the
# same order with the same schedule, AdamW (fused), clipping and bf16 autocast; attention through
# scaled_dot_product_attention. Mode 'eager', 'compile' (torch.compile) or 'compile-fp8': torch.compile
# with the linear layers the Deepwell run quantized (<out>/plan.json: every 'linear' layer whose
# recipe is not bf16; every block linear when there is no plan) as FP8 linears on torch._scaled_mm
# with dynamic tensorwise scaling, as torchao's float8 training does: x and W in E4M3, the output
# gradient in E5M2 (the fp8-tensorwise recipe's backward format), one scale per tensor from its
# amax each step, FP32 accumulation (the forward GEMM without periodic promotion, use_fast_accum, as
# torchao's default and Deepwell's forward GEMM do), bf16 out. The model's size comes from config.json (bench.mjs's
# GPT_CONFIG; GPT-2 124M by default). Logs one JSON line per step (loss, ms by CUDA events around
# the step) and a summary line.
#   python3 bench_torch.py <out dir> <eager|compile|compile-fp8>
# Needs an NVIDIA GPU and torch (a CUDA build), numpy and safetensors; says which is missing and stops.
import importlib.util, json, math, os, sys, time

USAGE = "Usage: python3 bench_torch.py <out dir of a bench.mjs run> <eager|compile|compile-fp8>"
if len(sys.argv) != 3 or sys.argv[2] not in ("eager", "compile", "compile-fp8"):
    sys.exit(f"bench_torch.py: expected an out dir and a mode but received {sys.argv[1:]}\n{USAGE}")
_missing = [m for m in ("torch", "numpy", "safetensors") if importlib.util.find_spec(m) is None]
if _missing:
    sys.exit(f"bench_torch.py: this python3 ({sys.executable}) has no {', '.join(_missing)}: pip install torch numpy safetensors (torch built for CUDA)")
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

if not torch.cuda.is_available():
    cpu_only = "; this torch is a CPU-only build" if torch.version.cuda is None else ""
    sys.exit(f"bench_torch.py: PyTorch {torch.__version__} sees no GPU (torch.cuda.is_available() is False{cpu_only}); the comparison runs on an NVIDIA GPU")
out, mode = sys.argv[1], sys.argv[2]
for f in ("config.json", "data.bin", "init.safetensors"):
    if not os.path.exists(f"{out}/{f}"):
        sys.exit(f"bench_torch.py: {out}/{f} is missing: run node bench.mjs <steps> {out} first (it writes the data and the initial weights)\n{USAGE}")
cfg = json.load(open(f"{out}/config.json"))
B, T, steps = cfg["B"], cfg["T"], cfg["steps"]
m_cfg = cfg.get("model", {"vocabSize": 50304, "nLayer": 12, "nHead": 12, "nEmbd": 768})
H, C, L, V = m_cfg["nHead"], m_cfg["nEmbd"], m_cfg["nLayer"], m_cfg["vocabSize"]
assert mode in ("eager", "compile", "compile-fp8"), f"mode: eager, compile or compile-fp8, not {mode}"
E4M3, E5M2 = torch.finfo(torch.float8_e4m3fn).max, torch.finfo(torch.float8_e5m2).max


def to_fp8(t, dtype, top):
    """t as FP8 codes with one dequantization scale s = amax / top (t ≈ s · codes)."""
    s = (t.detach().abs().amax().float() / top).clamp(min=1e-12)
    return (t.float() / s).clamp(-top, top).to(dtype), s


class Fp8Linear(torch.autograd.Function):
    """y = x Wᵀ + b on FP8 tensor cores: E4M3 x and W forward, E5M2 dy backward; torch._scaled_mm
    takes its second operand column-major, so each call passes a transposed view of a row-major
    [out, in] copy."""

    @staticmethod
    def forward(ctx, x, w, b):
        x2 = x.reshape(-1, x.shape[-1])
        xq, sx = to_fp8(x2, torch.float8_e4m3fn, E4M3)
        wq, sw = to_fp8(w, torch.float8_e4m3fn, E4M3)
        y = torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, bias=None if b is None else b.to(torch.bfloat16), out_dtype=torch.bfloat16, use_fast_accum=True)
        ctx.save_for_backward(xq, sx, wq, sw)
        ctx.has_bias, ctx.shape = b is not None, x.shape
        return y.view(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, dy):
        xq, sx, wq, sw = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])
        gq, sg = to_fp8(dy2, torch.float8_e5m2, E5M2)
        dx = torch._scaled_mm(gq, wq.t().contiguous().t(), scale_a=sg, scale_b=sw, out_dtype=torch.bfloat16)
        dw = torch._scaled_mm(gq.t().contiguous(), xq.t().contiguous().t(), scale_a=sg, scale_b=sx, out_dtype=torch.float32)
        db = dy2.float().sum(0) if ctx.has_bias else None
        return dx.view(ctx.shape), dw, db


fp8_weights = set()
if mode == "compile-fp8":
    plan_path = f"{out}/plan.json"
    plan = json.load(open(plan_path)) if os.path.exists(plan_path) else None
    if plan:
        fp8_weights = {d["layer"] + ".weight" for d in plan if d["kind"] == "linear" and d["recipe"] != "bf16"}
    else:
        fp8_weights = {f"blocks.{i}.{n}.weight" for i in range(L) for n in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}


def linear(x, name, bias=True):
    w, b = P(name + ".weight"), (P(name + ".bias") if bias else None)
    if name + ".weight" in fp8_weights:
        return Fp8Linear.apply(x, w, b)
    return F.linear(x, w, b)
dev = "cuda"
torch.manual_seed(cfg["seed"])

raw = np.fromfile(f"{out}/data.bin", dtype=np.uint8)
header = raw[:1024].view(np.int32)
assert header[0] == 20240520 and header[1] == 1, "not an llm.c shard"
tokens = torch.from_numpy(raw[1024:].view(np.uint16).astype(np.int64)).to(dev)
assert tokens.numel() == header[2]

params = {k: v.to(dev).requires_grad_(True) for k, v in load_file(f"{out}/init.safetensors").items()}
P = lambda name: params[name]


def model(x, y):
    h = P("wte.weight")[x] + P("wpe.weight")[:T]
    for i in range(L):
        p = f"blocks.{i}."
        a = F.layer_norm(h, (C,), P(p + "ln1.weight"), P(p + "ln1.bias"), 1e-5)
        qkv = linear(a, p + "attn.qkv").view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        h = h + linear(att.transpose(1, 2).reshape(B, T, C), p + "attn.proj")
        m = F.layer_norm(h, (C,), P(p + "ln2.weight"), P(p + "ln2.bias"), 1e-5)
        m = F.gelu(linear(m, p + "mlp.fc"), approximate="tanh")
        h = h + linear(m, p + "mlp.proj")
    h = F.layer_norm(h, (C,), P("lnf.weight"), P("lnf.bias"), 1e-5)
    logits = F.linear(h, P("wte.weight"))
    return F.cross_entropy(logits.float().view(-1, V), y.view(-1))


decay = [v for v in params.values() if v.dim() >= 2]
no_decay = [v for v in params.values() if v.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], fused=True)


def lr_at(step):  # Deepwell's warmupCosine, step counted from 1
    w, total, lr, lo = cfg["warmup"], steps, cfg["lr"], cfg["minLr"]
    if step <= w:
        return lr * step / w
    if step >= total:
        return lo
    return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * (step - w) / (total - w)))


def train_step(x, y):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(x, y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params.values(), cfg["clip"])
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss, norm


step_fn = torch.compile(train_step) if mode.startswith("compile") else train_step
torch.cuda.reset_peak_memory_stats()
t_start = time.time()
for s in range(1, steps + 1):
    base = (s - 1) * B * T
    x = torch.stack([tokens[base + b * T: base + b * T + T] for b in range(B)])
    y = torch.stack([tokens[base + b * T + 1: base + b * T + T + 1] for b in range(B)])
    for g in opt.param_groups:
        g["lr"] = lr_at(s)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    loss, norm = step_fn(x, y)
    e1.record()
    e1.synchronize()
    print(json.dumps({"impl": f"torch-{mode}", "event": "step", "step": s, "loss": loss.item(), "gradNorm": norm.item(), "ms": e0.elapsed_time(e1)}), flush=True)
print(json.dumps({"impl": f"torch-{mode}", "event": "end", "peakMemoryBytes": torch.cuda.max_memory_allocated(), "wallSeconds": time.time() - t_start}), flush=True)
