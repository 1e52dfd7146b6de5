# PyTorch DDP beside ddp-bench.mjs: the same GPT-2 (bench_torch.py's dense path, written here as an
# nn.Module whose parameter names are Deepwell's, so init.safetensors loads by name), the same data,
# initial weights, schedule, AdamW (fused), clipping (1.0) and bf16 autocast, one process per GPU
# under torch.nn.parallel.DistributedDataParallel (bucket_cap_mb left at its default, 25).
#   torchrun --standalone --nproc-per-node N examples/gpt2/ddp_torch.py <out> [compile|eager]
# <out> is a ddp-bench.mjs run's folder (data.bin, config.json, init.safetensors: run ddp-bench.mjs
# first; its data must hold steps * B * T * N + 1 tokens, which a Deepwell run on N or more GPUs
# wrote, or one with DDP_ACCUMULATE micro-batches on N / DDP_ACCUMULATE GPUs; B is config.json's,
# the batch per rank, one micro-batch a step here). Each rank reads its own samples as Deepwell's TokenLoader gives them: rank r of W takes
# samples r, r + W, r + 2W, ... (sample k: tokens k*T .. k*T + T, the targets one token on), so
# step s's global batch is samples (s - 1)*B*W .. s*B*W - 1, as in ddp-bench.mjs. The loss logged is
# the mean over the ranks (all-reduced, as Deepwell's data-parallel step averages it).
# compile: torch.compile of the DDP module (DDPOptimizer splits the graph at the buckets, so the
# all-reduces overlap the backward); AdamW and clipping run eagerly (fused AdamW).
# A world of one runs without DDP (the plain single-GPU step: the baseline of the scaling).
# Rank 0 writes one JSON line a step to <out>/torch-ddp-w<W>-<mode>.jsonl (loss, gradNorm, ms by
# CUDA events around the step); every rank prints its memory line ({"event": "memory", "rank", ...,
# "peakMemoryBytes": torch.cuda.max_memory_allocated()}), rank 0 then the summary line
# ({"event": "summary", "impl": "torch-ddp", "world", "mode", "tokensPerSecond",
# "tokensPerSecondPerGpu", "peakMemoryBytes", "finalLoss", ...}). tokensPerSecond: every rank's tokens
# over the wall time from the end of the warm-up steps (the first 10; half of a run shorter than 20)
# to the last (synchronized), as ddp-bench.mjs counts; medianStepMs: the median CUDA-event time there.
# DDP_TORCH_DEVICE=cpu runs it on the CPU (gloo, eager), to check the script against a small
# ddp-bench.mjs run (GPT2_ALLOW_CPU=1 GPT_CONFIG=tiny GPT2_PRECISION=f32: the losses then agree to f32).
import json, math, os, sys, time

USAGE = "Usage: torchrun --standalone --nproc-per-node N examples/gpt2/ddp_torch.py <out dir of a ddp-bench.mjs run> [compile|eager]"
if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in ("compile", "eager")):
    sys.exit(f"ddp_torch.py: expected an out dir and optionally a mode (compile or eager) but received {sys.argv[1:]}\n{USAGE}")
out, mode = sys.argv[1], (sys.argv[2] if len(sys.argv) == 3 else "compile")
for f in ("config.json", "data.bin", "init.safetensors"):
    if not os.path.exists(f"{out}/{f}"):
        sys.exit(f"ddp_torch.py: {out}/{f} is missing: run ddp-bench.mjs with this out dir first (its rank 0 writes the data, the settings and the initial weights)\n{USAGE}")
device_kind = os.environ.get("DDP_TORCH_DEVICE", "cuda")
if device_kind not in ("cuda", "cpu"):
    sys.exit(f"ddp_torch.py: DDP_TORCH_DEVICE: expected cuda (the default) or cpu but received '{device_kind}'")
if device_kind == "cpu" and mode != "eager":
    sys.exit(f"ddp_torch.py: DDP_TORCH_DEVICE=cpu checks the script in eager mode only, not {mode}")
cfg = json.load(open(f"{out}/config.json"))
B, T, steps = cfg["B"], cfg["T"], cfg["steps"]
m_cfg = cfg["model"]
H, C, L, V = m_cfg["nHead"], m_cfg["nEmbd"], m_cfg["nLayer"], m_cfg["vocabSize"]
# What this reference reproduces: GPT-2's blocks (LayerNorm, biases, tied embeddings, dense
# multi-head attention, a GELU MLP); anything else is refused by name.
unsupported = [f"{k} {json.dumps(m_cfg[k])}" for k, want in (("norm", "layernorm"), ("bias", True), ("tiedEmbeddings", True), ("activation", "gelu")) if m_cfg.get(k, want) != want]
if m_cfg.get("nKvHead", H) != H:
    unsupported.append(f"nKvHead {m_cfg['nKvHead']}")
if m_cfg.get("moe"):
    unsupported.append("a moe (bench_torch.py has the MoE reference; this one is dense)")
kinds = m_cfg.get("attention") or {"kind": "dense"}
if any(k.get("kind", "dense") != "dense" for k in (kinds if isinstance(kinds, list) else [kinds])):
    unsupported.append("attention other than dense")
if unsupported:
    sys.exit(f"ddp_torch.py: this reference is GPT-2's dense blocks at one micro-batch a step; {out}/config.json has {'; '.join(unsupported)}")

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

rank, W, local = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
cuda = device_kind == "cuda"
if cuda and not torch.cuda.is_available():
    sys.exit(f"ddp_torch.py: PyTorch {torch.__version__} sees no GPU (torch.cuda.is_available() is False)")
dev = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
if cuda:
    torch.cuda.set_device(dev)
if W > 1:
    dist.init_process_group("nccl" if cuda else "gloo", **({"device_id": dev} if cuda else {}))
