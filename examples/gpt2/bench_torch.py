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
# GPT_CONFIG; GPT-2 124M by default).
# A mixture-of-experts GPT (config.json's moe, which bench.mjs writes: the MoE blocks, experts, top-k,
# activation, shared experts, the load-balancing loss's weight) is reproduced as Deepwell's MoE
# routes it dropless (packages/nn/src/moe.ts): the router (a linear layer without bias, bf16 out)
# and, as moe_route, its softmax and top k in f32 (largest first, ties to the lower expert), the
# chosen f32 probabilities as the weights (not renormalised); each (token, choice) pair a row, the
# rows sorted stably by expert (token order, then choice order, as moe_sort); the experts as grouped
# GEMMs (torch._grouped_mm over w1 [E, C, hidden], w3 with SwiGLU, w2 [E, hidden, C]); each token's
# choices summed back with the f32 weights (moe_unpermute); shared experts as a dense MLP; and the
# Switch Transformer's load-balancing loss E · Σ_e f_e · P_e per MoE block in f32 (moe_aux_loss),
# summed over the blocks, weighted and added to the cross-entropy in bf16, as Deepwell's autocast
# adds them (so the logged loss of a MoE GPT is a bf16 value on both sides; the step lines also
# carry the f32 cross-entropy 'ce' and the summed load-balancing loss 'aux'). compile-fp8 is for
# the dense GPT only.
# Logs one JSON line per step (loss, ms by CUDA events around the step) and a summary line.
#   python3 bench_torch.py <out dir> <eager|compile|compile-fp8>
# Needs an NVIDIA GPU and torch (a CUDA build), numpy and safetensors; says which is missing and stops.
# BENCH_TORCH_DEVICE=cpu runs it on the CPU instead, eager, for checking the script itself against a
# small bench.mjs run (GPT2_ALLOW_CPU=1); config.json's precision 'f32' (bf16 when absent) turns
# autocast off.
import importlib.util, json, math, os, sys, time

USAGE = "Usage: python3 bench_torch.py <out dir of a bench.mjs run> <eager|compile|compile-fp8>"
if len(sys.argv) != 3 or sys.argv[2] not in ("eager", "compile", "compile-fp8"):
    sys.exit(f"bench_torch.py: expected an out dir and a mode but received {sys.argv[1:]}\n{USAGE}")
out, mode = sys.argv[1], sys.argv[2]
for f in ("config.json", "data.bin", "init.safetensors"):
    if not os.path.exists(f"{out}/{f}"):
        sys.exit(f"bench_torch.py: {out}/{f} is missing: run node bench.mjs <steps> {out} first (it writes the data and the initial weights)\n{USAGE}")
cfg = json.load(open(f"{out}/config.json"))
B, T, steps = cfg["B"], cfg["T"], cfg["steps"]
m_cfg = cfg.get("model", {"vocabSize": 50304, "nLayer": 12, "nHead": 12, "nEmbd": 768})
H, C, L, V = m_cfg["nHead"], m_cfg["nEmbd"], m_cfg["nLayer"], m_cfg["vocabSize"]
moe = cfg.get("moe")  # bench.mjs's resolved MoE settings; None (or absent: an older run) for a dense GPT
moe_layers = set(moe["layers"]) if moe else set()
# What this reference reproduces: GPT-2's blocks (LayerNorm, biases, tied embeddings, full dense
# multi-head attention, a GELU MLP), each MLP or a dropless MoE. Anything else is refused by name.
_kinds = m_cfg.get("attention") or {"kind": "dense"}
_unsupported = [f"{k} {json.dumps(m_cfg[k])}" for k, want in (("norm", "layernorm"), ("bias", True), ("tiedEmbeddings", True)) if m_cfg.get(k, want) != want]
if m_cfg.get("nKvHead", H) != H:
    _unsupported.append(f"nKvHead {m_cfg['nKvHead']} (grouped-query attention)")
if any(k.get("kind", "dense") != "dense" for k in (_kinds if isinstance(_kinds, list) else [_kinds])):
    _unsupported.append("attention other than dense")
if m_cfg.get("activation", "gelu") != "gelu" and len(moe_layers) < L:
    _unsupported.append(f"activation {json.dumps(m_cfg['activation'])} in its dense MLPs")
if moe and moe["routing"] != "dropless":
    _unsupported.append(f"moe routing {json.dumps(moe['routing'])}")
if m_cfg.get("moe") and not moe:
    _unsupported.append("a moe but no resolved MoE settings in config.json (a bench.mjs older than its MoE support wrote it: run bench.mjs again)")
if _unsupported:
    sys.exit(f"bench_torch.py: this reference reproduces GPT-2's blocks (LayerNorm, biases, tied embeddings, dense multi-head attention, a GELU MLP or a dropless MoE); {out}/config.json's model has {'; '.join(_unsupported)}")
