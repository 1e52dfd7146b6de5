# The PyTorch reference for bench.mjs: the same GPT-2 124M written against Deepwell's parameter
# names, started from Deepwell's initial weights (init.safetensors), trained on the same shard in the
# same order with the same schedule, AdamW (fused), clipping and bf16 autocast; attention through
# scaled_dot_product_attention. Mode 'eager' or 'compile' (torch.compile). Logs one JSON line per
# step (loss, ms by CUDA events around the step) and a summary line.
#   python3 bench_torch.py <out dir> <eager|compile>
import json, math, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

out, mode = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{out}/config.json"))
B, T, steps = cfg["B"], cfg["T"], cfg["steps"]
H, C, L, V = 12, 768, 12, 50304
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
        qkv = F.linear(a, P(p + "attn.qkv.weight"), P(p + "attn.qkv.bias")).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        h = h + F.linear(att.transpose(1, 2).reshape(B, T, C), P(p + "attn.proj.weight"), P(p + "attn.proj.bias"))
        m = F.layer_norm(h, (C,), P(p + "ln2.weight"), P(p + "ln2.bias"), 1e-5)
        m = F.gelu(F.linear(m, P(p + "mlp.fc.weight"), P(p + "mlp.fc.bias")), approximate="tanh")
        h = h + F.linear(m, P(p + "mlp.proj.weight"), P(p + "mlp.proj.bias"))
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


step_fn = torch.compile(train_step) if mode == "compile" else train_step
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
