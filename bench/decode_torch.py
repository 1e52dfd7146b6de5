#!/usr/bin/env python3
"""The PyTorch half of issue 18's GPT-2 checks, on the files bench/decode.mjs wrote (same run, same GPU).

1. Logits: a GPT-2 forward written here from the Hugging Face tensor names of the exported
   model.safetensors (read with a few lines of struct/json, no safetensors package needed), in
   float64 (the reference), float32 (TF32 off) and bf16 (weights and activations bf16: the naive
   implementation at Deepwell's precision), on the same 1024 tokens. Deepwell's bf16 and f32 logits
   are judged against the float64 ones beside PyTorch's at the same precision: relative L2 error, the
   largest absolute error, and how often the argmax agrees. Where `transformers` is installed,
   GPT2LMHeadModel.from_pretrained loads the directory and its logits are compared too.
2. Decode speed: GPT-2 124M, bf16, batch 1, greedy, a KV cache of 1024 positions, the same prompt
   and number of new tokens as decode.mjs; wall time of the whole generation (prompt in one forward,
   then one step a token, the argmax read back every step), a warm-up generation first, the median of
   REPS. Two PyTorch loops: eager (attention over the cache's filled prefix), and the step captured
   as one CUDA graph (a static cache, the position as a tensor, attention over the whole cache with a
   mask), the fastest plain-PyTorch decode we know to write.

    python3 bench/decode_torch.py <dir> <out.json>
"""
import json
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

d, out_json = sys.argv[1], sys.argv[2]
dev = "cuda"
REPS = int(os.environ.get("REPS", "3"))
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors, meta


sd, meta = load_safetensors(f"{d}/hf/model.safetensors")
cfg = json.load(open(f"{d}/hf/config.json"))
L, H, C, V, Tmax = cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
D = C // H
eps = cfg["layer_norm_epsilon"]
tokens = torch.frombuffer(bytearray(open(f"{d}/tokens.bin", "rb").read()), dtype=torch.int32).long().to(dev)
T = tokens.numel()
result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "metadata": meta, "config": cfg}


def weights(dtype):
    return {k: v.to(dev, dtype) for k, v in sd.items()}


