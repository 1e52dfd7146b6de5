/**
 * adamw's CUDA kernel in place (param, m, v one buffer each, as a compiled step updates them)
 * against the CPU reference over several steps, for every gradient storage. Moved from
 * cuda-nn.test.ts (the nn family's kernels). Runs only where a GPU is; skips cleanly elsewhere.
 */
import { f32ToBf16Bits, f32ToF16Bits, registry, type DTypeName } from '@deepwell/core';
import { Stream, cudaBackend, nativeEntries, type CudaBuffer, type CudaCall } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import { checkAttrs, getOp, type AttrValue, type ValueType } from '../src/index.js';
import { gpu, reference, rounded, type CudaInput } from './cuda-helpers.js';
import { randn } from './helpers.js';
import { allError, run } from './cuda-checks.js';

// ---- adamw -------------------------------------------------------------------------------------------

function encode(dtype: DTypeName, data: ArrayLike<number>): ArrayBufferView {
  if (dtype === 'f32') return Float32Array.from(data);
  if (dtype === 'bf16') return Uint16Array.from(data, f32ToBf16Bits);
  return Uint16Array.from(data, f32ToF16Bits);
}

/**
 * AdamW steps run in place through the registry's CUDA candidate: param, m and v each one device
 * buffer that is both the input and the output. Returns their final values and the reference's,
 * stepped on the same (storage-rounded) values, with f32 state in between steps.
 */
function adamwInPlace(n: number, gradDtype: DTypeName, steps: number, attrs: Record<string, AttrValue>, opts: { step0?: number } = {}) {
  const backend = cudaBackend(0);
  const stream = new Stream(0);
  const bufs: CudaBuffer[] = [];
  const alloc = (bytes: number): CudaBuffer => {
    const b = backend.alloc(Math.max(4, bytes));
    bufs.push(b);
    return b;
  };
  const arg = (b: CudaBuffer) => ({ base: b.ptr, offset: 0, bytes: b.bytes });
  try {
    const gb = gradDtype === 'f32' ? 4 : 2;
    const [P, G, M, V, LR, ST] = [alloc(4 * n), alloc(gb * n), alloc(4 * n), alloc(4 * n), alloc(4), alloc(4)];
    let p = rounded('f32', randn(n));
    let m = rounded('f32', randn(n).map((x) => 0.1 * x));
    let v = rounded('f32', randn(n).map((x) => 0.01 * x * x + 1e-4));
    backend.write(P!, encode('f32', p));
    backend.write(M!, encode('f32', m));
    backend.write(V!, encode('f32', v));
    const f32 = (shape: number[]): ValueType => ({ shape, dtype: 'f32' });
    const inTypes: ValueType[] = [f32([n]), { shape: [n], dtype: gradDtype }, f32([n]), f32([n]), f32([1]), f32([1])];
    const outTypes: ValueType[] = [f32([n]), f32([n]), f32([n])];
    const params = { op: 'adamw', device: 'cuda:0', inTypes, outTypes, attrs: checkAttrs(getOp('adamw'), attrs) };
    const kernel = registry.select<CudaCall, void>('adamw', params as unknown as CudaCall);
    expect(kernel.name).toBe('adamw_cuda');
    for (let t = 1; t <= steps; t++) {
      const g = randn(n);
      const lr = 1e-3 * t;
      const step = (opts.step0 ?? 1) + t - 1;
      backend.write(G!, encode(gradDtype, g));
      backend.write(LR!, encode('f32', [lr]));
      backend.write(ST!, encode('f32', [step]));
      backend.synchronize();
      kernel.run({ ...params, stream: stream.handle, inputs: [P, G, M, V, LR, ST].map((b) => arg(b!)), outputs: [P, M, V].map((b) => arg(b!)), workspace: null });
      stream.synchronize();
      if (step >= 1) {
        const ins: CudaInput[] = [
          { shape: [n], dtype: 'f32', data: p },
          { shape: [n], dtype: gradDtype, data: g },
          { shape: [n], dtype: 'f32', data: m },
          { shape: [n], dtype: 'f32', data: v },
          { shape: [1], dtype: 'f32', data: Float64Array.of(lr) },
          { shape: [1], dtype: 'f32', data: Float64Array.of(step) },
        ];
        const [p2, m2, v2] = reference('adamw', ins, attrs);
        [p, m, v] = [rounded('f32', p2!), rounded('f32', m2!), rounded('f32', v2!)];
      }
    }
    const read = (b: CudaBuffer): Float64Array => {
      const host = new Float32Array(n);
      backend.read(b, host);
      return Float64Array.from(host);
    };
    return { got: [read(P!), read(M!), read(V!)], want: [p, m, v], stream: stream.handle };
  } finally {
    stream.dispose();
    for (const b of bufs) backend.free(b);
  }
}