low = torch.float32 if cfg.get("precision", "bf16") == "f32" else torch.bfloat16

raw = np.fromfile(f"{out}/data.bin", dtype=np.uint8)
header = raw[:1024].view(np.int32)
if header[0] != 20240520 or header[1] != 1:
    sys.exit(f"ddp_torch.py: {out}/data.bin is not an llm.c shard")
need = steps * B * T * W + 1
if header[2] < need:
    sys.exit(f"ddp_torch.py: {out}/data.bin holds {header[2]} tokens but {W} ranks need {need} ({steps} steps x {B} x {T} x {W} + 1): run ddp-bench.mjs on {W} or more GPUs into {out} first")
tokens = torch.from_numpy(raw[1024:1024 + 2 * need].view(np.uint16).astype(np.int64)).to(dev)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)

    def forward(self, x):
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, H, C // H).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, C))


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc, self.proj = nn.Linear(C, hidden), nn.Linear(hidden, C)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(C), Attention(), nn.LayerNorm(C), MLP(hidden)

    def forward(self, h):
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class GPT(nn.Module):
    """bench_torch.py's dense GPT-2: learned positions, pre-LayerNorm blocks, tied embeddings; the mean
    cross-entropy in f32."""

    def __init__(self, hidden, block_size):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(block_size, C)
        self.blocks = nn.ModuleList(Block(hidden) for _ in range(L))
        self.lnf = nn.LayerNorm(C)

    def forward(self, x, y):
        h = self.wte(x) + self.wpe.weight[: x.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        logits = F.linear(self.lnf(h), self.wte.weight)
        return F.cross_entropy(logits.float().view(-1, V), y.view(-1))


init = load_file(f"{out}/init.safetensors")
raw_model = GPT(init["blocks.0.mlp.fc.weight"].shape[0], init["wpe.weight"].shape[0])
raw_model.load_state_dict(init, strict=True)  # every name and shape Deepwell's, or an error naming it
raw_model.to(dev)
params = list(raw_model.parameters())
model = nn.parallel.DistributedDataParallel(raw_model, device_ids=[local] if cuda else None) if W > 1 else raw_model
forward = torch.compile(model) if mode == "compile" else model
decay = [p for p in params if p.dim() >= 2]
no_decay = [p for p in params if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], fused=cuda)


def lr_at(step):  # Deepwell's warmupCosine, step counted from 1 (bench_torch.py's)
    w, lr, lo = cfg["warmup"], cfg["lr"], cfg["minLr"]
    if step <= w:
        return lr * step / w
    if step >= steps:
        return lo
    return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * (step - w) / (steps - w)))


offsets = torch.arange(T, device=dev)


def batch(s):
    """Rank `rank`'s batch of step s (1-based): samples ((s - 1) * B + i) * W + rank, i < B."""
    starts = (((s - 1) * B + torch.arange(B, device=dev)) * W + rank) * T
    idx = starts[:, None] + offsets
    return tokens[idx], tokens[idx + 1]


def train_step(x, y):
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=low == torch.bfloat16):
        loss = forward(x, y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss = loss.detach()
    if W > 1:  # the global batch's loss, as Deepwell's step reports it
        dist.all_reduce(loss)
        loss /= W
    return loss, norm


sync = torch.cuda.synchronize if cuda else (lambda: None)
skip = 10 if steps >= 20 else steps // 2
log = open(f"{out}/torch-ddp-w{W}-{mode}.jsonl", "w") if rank == 0 else None
if cuda:
    torch.cuda.reset_peak_memory_stats()
step_ms, losses, t_timed = [], [], None
for s in range(1, steps + 1):
    x, y = batch(s)
    for g in opt.param_groups:
        g["lr"] = lr_at(s)
    if cuda:
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
    t0 = time.perf_counter()
    loss, norm = train_step(x, y)
    if cuda:
        e1.record()
        e1.synchronize()
    ms = e0.elapsed_time(e1) if cuda else 1000 * (time.perf_counter() - t0)
    value = loss.item()
    losses.append(value)
    if s > skip + 1:
        step_ms.append(ms)
    if s == skip + 1:  # timed from the end of this step, as ddp-bench.mjs times
        sync()
        t_timed = time.perf_counter()
    if log:
        log.write(json.dumps({"impl": f"torch-ddp-{mode}", "event": "step", "step": s, "loss": value, "gradNorm": norm.item(), "ms": ms}) + "\n")
sync()
seconds = time.perf_counter() - t_timed if t_timed is not None else None
timed = steps - skip - 1
tps = timed * B * T * W / seconds if seconds and timed > 0 else None
peak = torch.cuda.max_memory_allocated() if cuda else None
memory = {"event": "memory", "impl": "torch-ddp", "rank": rank, "world": W, "mode": mode, "device": str(dev), "peakMemoryBytes": peak,
          "peakReservedBytes": torch.cuda.max_memory_reserved() if cuda else None}
print(json.dumps(memory), flush=True)
if W > 1:
    dist.barrier()  # the memory lines first, then rank 0's summary
if rank == 0:
    summary = {"event": "summary", "impl": "torch-ddp", "world": W, "mode": mode, "ddp": W > 1, "B": B, "T": T, "steps": steps, "timedSteps": timed,
               "tokensPerSecond": tps, "tokensPerSecondPerGpu": tps / W if tps else None,
               "medianStepMs": sorted(step_ms)[len(step_ms) // 2] if step_ms else None,
               "peakMemoryBytes": peak, "finalLoss": losses[-1], "torch": torch.__version__}
    log.write(json.dumps(memory) + "\n")
    log.write(json.dumps(summary) + "\n")
    log.close()
    print(json.dumps(summary), flush=True)
if W > 1:
    dist.destroy_process_group()
