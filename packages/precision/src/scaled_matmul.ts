/**
 * scaledMatmul on quantizeTensor results: the scaled_matmul op (ops/scaled_matmul.ts) on Tensors.
 *
 *   scaledMatmul(a, b, { outDtype?, fastAccum? }) -> d: outDtype [a.rows, b.rows]
 *     a, b: QuantizedTensors with a rowwise part, K = a.cols = b.cols, of an FP8 format ('fp8-e4m3',
 *     'fp8-e5m2': tensorwise; 'fp8-block1x128', 'fp8-block128x128': blockwise), or MXFP8
 *     ('mxfp8-e4m3', 'mxfp8-e5m2') or NVFP4 ('nvfp4'), Blackwell's block-scaled GEMMs. d = A · Bᵀ of
 *     their dequantized values (as torch._scaled_mm(a, b.t())): a Linear's y = x · wᵀ is
 *     scaledMatmul(quantizeTensor(x, …), quantizeTensor(w, …)).
 *     outDtype 'bf16' (default) or 'f32'; fastAccum (default false; tensorwise only) lets the GPU
 *     skip the periodic promotion of its FP8 partial sums, faster and less accurate.
 *
 * Pairs: tensorwise with tensorwise; blockwise 1 × 128 with 1 × 128 or 128 × 128 (either side), not
 * 128 × 128 with 128 × 128; MXFP8 with MXFP8; NVFP4 with NVFP4; not both e5m2. The operands' scales
 * are passed as they are: tensorwise FP8's globalScale is already the dequantization scale the GEMM
 * multiplies by, NVFP4's globalScale g (value = e2m1 · s · g) goes in as the op's aGlobal / bGlobal,
 * and block scales are read in the layout they were written in — 'plain' on the CPU only; on the
 * CPU and on CUDA the GEMM's: 'gemm' (blockwise FP8) or 'tiled128x4' (MXFP8, NVFP4), quantizeTensor's
 * `scaleLayout`, both operands in one layout. On the CPU NVFP4's packed codes are unpacked, one code
 * per element (the op's CPU convention).
 *
 * On a CUDA device the op's best kernel runs through the registry (cuBLASLt's FP8 GEMM) on the
 * legacy default stream, as quantizeTensor's kernels do; a shape it cannot take gives NO_KERNEL with
 * each candidate's reason (NVFP4 on a GPU below compute capability 10.0: the addon's reason; the
 * Blackwell path is compiled, never run). MXFP8 on Hopper (compute capability 9.x) runs our own
 * kernel, exact to MX semantics but not fast (cuda/scaled_matmul_mx8.ts). Its cuBLASLt workspace is the eager calls'
 * scratch (eager.ts: one buffer per device, grown as needed). On the CPU the float64 reference runs (its result rounded once to outDtype).
 * Everything is checked here, before the native boundary, with errors naming the argument.
 */
import { DeepwellError, Tensor, describe, f32ToBf16Bits, invalid, registry, unpackNibbles, type KernelCandidate } from '@deepwell/core';
import type { CudaCall } from '@deepwell/kernels-native';
import { checkAttrs, getOp, type KernelParams, type ValueType } from '@deepwell/ir';
import { devArg, eagerScratch } from './eager.js';
import type { QuantizedTensor } from './tensor.js';
import { SCALED_OUT_DTYPES, isBlockScaling, isMicroScaling, scalingPairAllowed, type GemmScaleLayout, type Scaling, type ScaledOutDtype } from './ops/scaled_matmul.js';
import './cuda/scaled_matmul.js';
import './cuda/scaled_matmul_mx8.js';

export interface ScaledMatmulOptions {
  /** 'bf16' (default) or 'f32'. */
  outDtype?: ScaledOutDtype;
  /** Tensorwise only: no periodic promotion of the FP8 partial sums on the GPU (default false). */
  fastAccum?: boolean;
}

const OPTIONS = ['outDtype', 'fastAccum'];
/** The CPU reference's limits: 2^28 outputs (2 GiB of float64), 2^36 multiply-adds (minutes). */
const CPU_MAX_OUT = 2 ** 28;
const CPU_MAX_WORK = 2 ** 36;