if moe and mode == "compile-fp8":
    sys.exit("bench_torch.py: compile-fp8 quantizes the dense GPT's linear layers; this run's GPT has MoE blocks (config.json's moe): use eager or compile")
device = os.environ.get("BENCH_TORCH_DEVICE", "cuda")
if device not in ("cuda", "cpu"):
    sys.exit(f"bench_torch.py: BENCH_TORCH_DEVICE: expected cuda (the default) or cpu but received '{device}'")
if device == "cpu" and mode != "eager":
    sys.exit(f"bench_torch.py: BENCH_TORCH_DEVICE=cpu checks the script in eager mode only, not {mode}")
_missing = [m for m in ("torch", "numpy", "safetensors") if importlib.util.find_spec(m) is None]
if _missing:
    sys.exit(f"bench_torch.py: this python3 ({sys.executable}) has no {', '.join(_missing)}: pip install torch numpy safetensors (torch built for CUDA)")
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

if device == "cuda" and not torch.cuda.is_available():
    cpu_only = "; this torch is a CPU-only build" if torch.version.cuda is None else ""
    sys.exit(f"bench_torch.py: PyTorch {torch.__version__} sees no GPU (torch.cuda.is_available() is False{cpu_only}); the comparison runs on an NVIDIA GPU")
if moe and not hasattr(torch, "_grouped_mm"):
    sys.exit(f"bench_torch.py: PyTorch {torch.__version__} has no torch._grouped_mm, which the MoE experts run on (PyTorch 2.8 or later; the published runs use 2.11)")
# The activations' dtype: bf16 under autocast (bench.mjs's Trainer runs precision 'bf16'), or f32.
low = torch.float32 if cfg.get("precision", "bf16") == "f32" else torch.bfloat16
E4M3, E5M2 = (torch.finfo(torch.float8_e4m3fn).max, torch.finfo(torch.float8_e5m2).max) if mode == "compile-fp8" else (None, None)


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
dev = device
torch.manual_seed(cfg["seed"])

raw = np.fromfile(f"{out}/data.bin", dtype=np.uint8)
header = raw[:1024].view(np.int32)
assert header[0] == 20240520 and header[1] == 1, "not an llm.c shard"
tokens = torch.from_numpy(raw[1024:].view(np.uint16).astype(np.int64)).to(dev)
assert tokens.numel() == header[2]

params = {k: v.to(dev).requires_grad_(True) for k, v in load_file(f"{out}/init.safetensors").items()}
P = lambda name: params[name]


def act(gate, up):
    """The experts' activation of the gate projection: GELU (tanh), or SwiGLU silu(gate) · up() in f32,
    rounded once (Deepwell's swiglu op)."""
    if moe["activation"] == "swiglu":
        return (F.silu(gate.float()) * up().float()).to(gate.dtype)
    return F.gelu(gate, approximate="tanh")


def moe_block(x, p):
    """Deepwell's MoE with dropless routing on the normed input x [B, T, C] (block prefix p):
    (its output [B, T, C] in the activations' dtype, its load-balancing loss, a 0-dim tensor)."""
    E, k, N = moe["experts"], moe["topK"], B * T
    x2 = x.reshape(N, C)
    # moe_route: the router's logits in the activations' dtype, their softmax and top k in f32
    # whatever the autocast dtype.
    probs = torch.softmax(F.linear(x2, P(p + "router.weight")).float(), dim=-1)  # f32 [N, E]
    # The top k, largest first, ties to the lower expert: probabilities are >= 0, so their bits as
    # integers order as they do, and bits · E + (E - 1 - e) makes every key distinct.
    bits = probs.view(torch.int32).to(torch.int64)
    chosen = torch.topk(bits * E + (E - 1 - torch.arange(E, device=dev)), k, dim=-1).indices  # [N, k]
    weights = probs.gather(1, chosen)  # f32 [N, k]: the chosen probabilities, the combine's weights
    # moe_sort: choice c = n·k + j; the rows sorted stably by expert, so token order, then choice
    # order within an expert. Sorted row r holds choice perm[r]; choice c sits at row slot[c].
    perm = torch.sort(chosen.reshape(-1), stable=True).indices
    slot = torch.empty_like(perm).scatter_(0, perm, torch.arange(N * k, device=dev))
    hits = chosen.unsqueeze(-1) == torch.arange(E, device=dev)  # [N, k, E] one-hot
    offs = hits.sum((0, 1)).cumsum(0).to(torch.int32)  # torch._grouped_mm's offs: each expert's end row
    # moe_permute: each token's row copied to its choices' rows (a gather by a permutation; its
    # gradient sums each token's k rows, as moe_unpermute does, with no scatter-add).
    xs = x2.to(low).unsqueeze(1).expand(N, k, C).reshape(N * k, C)[perm]
    # The experts: expert e's rows times its [K, N] matrix, one grouped GEMM a weight (row-major bf16
    # copies of the f32 masters, as autocast casts them).
    gmm = lambda a, w: torch._grouped_mm(a, P(p + w).to(low), offs=offs)
    ye = gmm(act(gmm(xs, "w1"), lambda: gmm(xs, "w3")), "w2")  # [N·k, C]
    # moe_unpermute: y[n] = Σ_j weights[n, j] · ye[slot[n, j]], summed in f32 and rounded once.
    y = (ye[slot].view(N, k, C).float() * weights.unsqueeze(-1)).sum(1).to(low)
    if moe["sharedExperts"]:  # the shared experts: a dense MLP without biases (child 'shared')
        g = act(F.linear(x2, P(p + "shared.fc.weight")), lambda: F.linear(x2, P(p + "shared.up.weight")))
        y = y + F.linear(g, P(p + "shared.proj.weight"))
    # moe_aux_loss: Switch Transformer's load-balancing loss E · Σ_e f_e · P_e in f32 (f_e: the share
    # of choices that went to e, P_e: e's mean probability; only P carries gradient).
    with torch.autocast(dev, enabled=False):
        aux = (hits.float().mean((0, 1)) * probs.mean(0)).sum() * E
    return y.view(B, T, C), aux