def block(W, i, x, attend):
    p = f"transformer.h.{i}."
    h = F.layer_norm(x, (C,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
    qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]  # Conv1D: x @ W, W [C, 3C]
    B, n = x.shape[0], x.shape[1]
    q, k, v = (t.view(B, n, H, D).transpose(1, 2) for t in qkv.split(C, dim=2))
    y = attend(i, q, k, v).transpose(1, 2).reshape(B, n, C)
    x = x + y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
    h = F.layer_norm(x, (C,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
    h = F.gelu(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"], approximate="tanh")  # gelu_new
    return x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]


def head(W, x):
    x = F.layer_norm(x, (C,), W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    return x @ W["transformer.wte.weight"].T


def forward(W, idx):
    x = W["transformer.wte.weight"][idx] + W["transformer.wpe.weight"][: idx.shape[1]]
    for i in range(L):
        x = block(W, i, x, lambda _i, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    return head(W, x)


# ---- 1. logits ---------------------------------------------------------------------------------
with torch.no_grad():
    ref = forward(weights(torch.float64), tokens[None])[0]
    ours = {p: torch.frombuffer(bytearray(open(f"{d}/logits-{p}.bin", "rb").read()), dtype=torch.float32).view(T, V).to(dev) for p in ("bf16", "f32")}
    theirs = {p: forward(weights(dt), tokens[None])[0] for p, dt in (("bf16", torch.bfloat16), ("f32", torch.float32))}
    # Deepwell's f32 GEMMs on the GPU run on TF32 tensor cores (as PyTorch's allow_tf32): the same
    # forward with that setting is the naive implementation at Deepwell's f32 precision.
    torch.backends.cuda.matmul.allow_tf32 = True
    theirs["tf32"] = forward(weights(torch.float32), tokens[None])[0]
    torch.backends.cuda.matmul.allow_tf32 = False


def errors(x):
    e = x.double() - ref
    return {"relL2": (e.norm() / ref.norm()).item(), "maxAbs": e.abs().max().item(), "argmaxAgrees": (x.double().argmax(-1) == ref.argmax(-1)).double().mean().item()}


logits = {"refRms": ref.pow(2).mean().sqrt().item()}
for p in ("bf16", "f32"):
    logits[p] = {"deepwell": errors(ours[p]), "pytorch": errors(theirs[p])}
    r = logits[p]["deepwell"]["relL2"] / max(logits[p]["pytorch"]["relL2"], 1e-30)
    logits[p]["ratio"] = r
    print(f"logits {p}: Deepwell vs float64 rel L2 {logits[p]['deepwell']['relL2']:.3e} (max abs {logits[p]['deepwell']['maxAbs']:.3e}, argmax {logits[p]['deepwell']['argmaxAgrees']:.4f}); "
          f"PyTorch {p} {logits[p]['pytorch']['relL2']:.3e} (max abs {logits[p]['pytorch']['maxAbs']:.3e}, argmax {logits[p]['pytorch']['argmaxAgrees']:.4f}); ratio {r:.2f}")
logits["f32"]["pytorchTf32"] = errors(theirs["tf32"])
logits["f32"]["ratioTf32"] = logits["f32"]["deepwell"]["relL2"] / max(logits["f32"]["pytorchTf32"]["relL2"], 1e-30)
print(f"logits f32: PyTorch f32 with TF32 matmuls (Deepwell's f32 GEMMs are TF32) rel L2 {logits['f32']['pytorchTf32']['relL2']:.3e} "
      f"(max abs {logits['f32']['pytorchTf32']['maxAbs']:.3e}); ratio {logits['f32']['ratioTf32']:.2f}")
try:
    from transformers import GPT2LMHeadModel

    m = GPT2LMHeadModel.from_pretrained(f"{d}/hf", torch_dtype=torch.float64).to(dev).eval()
    with torch.no_grad():
        hf = m(tokens[None]).logits[0]
    logits["transformers"] = errors(hf)
    print(f"transformers GPT2LMHeadModel.from_pretrained(exported dir), float64: vs the forward from the names rel L2 {logits['transformers']['relL2']:.3e}")
    del m
except ImportError as e:
    logits["transformers"] = f"not installed ({e})"
    print(f"transformers: not installed here ({e})")
result["logits"] = logits
del ref, theirs, ours

# ---- 2. decode speed -----------------------------------------------------------------------------
dj = json.load(open(f"{d}/decode.json"))
PROMPT, NEW = dj["prompt"], dj["newTokens"]
prompt = tokens[:PROMPT][None]
W = weights(torch.bfloat16)
kc = torch.zeros(L, 1, H, Tmax, D, device=dev, dtype=torch.bfloat16)
vc = torch.zeros_like(kc)


def eager_step(idx, pos0):
    n = idx.shape[1]

    def attend(i, q, k, v):
        kc[i, :, :, pos0 : pos0 + n] = k
        vc[i, :, :, pos0 : pos0 + n] = v
        return F.scaled_dot_product_attention(q, kc[i, :, :, : pos0 + n], vc[i, :, :, : pos0 + n], is_causal=n > 1)

    x = W["transformer.wte.weight"][idx] + W["transformer.wpe.weight"][pos0 : pos0 + n]
    for i in range(L):
        x = block(W, i, x, attend)
    return head(W, x)


static_idx = torch.zeros(1, 1, dtype=torch.long, device=dev)
static_pos = torch.zeros(1, dtype=torch.long, device=dev)
arange = torch.arange(Tmax, device=dev)


def graph_step():
    mask = (arange <= static_pos)[None, None, None, :]

    def attend(i, q, k, v):
        kc[i].index_copy_(2, static_pos, k)
        vc[i].index_copy_(2, static_pos, v)
        return F.scaled_dot_product_attention(q, kc[i], vc[i], attn_mask=mask)

    x = W["transformer.wte.weight"][static_idx] + W["transformer.wpe.weight"][static_pos]
    for i in range(L):
        x = block(W, i, x, attend)
    return head(W, x)


with torch.no_grad():
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            graph_step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_logits = graph_step()


def generate(kind, n):
    with torch.no_grad():
        out = []
        nxt = eager_step(prompt, 0)[0, -1, :V].argmax().item()
        out.append(nxt)
        for pos in range(PROMPT, PROMPT + n - 1):
            if kind == "eager":
                nxt = eager_step(torch.tensor([[nxt]], device=dev), pos)[0, -1, :V].argmax().item()
            else:
                static_idx.fill_(nxt)
                static_pos.fill_(pos)
                graph.replay()
                nxt = static_logits[0, -1, :V].argmax().item()
            out.append(nxt)
        return out


decode = {"prompt": PROMPT, "newTokens": NEW, "method": f"wall time of a whole greedy generation, bf16, batch 1, warm-up first, median of {REPS}"}
for kind in ("eager", "cudagraph"):
    generate(kind, 16)
    runs = []
    for _ in range(REPS):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        toks = generate(kind, NEW)
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0) * 1000)
    ms = statistics.median(runs)
    first = next((i for i, (a, b) in enumerate(zip(toks, dj["greedyTokens"])) if a != b), -1)
    decode[kind] = {"tokensPerSecond": NEW / ms * 1000, "msPerToken": ms / NEW, "runsMs": runs, "firstDifferenceFromDeepwell": first}
    print(f"PyTorch {kind} KV-cache decode: {NEW / ms * 1000:.0f} tokens/s ({ms / NEW:.3f} ms a token); greedy tokens first differ from Deepwell's at {first} (-1: never)")
ours = dj["cache"]["tokensPerSecond"]
for kind in ("eager", "cudagraph"):
    decode[kind]["deepwellRatio"] = ours / decode[kind]["tokensPerSecond"]
print(f"Deepwell (cache, bf16, one CUDA graph a step): {ours:.0f} tokens/s = {decode['eager']['deepwellRatio']:.2f}x PyTorch eager, {decode['cudagraph']['deepwellRatio']:.2f}x PyTorch with a CUDA graph")
result["decode"] = decode
result["deepwell"] = {k: v for k, v in dj.items() if k != "greedyTokens"}
json.dump(result, open(out_json, "w"), indent=1)