/** The formats scaledMatmul takes and how each scales its operand. */
const SCALING_OF: Readonly<Record<string, Scaling>> = {
  'fp8-e4m3': 'tensor',
  'fp8-e5m2': 'tensor',
  'fp8-block1x128': 'block1x128',
  'fp8-block128x128': 'block128x128',
  'mxfp8-e4m3': 'mx32',
  'mxfp8-e5m2': 'mx32',
  nvfp4: 'nv16',
};

interface Operand {
  format: string;
  scaling: Scaling;
  /** The op's scale layout its scales are in ('plain' for tensorwise: one value, no layout). */
  layout: GemmScaleLayout;
  codes: Tensor;
  scale: Tensor;
  /** NVFP4's tensor scale (f32[1]), else null. */
  global: Tensor | null;
  rows: number;
  cols: number;
}

/** The layout a block-scaled format's GEMM reads, as quantizeTensor names it. */
const gemmLayoutName = (s: Scaling): string => (isMicroScaling(s) ? 'tiled128x4' : 'gemm');

/** A QuantizedTensor checked as an FP8 GEMM operand: its rowwise codes and their scales. */
function operand(q: QuantizedTensor, name: 'a' | 'b'): Operand {
  if (q === null || typeof q !== 'object' || typeof q.format !== 'string') throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected a QuantizedTensor from quantizeTensor for ${name} but received ${describe(q)}`);
  const scaling = SCALING_OF[q.format];
  if (!scaling) {
    throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected an FP8, MXFP8 or NVFP4 format (${Object.keys(SCALING_OF).join(', ')}) for ${name} but received '${q.format}' (scaled_matmul has no MXFP4 GEMM)`);
  }
  const part = q.rowwise;
  if (!part || !(part.data instanceof Tensor)) {
    throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected a rowwise part for ${name} (quantizeTensor with direction 'rowwise' or 'both': codes [rows, K]) but received ${q.columnwise ? 'a columnwise part only' : describe(part)}`);
  }
  const scale = scaling === 'tensor' ? q.globalScale : part.scales;
  if (!(scale instanceof Tensor)) throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected ${scaling === 'tensor' ? 'a globalScale' : 'rowwise scales'} Tensor for ${name} (${q.format}) but received ${describe(scale)}`);
  const global = scaling === 'nv16' ? q.globalScale : null;
  if (scaling === 'nv16' && !(global instanceof Tensor)) throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected a globalScale Tensor for ${name} (nvfp4: its tensor scale) but received ${describe(global)}`);
  const stored = q.scaleLayout as string;
  let layout: GemmScaleLayout = 'plain';
  if (isBlockScaling(scaling) || isMicroScaling(scaling)) {
    const gemm = gemmLayoutName(scaling);
    if (stored !== 'plain' && stored !== gemm) throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected scaleLayout 'plain' or '${gemm}' for ${name} (${q.format}) but received ${describe(q.scaleLayout)}`);
    layout = stored === 'plain' ? 'plain' : 'gemm';
  }
  return { format: q.format, scaling, layout, codes: part.data, scale, global, rows: q.rows, cols: q.cols };
}


