# PyTorch's FP8 GEMMs beside bench/scaled_gemm.mjs: the same shapes and modes
# (bench/scaled-gemm-shapes.json), measured the same way (the code is bench/gemm_method.py): random
# inputs (FP8 codes are random bytes with the NaN codes, and for e5m2 the infinities, moved to the
# largest finite exponent, as the Deepwell side makes them; bf16 values normal); scales positive
# random f32 in [0.5, 2); operand sets cycled so at least 256 MiB is touched; at least 300 ms of
# warm-up per case, then 9 samples of back-to-back calls (about 25 ms each) between one pair of
# CUDA events; the median per call.
#   bf16                 torch.matmul(a, b.t(), out=d)
#   tensorwise(-fast)    torch._scaled_mm(a, b.t(), scale_a, scale_b, out_dtype=bf16,
#   tensorwise-e5m2      use_fast_accum=..., out=d), f32 scalar scales; a e5m2 in -e5m2
#   rowwise              the same with scale_a (M, 1) and scale_b (1, N)
#   blockwise(-1x128)    torch.nn.functional.scaled_mm with ScalingType BlockWise1x128 /
#                        BlockWise128x128 where this torch has it, else torch._scaled_mm
# a is [M, K] row-major and b [N, K] row-major (a Linear's weight), so b.t() is the column-major
# (K, N) operand cuBLASLt needs. Scale layouts (as test/test_scaled_matmul_cuda.py and
# aten/src/ATen/native/cuda/ScaledBlas.cpp in PyTorch take them; in memory the same as Deepwell's,
# L = K / 128, L4 = L rounded up to a multiple of 4): 1 × 128 scales are [L, rows] with rows
# contiguous, given to scaled_mm as the (rows, L) view with strides (1, rows); 128 × 128 scales
# are [ceil(rows / 128), L4], given as the (L4, ceil(rows / 128)) view with strides (1, L4).
# Each case tries its APIs in order; the JSON line says which ran ('api'), and which failed before
# it and why ('fallbackFrom'). A case that no API runs prints a line with 'error' (the message's
# first line) and the run goes on: this script does not stop on a failing case. The first line
# printed gives torch's, CUDA's and the loaded cuBLASLt's versions.
import ctypes
import json
import os
import sys

import torch

from gemm_method import measure, operand_sets

SPEC = json.load(open(os.path.join(os.path.dirname(__file__), "scaled-gemm-shapes.json")))
ROUND = int(os.environ.get("SCALED_GEMM_ROUND", "1"))
F = torch.nn.functional


def select(items, what, keys):
    """The items that the comma list in env var `what` names (by any of keys(item)); all when unset."""
    wanted = [w.strip() for w in os.environ.get(what, "").split(",") if w.strip()]
    if not wanted:
        return items
    unknown = [w for w in wanted if not any(w in keys(x) for x in items)]
    if unknown:
        sys.exit(f"{what}: unknown {', '.join(repr(u) for u in unknown)}; known: {', '.join(keys(x)[-1] for x in items)}")
    return [x for x in items if any(k in wanted for k in keys(x))]


# [name, M, N, K]: D[M, N] = A[M, K] · B[N, K]ᵀ; [mode, None (bf16) | {a, b, aScaling, bScaling, fastAccum}].
SHAPES = select(SPEC["shapes"], "SCALED_GEMM_SHAPES", lambda s: [s[0], s[0].split(":")[0].strip()])
MODES = select(list(SPEC["modes"].items()), "SCALED_GEMM_MODES", lambda m: [m[0]])

FP8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
# Each format's non-finite codes (mask, the bit cleared): e4m3's NaNs S.1111.111 become ±448;
# e5m2's NaNs and infinities S.11111.xx take the largest finite exponent.
NON_FINITE = {"e4m3": (0x7F, 0x01), "e5m2": (0x7C, 0x04)}


def enum_member(enum, *names):
    """The first of `names` that `enum` has (the names changed between PyTorch versions), or None."""
    for name in names:
        if enum is not None and hasattr(enum, name):
            return getattr(enum, name)
    return None


# torch.nn.functional.scaled_mm (the "v2" API: explicit recipes) and its enums, where this torch has them.
SCALING_TYPE = getattr(F, "ScalingType", None)
HAS_SCALED_MM = hasattr(F, "scaled_mm") and SCALING_TYPE is not None
RECIPE = {
    "tensor": enum_member(SCALING_TYPE, "TensorWise", "Tensorwise"),
    "row": enum_member(SCALING_TYPE, "RowWise", "Rowwise"),
    "block1x128": enum_member(SCALING_TYPE, "BlockWise1x128", "Blockwise_1x128", "Blockwise1x128"),
    "block128x128": enum_member(SCALING_TYPE, "BlockWise128x128", "Blockwise_128x128", "Blockwise128x128"),
}
NO_SWIZZLE = enum_member(getattr(F, "SwizzleType", None), "NO_SWIZZLE", "NoSwizzle")
SCALED_MM, SCALED_MM_V1 = "torch.nn.functional.scaled_mm", "torch._scaled_mm"


