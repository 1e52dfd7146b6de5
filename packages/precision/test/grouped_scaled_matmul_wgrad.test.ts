// grouped_scaled_matmul_wgrad (the FP8 blockwise k-grouped weight gradient's contract) on the CPU,
// fresh random inputs every run, on quantize_kgrouped's codes of x [R, K] and g [R, N]: each expert's
// dw[e] equals the float64 sum over its real rows of the dequantized products, rounded once, bit for
// bit (so the padding adds nothing), and lies within the FP8 error bound of the float64 x_eᵀ g_e of
// the unquantized inputs; ragged groups (empty experts, one expert taking every row, counts of exactly
// 128 and not multiples of it, no rows at all), bf16 and f32 out, the output poisoned (NaN) so an
// unwritten element fails; an e5m2 operand on random codes; bad input as typed errors.
import { checkAttrs, getOp, type Attrs, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, checkGroupedWgrad, decodeElement, paddedOffsets, roundToBf16 } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { firstDiff, runReference as run } from './fp8.js';

const randInt = (n: number) => Math.floor(Math.random() * n);

/** Rows per expert: empty, exactly 128, ragged, or (one) one expert taking them all, or none at all. */
function countsOf(E: number, kind: 'ragged' | 'one' | 'none'): number[] {
  if (kind === 'none') return Array(E).fill(0);
  if (kind === 'one') {
    const c = Array(E).fill(0);
    c[randInt(E)] = 1 + randInt(300);
    return c;
  }
  return Array.from({ length: E }, () => [0, 128, 1 + randInt(127), 129 + randInt(200)][randInt(4)]!);
}

const offsetsOf = (counts: number[]) => Int32Array.from([0, ...counts.map((_, e) => counts.slice(0, e + 1).reduce((a, b) => a + b, 0))]);

/** Random non-zero f32 values, magnitudes over 2^-6 … 2^6 varying per column. */
function values(R: number, C: number): Float64Array {
  const mag = Array.from({ length: C }, () => 2 ** (Math.random() * 12 - 6));
  return Float64Array.from({ length: R * C }, (_, i) => Math.fround((Math.random() * 2 - 1 || 0.5) * mag[i % C]!));
}

const types = (R: number, C: number, E: number): ValueType[] => [{ shape: [R, C], dtype: 'f32' }, { shape: [E + 1], dtype: 'i32' }];