export function scaledMatmul(a: QuantizedTensor, b: QuantizedTensor, options: ScaledMatmulOptions = {}): Tensor {
  if (options === null || typeof options !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected an options object but received ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!OPTIONS.includes(key)) throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected one of ${OPTIONS.join(', ')} for an option but received ${describe(key)}`);
  }
  const outDtype = options.outDtype ?? 'bf16';
  if (!(SCALED_OUT_DTYPES as readonly unknown[]).includes(outDtype)) throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected outDtype 'bf16' or 'f32' but received ${describe(options.outDtype)}`);
  const fastAccum = options.fastAccum ?? false;
  if (typeof fastAccum !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected a boolean for fastAccum but received ${describe(options.fastAccum)}`);

  const A = operand(a, 'a');
  const B = operand(b, 'b');
  if (A.cols !== B.cols) throw new DeepwellError('SHAPE_MISMATCH', `scaledMatmul: Expected b with K = ${A.cols} columns (a's: d = a · bᵀ) but received ${B.rows} × ${B.cols}`);
  const device = A.codes.device;
  const tensors: (readonly [string, Tensor])[] = [['a', A.codes], ['a\'s scales', A.scale], ['b', B.codes], ['b\'s scales', B.scale]];
  if (A.global) tensors.push(['a\'s globalScale', A.global]);
  if (B.global) tensors.push(['b\'s globalScale', B.global]);
  if (tensors.some(([, t]) => t.device !== device)) {
    throw new DeepwellError('DEVICE_MISMATCH', `scaledMatmul: Expected a, b and their scales on one device but received ${tensors.map(([n, t]) => `${n} on ${t.device}`).join(', ')}`);
  }
  if (!scalingPairAllowed(A.scaling, B.scaling)) {
    const family = (s: Scaling) => (s === 'mx32' ? 'MXFP8' : s === 'nv16' ? 'NVFP4' : s === 'tensor' ? 'tensorwise FP8' : null);
    const f = family(A.scaling) ?? family(B.scaling);
    const why = f ? `${f} with ${f}` : 'at most one of a and b in 128 × 128 blocks';
    throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected ${why} (the pairs cuBLASLt's scaled GEMMs take) but received ${A.format} and ${B.format}`);
  }
  const block = isBlockScaling(A.scaling) || isMicroScaling(A.scaling);
  const named = (l: GemmScaleLayout) => (l === 'plain' ? 'plain' : gemmLayoutName(A.scaling));
  if (block && A.layout !== B.layout) throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected a and b in one scale layout but received '${named(A.layout)}' (a) and '${named(B.layout)}' (b)`);
  if (block && device !== 'cpu' && A.layout !== 'gemm') {
    const gemm = gemmLayoutName(A.scaling);
    throw new DeepwellError('INVALID_ARGUMENT', `scaledMatmul: Expected scaleLayout '${gemm}' for a and b (${A.format}, ${B.format}) on ${device} — the layout cuBLASLt's block-scaled GEMM reads; quantize with quantizeTensor(x, { format, scaleLayout: '${gemm}' }) — but received '${A.layout}'`);
  }

  // The op's own rule checks the rest (dtypes, the scales' shapes for their layout, e5m2 × e5m2,
  // K in whole blocks, fastAccum with blocks) and names the op's inputs.
  const op = getOp('scaled_matmul');
  const attrs = checkAttrs(op, { aScaling: A.scaling, bScaling: B.scaling, scaleLayout: A.layout, outDtype, fastAccum });
  const inputs = [A.codes, A.scale, B.codes, B.scale, ...(A.global && B.global ? [A.global, B.global] : [])];
  const inTypes: ValueType[] = inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const outTypes = op.infer(inTypes, attrs);
  const [M, N] = outTypes[0]!.shape as [number, number];
  const K = A.codes.shape[1]!;

  if (device === 'cpu') {
    // The reference is a float64 triple loop: a size it would take hours over is refused, not run.
    if (M * N > CPU_MAX_OUT || M * N * K > CPU_MAX_WORK) {
      invalid(`at most ${CPU_MAX_OUT} outputs and ${CPU_MAX_WORK} multiply-adds for the CPU reference (use a GPU)`, 'scaledMatmul on the CPU', `${M} × ${N} × ${K}`);
    }
    // The reference directly: the registry's CPU candidate of an op computes f32 / bf16 / f16 / i32
    // storage and declines f8 codes (see the op's comment).
    const d = new Float64Array(M * N);
    // FP4 codes one per element on the CPU (a tensor packs two per byte).
    const host = (t: Tensor) => Float32Array.from(t.dtype === 'f4e2m1' ? unpackNibbles(t.toHost() as Uint8Array) : (t.toHost() as ArrayLike<number>));
    op.reference({ inputs: inputs.map(host), outputs: [d], inTypes, outTypes, attrs });
    return outDtype === 'f32' ? Tensor.from(Float32Array.from(d), [M, N], 'f32') : Tensor.from(Uint16Array.from(d, (x) => f32ToBf16Bits(x)), [M, N], 'bf16');
  }

  const params: KernelParams = { op: 'scaled_matmul', device, inTypes, outTypes, attrs };
  let kernel: KernelCandidate<any, void>;
  try {
    kernel = registry.select<KernelParams, void>('scaled_matmul', params);
  } catch (e) {
    throw new DeepwellError('NO_KERNEL', `scaledMatmul on ${device}: ${(e as Error).message}`, { cause: e });
  }
  const out = Tensor.empty([M, N], outDtype, { device });
  try {
    const call: CudaCall<KernelParams> = {
      ...params,
      stream: 0,
      inputs: inputs.map(devArg),
      outputs: [devArg(out)],
      workspace: eagerScratch(device, kernel.workspace?.(params) ?? 0),
    };
    kernel.run(call);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