def first_line(e):
    lines = [l for l in str(e).strip().split("\n") if l.strip()] or [type(e).__name__]
    return lines[0].strip()


def error_fields(e):
    """The message's first line, and its last where it has more (PyTorch's 'Got ...' line)."""
    lines = [l for l in str(e).strip().split("\n") if l.strip()] or [type(e).__name__]
    out = {"error": lines[0].strip(), "errorType": type(e).__name__}
    if len(lines) > 1:
        out["errorLast"] = lines[-1].strip()
    return out


def cublaslt():
    """The cuBLASLt this process loaded (after a GEMM), as (version, path); None where unknown."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({l.split()[-1] for l in f if "libcublasLt" in l and "/" in l})
        if not paths:
            return None, None
        lib = ctypes.CDLL(paths[0])
        lib.cublasLtGetVersion.restype = ctypes.c_size_t
        v = lib.cublasLtGetVersion()
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}", paths[0]
    except Exception as e:  # informative only
        return f"unknown ({first_line(e)})", None


def info():
    out = {"torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        out["device"] = torch.cuda.get_device_name(0)
        out["capability"] = list(torch.cuda.get_device_capability(0))
        out["compiledCuda"] = torch._C._cuda_getCompiledVersion()
        out["blasLibrary"] = str(torch.backends.cuda.preferred_blas_library())
    except Exception as e:
        out["infoError"] = first_line(e)
    try:
        x = torch.ones(64, 64, device="cuda", dtype=torch.bfloat16)
        torch.matmul(x, x)  # loads cuBLAS / cuBLASLt
        torch.cuda.synchronize()
    except Exception as e:
        out["infoError"] = first_line(e)
    out["cublasLt"], out["cublasLtPath"] = cublaslt()
    out["scaledMm"] = SCALED_MM if HAS_SCALED_MM else None
    out["recipes"] = {k: (str(v) if v is not None else None) for k, v in RECIPE.items()}
    return out


def rand_scales(*shape):
    """Positive random f32 in [0.5, 2) on the GPU (a 0-dim tensor for shape ())."""
    return torch.exp2(torch.rand(shape, device="cuda", dtype=torch.float32) * 2 - 1)


def fp8_codes(rows, cols, fmt):
    """A [rows, cols] row-major FP8 tensor of random codes, never NaN or Inf."""
    x = torch.randint(0, 256, (rows, cols), device="cuda", dtype=torch.uint8)
    mask, clear = NON_FINITE[fmt]
    return torch.where((x & mask) == mask, x & (0xFF ^ clear), x).view(FP8[fmt])


def scale_elems(scaling, rows, K):
    """Elements of a scale in Deepwell's layout (as bench/scaled_gemm.mjs counts them), for set sizes."""
    L = -(-K // 128)
    return {"tensor": 1, "row": rows, "block1x128": L * rows, "block128x128": -(-rows // 128) * (-(-L // 4) * 4)}[scaling]


def scales(api, scaling, rows, K, operand):
    """The scale of `operand` ('a': rows = M, 'b': rows = N) as `api` takes it."""
    L = -(-K // 128)
    if scaling == "tensor":
        return rand_scales()
    if scaling == "row":
        return rand_scales(rows, 1) if operand == "a" else rand_scales(1, rows)
    if scaling == "block1x128":
        # [L, rows], rows contiguous. scaled_mm: (rows, L), strides (1, rows), for a and b alike;
        # torch._scaled_mm checks b's scale transposed, so it takes b's as the (L, N) tensor.
        t = rand_scales(L, rows)
        return t if (api == SCALED_MM_V1 and operand == "b") else t.t()
    if scaling == "block128x128":
        if api == SCALED_MM:
            # [ceil(rows / 128), L4] (the test's _pad_128x128_scales), as (L4, ceil(rows / 128)), strides (1, L4).
            return rand_scales(-(-rows // 128), -(-L // 4) * 4).t()
        # torch._scaled_mm's check (is_blockwise_128x128_scaling): (ceil(rows / 128), L) contiguous,
        # b's transposed.
        t = rand_scales(-(-rows // 128), L)
        return t if operand == "a" else t.t()
    raise ValueError(f"unknown scaling {scaling!r}")


def candidates(M, N, K, spec):
    """(api, build) in order of preference; build(op) makes one operand set's zero-argument call."""
    if spec is None:
        return [("torch.matmul", lambda op: lambda: torch.matmul(op["a"], op["b"].t(), out=op["d"]))]
    fast = bool(spec["fastAccum"])

    def v1(out):
        def build(op):
            sa = scales(SCALED_MM_V1, spec["aScaling"], M, K, "a")
            sb = scales(SCALED_MM_V1, spec["bScaling"], N, K, "b")
            if out:
                return lambda: torch._scaled_mm(op["a"], op["b"].t(), sa, sb, out_dtype=torch.bfloat16, use_fast_accum=fast, out=op["d"])

            def call():
                op["d"] = torch._scaled_mm(op["a"], op["b"].t(), sa, sb, out_dtype=torch.bfloat16, use_fast_accum=fast)

            return call

        return build

    def v2(op):
        sa = scales(SCALED_MM, spec["aScaling"], M, K, "a")
        sb = scales(SCALED_MM, spec["bScaling"], N, K, "b")
        kw = {"swizzle_a": NO_SWIZZLE, "swizzle_b": NO_SWIZZLE} if NO_SWIZZLE is not None else {}
        ra, rb = RECIPE[spec["aScaling"]], RECIPE[spec["bScaling"]]

        def call():
            # No out= here: keeping each set's result alive until its next call makes the outputs
            # rotate through as many blocks as there are sets, as out= would.
            op["d"] = F.scaled_mm(op["a"], op["b"].t(), scale_a=sa, scale_recipe_a=ra, scale_b=sb, scale_recipe_b=rb,
                                  output_dtype=torch.bfloat16, use_fast_accum=fast, **kw)

        return call

    blockwise = spec["aScaling"].startswith("block") or spec["bScaling"].startswith("block")
    out = [(SCALED_MM_V1, v1(True)), (SCALED_MM_V1 + " (no out=)", v1(False))]
    if blockwise and HAS_SCALED_MM and None not in (RECIPE[spec["aScaling"]], RECIPE[spec["bScaling"]]):
        out.insert(0, (SCALED_MM, v2))
    return out


def run_case(name, M, N, K, mode, spec):
    row = {"impl": "torch", "mode": mode, "round": ROUND, "name": name, "M": M, "N": N, "K": K}
    if spec is None:
        set_bytes = 2 * (M * K + N * K + M * N)
    else:
        set_bytes = M * K + N * K + 2 * M * N + 4 * (scale_elems(spec["aScaling"], M, K) + scale_elems(spec["bScaling"], N, K))
    sets = operand_sets(set_bytes)
    ops = []
    for _ in range(sets):
        if spec is None:
            a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        else:
            a, b = fp8_codes(M, K, spec["a"]), fp8_codes(N, K, spec["b"])
        ops.append({"a": a, "b": b, "d": torch.empty(M, N, device="cuda", dtype=torch.bfloat16)})
    failed = []
    for api, build in candidates(M, N, K, spec):
        try:
            calls = [build(op) for op in ops]
            calls[0]()  # the first call picks the algorithm; an unsupported case fails here
            torch.cuda.synchronize()
        except Exception as e:
            failed.append({"api": api, **error_fields(e)})
            continue
        state = {"i": 0}

        def launch():
            calls[state["i"] % sets]()
            state["i"] += 1

        try:
            ms, per = measure(launch, sets)
        except Exception as e:
            return {**row, "api": api, **error_fields(e), **({"fallbackFrom": failed} if failed else {})}
        fields = {"api": api, "ms": ms, "tflops": 2 * M * N * K / (ms * 1e9), "launchesPerSample": per, "operandSets": sets}
        return {**row, **fields, **({"fallbackFrom": failed} if failed else {})}
    return {**row, "api": failed[0]["api"], **{k: v for k, v in failed[0].items() if k != "api"}, "attempts": failed}


def main():
    print(json.dumps({"impl": "torch", "round": ROUND, "info": info()}), flush=True)
    for name, M, N, K in SHAPES:
        for mode, spec in MODES:
            try:
                out = run_case(name, M, N, K, mode, spec)
            except Exception as e:  # setting the case up failed (out of memory, a CUDA error, ...)
                out = {"impl": "torch", "mode": mode, "round": ROUND, "name": name, "M": M, "N": N, "K": K, **error_fields(e)}
            print(json.dumps(out), flush=True)
            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception as e:
                print(f"scaled_gemm_torch.py: cleaning up after {name} {mode}: {first_line(e)}", file=sys.stderr)


if __name__ == "__main__":
    main()