describe('grouped_scaled_matmul_wgrad', () => {
  it("on quantize_kgrouped's codes: the float64 sum of the real rows' dequantized products rounded once, bit for bit, and x_eᵀ g_e within the FP8 error bound", () => {
    const kinds = ['ragged', 'one', 'ragged', 'none', 'ragged', 'one'] as const;
    kinds.forEach((kind, trial) => {
      const E = 1 + randInt(4);
      const [K, N] = [1 + randInt(trial % 2 ? 130 : 20), 1 + randInt(trial % 2 ? 20 : 130)];
      const outDtype = trial % 2 ? 'bf16' : 'f32';
      const counts = countsOf(E, kind);
      const off = offsetsOf(counts);
      const R = off[E]!;
      const P = 128 * (Math.ceil(R / 128) + E);
      const [x, g] = [values(R, K), values(R, N)];
      const [xc, xs] = run('quantize_kgrouped', [x, off], types(R, K, E), { experts: E }) as [Float64Array, Float64Array];
      const [gc, gs] = run('quantize_kgrouped', [g, off], types(R, N, E), { experts: E }) as [Float64Array, Float64Array];
      const wTypes: ValueType[] = [
        { shape: [K, P], dtype: 'f8e4m3' },
        { shape: [P / 128, K], dtype: 'f32' },
        { shape: [N, P], dtype: 'f8e4m3' },
        { shape: [P / 128, N], dtype: 'f32' },
        { shape: [E + 1], dtype: 'i32' },
      ];
      expect(checkGroupedWgrad(wTypes, { experts: E, outDtype })).toEqual({ K, N, P, E, aFormat: 'e4m3', bFormat: 'e4m3', outDtype });
      const [dw] = run('grouped_scaled_matmul_wgrad', [xc, xs, gc, gs, off], wTypes, { experts: E, outDtype }) as [Float64Array];
      expect(dw.length).toBe(E * K * N);
      const where = `trial ${trial} (${kind}, E ${E}, K ${K}, N ${N}, counts ${counts.join(' ')}, ${outDtype})`;
      const round = outDtype === 'f32' ? Math.fround : roundToBf16;
      const q = paddedOffsets(off, E);
      const e4m3 = (c: number) => decodeElement(ELEMENTS.e4m3, c);
      // The dequantized value of row r (expert e's i-th) and column k of an operand.
      const deq = (codes: Float64Array, scales: Float64Array, C: number, e: number, r: number, k: number) => {
        const p = q[e]! + r - off[e]!;
        return e4m3(codes[k * P + p]!) * scales[Math.floor(p / 128) * C + k]!;
      };
      // The FP8 error of a value v in a block of scale s: |Q(v) − v| <= (2^-4 + 2^-22)·|v| + 2^-10·s
      // (E4M3's half step relative to a normal, 2^-10 of the scale for a subnormal, f32 roundings of
      // v · mul and 1 / mul); products err by ex·|g| + |x|·eg + ex·eg; the output rounding adds
      // 2^-9 (bf16) or 2^-24 (f32) of the result.
      const u = outDtype === 'bf16' ? 2 ** -9 : 2 ** -24;
      const err = (v: number, s: number) => (2 ** -4 + 2 ** -22) * Math.abs(v) + 2 ** -10 * s;
      let [num, den] = [0, 0];
      for (let e = 0; e < E; e++)
        for (let k = 0; k < K; k++)
          for (let n = 0; n < N; n++) {
            let [s, exact, bound] = [0, 0, 0];
            for (let r = off[e]!; r < off[e + 1]!; r++) {
              s += deq(xc, xs, K, e, r, k) * deq(gc, gs, N, e, r, n);
              const [xv, gv] = [x[r * K + k]!, g[r * N + n]!];
              exact += xv * gv;
              const p = q[e]! + r - off[e]!;
              const [ex, eg] = [err(xv, xs[Math.floor(p / 128) * K + k]!), err(gv, gs[Math.floor(p / 128) * N + n]!)];
              bound += ex * Math.abs(gv) + Math.abs(xv) * eg + ex * eg;
            }
            const got = dw[(e * K + k) * N + n]!;
            if (!Object.is(got, round(s))) expect(got, `${where} dw[${e}, ${k}, ${n}] against the dequantized sum`).toBe(round(s));
            const tol = bound * (1 + 2 * u) + u * Math.abs(exact) + 1e-12 * bound;
            if (!(Math.abs(got - exact) <= tol)) expect(Math.abs(got - exact), `${where} dw[${e}, ${k}, ${n}] = ${got} against x_eᵀ g_e = ${exact}`).toBeLessThanOrEqual(tol);
            [num, den] = [num + (got - exact) ** 2, den + exact ** 2];
          }
      // Experts with no rows: zeros. And the error is there, but small (not a vacuous bound).
      for (let e = 0; e < E; e++) if (counts[e] === 0) expect(dw.subarray(e * K * N, (e + 1) * K * N).every((v) => Object.is(v, 0)), `${where} expert ${e}`).toBe(true);
      if (R > 0) {
        expect(Math.sqrt(num / den), where).toBeGreaterThan(0);
        expect(Math.sqrt(num / den), where).toBeLessThan(0.1);
      }
    });
  });

  it('an e5m2 operand, random codes and scales: the float64 sum over each padded segment, rounded once', () => {
    for (const [af, bf] of [['f8e5m2', 'f8e4m3'], ['f8e4m3', 'f8e5m2']] as const) {
      const E = 3;
      const counts = [130, 0, 40];
      const off = offsetsOf(counts);
      const [K, N, P] = [7, 5, 128 * 5]; // q_E = 384: one spare block of P's 4 + 1
      // Random finite codes (no NaN / Inf); the padding's too (the op sums the whole padded segment).
      const codes = (f: string, n: number) => Float64Array.from({ length: n }, () => {
        for (;;) {
          const c = randInt(256);
          if (f === 'f8e4m3' ? (c & 0x7f) !== 0x7f : (c & 0x7c) !== 0x7c) return c;
        }
      });
      const [a, b] = [codes(af, K * P), codes(bf, N * P)];
      const [as, bs] = [Float64Array.from({ length: 5 * K }, () => Math.fround(2 ** (Math.random() * 8 - 4))), Float64Array.from({ length: 5 * N }, () => Math.fround(2 ** (Math.random() * 8 - 4)))];
      const t: ValueType[] = [{ shape: [K, P], dtype: af }, { shape: [5, K], dtype: 'f32' }, { shape: [N, P], dtype: bf }, { shape: [5, N], dtype: 'f32' }, { shape: [E + 1], dtype: 'i32' }];
      const [dw] = run('grouped_scaled_matmul_wgrad', [a, as, b, bs, off], t, { experts: E });
      const dec = (f: string, c: number) => decodeElement(f === 'f8e5m2' ? ELEMENTS.e5m2 : ELEMENTS.e4m3, c);
      const q = [0, 256, 256, 384];
      const want = new Float64Array(E * K * N);
      for (let e = 0; e < E; e++)
        for (let k = 0; k < K; k++)
          for (let n = 0; n < N; n++) {
            let s = 0;
            for (let p = q[e]!; p < q[e + 1]!; p++) s += dec(af, a[k * P + p]!) * as[Math.floor(p / 128) * K + k]! * (dec(bf, b[n * P + p]!) * bs[Math.floor(p / 128) * N + n]!);
            want[(e * K + k) * N + n] = Math.fround(s);
          }
      expect(firstDiff(dw!, want), `${af} × ${bf}`).toBe(-1);
      expect(getOp('grouped_scaled_matmul_wgrad').flops!(t, [], { experts: E, outDtype: 'f32' })).toBe(2 * K * N * P);
    }
  });

  it('bad input gives typed errors naming the argument', () => {
    const [K, N, P, E] = [3, 2, 256, 2];
    const t = (over: Partial<Record<number, ValueType>> = {}): ValueType[] =>
      [
        { shape: [K, P], dtype: 'f8e4m3' },
        { shape: [P / 128, K], dtype: 'f32' },
        { shape: [N, P], dtype: 'f8e4m3' },
        { shape: [P / 128, N], dtype: 'f32' },
        { shape: [E + 1], dtype: 'i32' },
      ].map((v, i) => over[i] ?? v) as ValueType[];
    const op = getOp('grouped_scaled_matmul_wgrad');
    const infer = (ts: ValueType[], attrs: Attrs = { experts: E }) => errorOf(() => op.infer(ts, checkAttrs(op, attrs)));
    expect(op.infer(t(), checkAttrs(op, { experts: E }))).toEqual([{ shape: [E, K, N], dtype: 'f32' }]);
    expect(op.infer(t(), checkAttrs(op, { experts: E, outDtype: 'bf16' }))).toEqual([{ shape: [E, K, N], dtype: 'bf16' }]);
    const cases: [ValueType[], Attrs, string, RegExp][] = [
      [t({ 0: { shape: [K, P], dtype: 'bf16' } }), { experts: E }, 'INVALID_DTYPE', /Expected f8e4m3 or f8e5m2 codes for input 'a' but received bf16\[3, 256\]/],
      [t({ 2: { shape: [N, P], dtype: 'f32' } }), { experts: E }, 'INVALID_DTYPE', /Expected f8e4m3 or f8e5m2 codes for input 'b'/],
      [t({ 0: { shape: [K, P, 1], dtype: 'f8e4m3' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected a rank-2 tensor \[K, P\] .* for input 'a'/],
      [t({ 2: { shape: [N * P], dtype: 'f8e4m3' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected a rank-2 tensor \[N, P\] .* for input 'b'/],
      [t({ 0: { shape: [K, P], dtype: 'f8e5m2' }, 2: { shape: [N, P], dtype: 'f8e5m2' } }), { experts: E }, 'INVALID_DTYPE', /Expected at most one f8e5m2 operand .* for both 'a' and 'b'/],
      [t({ 2: { shape: [N, 128], dtype: 'f8e4m3' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected input 'b' with P = 256 positions \(a's\)/],
      [t({ 0: { shape: [K, 200], dtype: 'f8e4m3' }, 2: { shape: [N, 200], dtype: 'f8e4m3' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected P a positive multiple of 128 .* but received P = 200/],
      [t({ 0: { shape: [K, 0], dtype: 'f8e4m3' }, 2: { shape: [N, 0], dtype: 'f8e4m3' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected P a positive multiple of 128/],
      [t({ 0: { shape: [0, P], dtype: 'f8e4m3' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected K and N >= 1/],
      [t({ 1: { shape: [K, P / 128], dtype: 'f32' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected f32\[2, 3\] .* for input 'aScale' but received f32\[3, 2\]/],
      [t({ 3: { shape: [P / 128, N], dtype: 'bf16' } }), { experts: E }, 'INVALID_DTYPE', /Expected f32\[2, 2\] .* for input 'bScale' but received bf16\[2, 2\]/],
      [t({ 4: { shape: [E], dtype: 'i32' } }), { experts: E }, 'SHAPE_MISMATCH', /Expected i32\[3\] \(one more than the 2 experts\) for input 'offsets' but received i32\[2\]/],
      [t({ 4: { shape: [E + 1], dtype: 'f32' } }), { experts: E }, 'INVALID_DTYPE', /for input 'offsets' but received f32\[3\]/],
      [t(), { experts: 3 }, 'SHAPE_MISMATCH', /Expected i32\[4\] \(one more than the 3 experts\)/],
      [t(), {}, 'INVALID_ARGUMENT', /Expected a value for attribute 'experts' of grouped_scaled_matmul_wgrad/],
      [t(), { experts: E, outDtype: 'f16' }, 'INVALID_ARGUMENT', /Expected one of 'bf16', 'f32' for attribute 'outDtype'/],
      [t().slice(0, 4), { experts: E }, 'INVALID_ARGUMENT', /Expected 5 inputs \(a, aScale, b, bScale, offsets\) but received 4/],
    ];
    for (const [ts, attrs, code, message] of cases) {
      const e = infer(ts, attrs);
      expect([e.code, e.message], String(message)).toEqual([code, expect.stringMatching(message)]);
      expect(e.message).toMatch(/^grouped_scaled_matmul_wgrad: |for attribute/);
    }
    // The exported check, given junk: typed errors, never a TypeError.
    for (const [inTypes, attrs] of [[null, { experts: 1 }], [t(), null], [t(), { experts: 0 }], [t(), { experts: 2n }], ['abc', {}], [[1, 2, 3, 4, 5], { experts: 1 }]] as const) {
      expect(errorOf(() => checkGroupedWgrad(inTypes as never, attrs as never)).code).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => checkGroupedWgrad(t(), { experts: E, outDtype: 'f64' })).message).toMatch(/Expected 'bf16' or 'f32' for attribute 'outDtype' but received "f64"/);
    // At run time: offsets against grouped_matmul's rules, and codes too short for the padded rows.
    const data = [new Float64Array(K * P), new Float64Array((P / 128) * K).fill(1), new Float64Array(N * P), new Float64Array((P / 128) * N).fill(1)];
    const runWith = (off: number[]) => errorOf(() => run('grouped_scaled_matmul_wgrad', [...data, Int32Array.from(off)], t(), { experts: E }));
    let e = runWith([0, 5, 3]);
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/^grouped_scaled_matmul_wgrad: Expected an integer in \[offsets\[1\] = 5, 2147483647\] \(offsets never decrease\) for offsets\[2\] but received 3/)]);
    expect(runWith([1, 5, 6]).message).toMatch(/Expected 0 \(the first expert starts at row 0\) for offsets\[0\] but received 1/);
    e = runWith([0, 129, 130]); // 256 + 128 padded positions, P = 256
    expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/Expected codes holding the experts' 384 padded positions .* but received P = 256 positions in inputs 'a' and 'b' \(too few\)/)]);
    expect(run('grouped_scaled_matmul_wgrad', [...data, Int32Array.of(0, 128, 256)], t(), { experts: E })[0]!.every((v) => v === 0)).toBe(true);
    expect(errorOf(() => run('grouped_scaled_matmul_wgrad', [data[0]!.map(() => 256), ...data.slice(1), Int32Array.of(0, 1, 2)], t(), { experts: E })).message).toMatch(/Expected FP8 codes/);
    expect(op.gradient).toBeUndefined();
  });
});