describe.skipIf(!gpu)('adamw_cuda', () => {
  const attrs = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  for (const gradDtype of ['f32', 'bf16', 'f16'] as const) {
    it(`takes 3 steps in place like the reference (f32 state, ${gradDtype} grad)`, () => {
      for (const n of [1, 7, 13, 1000, 4099]) {
        const { got, want } = adamwInPlace(n, gradDtype, 3, attrs);
        // The new param cancels where it is about the size of the update: the scale is the largest lr.
        expect(allError(got[0]!, want[0]!, 'f32', 3e-3), `param n ${n}`).toBeLessThanOrEqual(1e-5);
        expect(allError(got[1]!, want[1]!, 'f32'), `m n ${n}`).toBeLessThanOrEqual(1e-5);
        expect(allError(got[2]!, want[2]!, 'f32', 0), `v n ${n}`).toBeLessThanOrEqual(1e-5);
      }
    });
  }

  it('matches the reference into separate outputs', () => {
    for (const grad of ['f32', 'bf16'] as const) {
      const n = 1001;
      const inputs: CudaInput[] = [
        { shape: [n], dtype: 'f32', data: randn(n) },
        { shape: [n], dtype: grad, data: randn(n) },
        { shape: [n], dtype: 'f32', data: randn(n).map((x) => 0.1 * x) },
        { shape: [n], dtype: 'f32', data: randn(n).map((x) => x * x + 0.01) },
        { shape: [1], dtype: 'f32', data: Float64Array.of(3e-4) },
        { shape: [1], dtype: 'f32', data: Float64Array.of(7) },
      ];
      const { got, want } = run('adamw', inputs, { weightDecay: 0.01 }, 'f32');
      expect(allError(got[0]!, want[0]!, 'f32', 3e-4)).toBeLessThanOrEqual(1e-5);
      expect(allError(got[1]!, want[1]!, 'f32')).toBeLessThanOrEqual(1e-5);
      expect(allError(got[2]!, want[2]!, 'f32', 0)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('records a step below 1 for the next index check, leaving the state untouched', () => {
    const { got } = adamwInPlace(8, 'f32', 1, attrs, { step0: 0 });
    expect(got[0]!.every((x) => Number.isFinite(x))).toBe(true);
    const e = errorOf(() => nativeEntries().entries!.opsErrorCheck(0));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('adamw');
  });

  it('refuses a bf16 param or moments (f32 master state only), and mixed storage elsewhere', () => {
    const t = (dtype: DTypeName, shape = [4]): ValueType => ({ shape, dtype });
    const verdict = (op: string, inTypes: ValueType[], outTypes: ValueType[], attrs: Record<string, AttrValue> = {}) =>
      registry.explain(op, { op, device: 'cuda:0', inTypes, outTypes, attrs: checkAttrs(getOp(op), attrs) }).rows.find((r) => r.name === `${op}_cuda`)!.verdict;
    expect(verdict('adamw', [t('bf16'), t('bf16'), t('f32'), t('f32'), t('f32', [1]), t('f32', [1])], [t('bf16'), t('f32'), t('f32')])).toContain('f32');
    expect(verdict('adamw', [t('f32'), t('bf16'), t('f32'), t('f32'), t('bf16', [1]), t('f32', [1])], [t('f32'), t('f32'), t('f32')])).toBe('selected');
    expect(verdict('layernorm', [t('bf16', [2, 4]), t('f32'), t('f32')], [t('bf16', [2, 4]), t('f32', [2]), t('f32', [2])])).toContain('one storage dtype');
    // Statistics are f32 whatever the storage (the op's rule); bf16 statistics are refused.
    expect(verdict('layernorm', [t('bf16', [2, 4]), t('bf16'), t('bf16')], [t('bf16', [2, 4]), t('bf16', [2]), t('bf16', [2])])).toContain('in f32');
    expect(verdict('layernorm', [t('bf16', [2, 4]), t('bf16'), t('bf16')], [t('bf16', [2, 4]), t('f32', [2]), t('f32', [2])])).toBe('selected');
  });
});