def model(x, y):
    """(the mean cross-entropy in f32, the MoE blocks' load-balancing losses)"""
    h = P("wte.weight")[x] + P("wpe.weight")[:T]
    aux = []
    for i in range(L):
        p = f"blocks.{i}."
        a = F.layer_norm(h, (C,), P(p + "ln1.weight"), P(p + "ln1.bias"), 1e-5)
        qkv = linear(a, p + "attn.qkv").view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        h = h + linear(att.transpose(1, 2).reshape(B, T, C), p + "attn.proj")
        m = F.layer_norm(h, (C,), P(p + "ln2.weight"), P(p + "ln2.bias"), 1e-5)
        if i in moe_layers:
            m, balance = moe_block(m, p + "moe.")
            aux.append(balance)
        else:
            m = linear(F.gelu(linear(m, p + "mlp.fc"), approximate="tanh"), p + "mlp.proj")
        h = h + m
    h = F.layer_norm(h, (C,), P("lnf.weight"), P("lnf.bias"), 1e-5)
    logits = F.linear(h, P("wte.weight"))
    return F.cross_entropy(logits.float().view(-1, V), y.view(-1)), aux


def training_loss(ce, aux):
    """The loss Deepwell's GPT trains on: the cross-entropy, plus (with MoE) the load-balancing losses
    summed in block order and weighted. Under autocast every op of that sum, the final add included,
    runs in the activations' dtype (the f32 cross-entropy and each f32 load-balancing loss cast down
    first), so it is one bf16 value."""
    if not aux:
        return ce
    total = aux[0].to(low)
    for a in aux[1:]:
        total = total + a.to(low)
    return (ce.to(low) + total * moe["auxLossWeight"]).float()


decay = [v for v in params.values() if v.dim() >= 2]
no_decay = [v for v in params.values() if v.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], fused=dev == "cuda")


def lr_at(step):  # Deepwell's warmupCosine, step counted from 1
    w, total, lr, lo = cfg["warmup"], steps, cfg["lr"], cfg["minLr"]
    if step <= w:
        return lr * step / w
    if step >= total:
        return lo
    return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * (step - w) / (total - w)))


def train_step(x, y):
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=low == torch.bfloat16):
        ce, aux = model(x, y)
    with torch.autocast(dev, enabled=False):
        loss = training_loss(ce, aux)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params.values(), cfg["clip"])
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss, norm, ce.detach(), (sum(a.float() for a in aux).detach() if aux else None)


step_fn = torch.compile(train_step) if mode.startswith("compile") else train_step
cuda = dev == "cuda"
if cuda:
    torch.cuda.reset_peak_memory_stats()
t_start = time.time()
for s in range(1, steps + 1):
    base = (s - 1) * B * T
    x = torch.stack([tokens[base + b * T: base + b * T + T] for b in range(B)])
    y = torch.stack([tokens[base + b * T + 1: base + b * T + T + 1] for b in range(B)])
    for g in opt.param_groups:
        g["lr"] = lr_at(s)
    if cuda:
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
    t0 = time.perf_counter()
    loss, norm, ce, aux = step_fn(x, y)
    if cuda:
        e1.record()
        e1.synchronize()
    ms = e0.elapsed_time(e1) if cuda else 1000 * (time.perf_counter() - t0)
    row = {"impl": f"torch-{mode}", "event": "step", "step": s, "loss": loss.item(), "gradNorm": norm.item(), "ms": ms}
    if aux is not None:
        row.update(ce=ce.item(), aux=aux.item())
    print(json.dumps(row), flush=True)
print(json.dumps({"impl": f"torch-{mode}", "event": "end", "peakMemoryBytes": torch.cuda.max_memory_allocated() if cuda else None, "wallSeconds": time.time() - t_start}), flush=True)
