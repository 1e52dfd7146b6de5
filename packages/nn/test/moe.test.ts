// MoE's routings on the CPU reference: dropless MoE against a per-token loop over the chosen
// experts (GELU and SwiGLU experts, with and without shared experts), capacity routing with room
// for every choice giving the same output, and the options' typed errors.
import { add, capture, differentiate, interpret, mul, reshape, sum } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import { MoE, type MoEOptions } from '../src/index.js';

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
const geluOf = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
const siluOf = (v: number) => v / (1 + Math.exp(-v));

/** The MoE's y and aux for x (f64 reference), and the parameter values it ran with, by name. */
function run(moe: MoE, B: number, T: number, x: Float64Array) {
  const g = capture({ forward: ({ x: xs }) => moe.forward(xs!) }, { x: { shape: [B, T, moe.dim] } });
  const params: Record<string, Float64Array> = {};
  for (const [name, id] of Object.entries(g.params)) params[name] = randn(g.values[id]!.type.shape.reduce((a, b) => a * b, 1)).map((v) => v * 0.5);
  const vals = interpret(g, { x, ...params }, { precision: 'f64' });
  return { y: vals[g.outputs.y!]!, aux: vals[g.outputs.aux!]![0]!, params };
}

/** The MoE written as a loop: each token through its top-k experts (and the shared ones), weighted by the router's probabilities. */
function perToken(moe: MoE, x: Float64Array, N: number, params: Record<string, Float64Array>): Float64Array {
  const [D, H, E, k] = [moe.dim, moe.hidden, moe.experts, moe.topK];
  const p = (suffix: string) => params[Object.keys(params).find((n) => n.endsWith(suffix))!]!;
  const [wr, w1, w2] = [p('router.weight'), p('w1'), p('w2')];
  const w3 = moe.activation === 'swiglu' ? p('w3') : null;
  const y = new Float64Array(N * D);
  const act = (gate: number, up: number) => (w3 ? siluOf(gate) * up : geluOf(gate));
  for (let n = 0; n < N; n++) {
    const xn = x.subarray(n * D, (n + 1) * D);
    const logits = Array.from({ length: E }, (_, e) => xn.reduce((a, v, d) => a + v * wr[e * D + d]!, 0));
    const top = Math.max(...logits);
    const z = logits.reduce((a, l) => a + Math.exp(l - top), 0);
    const probs = logits.map((l) => Math.exp(l - top) / z);
    // Top-k by repeated selection of the strict maximum (ties to the lower index).
    const taken = new Set<number>();
    for (let j = 0; j < k; j++) {
      let best = -1;
      for (let e = 0; e < E; e++) if (!taken.has(e) && (best < 0 || probs[e]! > probs[best]!)) best = e;
      taken.add(best);
      const hid = Array.from({ length: H }, (_, c) => {
        const dot = (w: Float64Array) => xn.reduce((a, v, d) => a + v * w[(best * D + d) * H + c]!, 0);
        return act(dot(w1), w3 ? dot(w3) : 0);
      });
      for (let d = 0; d < D; d++) y[n * D + d]! += probs[best]! * hid.reduce((a, h, c) => a + h * w2[(best * H + c) * D + d]!, 0);
    }
    if (moe.shared) {
      // The shared experts: a dense MLP (Linear weights [out, in], no bias).
      const S = moe.shared.hidden;
      const [fc, proj] = [p('shared.fc.weight'), p('shared.proj.weight')];
      const up = w3 ? p('shared.up.weight') : null;
      const hid = Array.from({ length: S }, (_, c) => {
        const dot = (w: Float64Array) => xn.reduce((a, v, d) => a + v * w[c * D + d]!, 0);
        return act(dot(fc), up ? dot(up) : 0);
      });
      for (let d = 0; d < D; d++) y[n * D + d]! += hid.reduce((a, h, c) => a + h * proj[d * S + c]!, 0);
    }
  }
  return y;
}

describe('MoE', () => {
  it("dropless: equals a per-token loop over the chosen experts (GELU and SwiGLU experts, shared experts or none)", () => {
    for (let trial = 0; trial < 6; trial++) {
      const [B, T, D, H, E] = [randInt(1, 3), randInt(1, 5), randInt(2, 6), randInt(1, 6), randInt(2, 5)];
      const options: MoEOptions = { experts: E, topK: randInt(1, E), routing: 'dropless', activation: trial % 2 ? 'swiglu' : 'gelu', sharedExperts: trial % 3 === 0 ? randInt(1, 2) : 0 };
      const moe = new MoE(D, H, options);
      const x = randn(B * T * D);
      const { y, params } = run(moe, B, T, x);
      const want = perToken(moe, x, B * T, params);
      for (let i = 0; i < want.length; i++) expect(Math.abs(y[i]! - want[i]!), `${JSON.stringify(options)} element ${i}`).toBeLessThan(1e-10 * (1 + Math.abs(want[i]!)));
    }
  });

  it('capacity routing with room for every choice gives the dropless output, bit for bit in f64 order aside', () => {
    for (let trial = 0; trial < 3; trial++) {
      const [B, T, D, H, E] = [2, randInt(2, 5), 4, 3, randInt(2, 4)];
      const topK = randInt(1, E);
      const x = randn(B * T * D);
      // capacityFactor experts / topK: C = every token, nothing dropped.
      const cap = new MoE(D, H, { experts: E, topK, capacityFactor: E / topK });
      const { y: yc, params } = run(cap, B, T, x);
      const want = perToken(cap, x, B * T, params);
      for (let i = 0; i < want.length; i++) expect(Math.abs(yc[i]! - want[i]!)).toBeLessThan(1e-10 * (1 + Math.abs(want[i]!)));
    }
  });

  it("dropless and capacity routing with room for every choice give the same gradients (moe_permute / moe_unpermute's rules against gather_rows / scatter_add_rows')", () => {
    for (let trial = 0; trial < 3; trial++) {
      const [B, T, D, H, E] = [2, randInt(2, 4), 3, 2, randInt(2, 4)];
      const topK = randInt(1, E);
      const activation = trial % 2 ? 'swiglu' : 'gelu';
      const x = randn(B * T * D);
      const r = randn(B * T * D);
      const grads = (moe: MoE, params?: Record<string, Float64Array>) => {
        const g = capture({ forward: ({ x: xs, r: rs }) => {
          const { y, aux } = moe.forward(xs!);
          return { loss: add(sum(mul(y, rs!), []), reshape(aux, [])) };
        } }, { x: { shape: [B, T, D] }, r: { shape: [B, T, D] } });
        // Every parameter's gradient and the input's (moe_permute's own rule).
        const wrt: [string, number][] = [...Object.entries(g.params), ['(input x)', g.inputs.x!]];
        const d = differentiate(g, g.outputs.loss!, wrt.map(([, id]) => id));
        const size = (id: number) => g.values[id]!.type.shape.reduce((a, b) => a * b, 1);
        const p = params ?? Object.fromEntries(Object.entries(g.params).map(([n, id]) => [n, randn(size(id)).map((v) => v * 0.5)]));
        const vals = interpret(g, { x, r, ...p }, { precision: 'f64' });
        return { p, byName: Object.fromEntries(wrt.map(([n, id]) => [n, vals[d.get(id)!]!])) };
      };
      const drop = grads(new MoE(D, H, { experts: E, topK, routing: 'dropless', activation }));
      const cap = grads(new MoE(D, H, { experts: E, topK, capacityFactor: E / topK, activation }), drop.p);
      for (const [name, g] of Object.entries(drop.byName)) {
        const want = cap.byName[name]!;
        expect(g.length, name).toBe(want.length);
        for (let i = 0; i < g.length; i++) expect(Math.abs(g[i]! - want[i]!), `${name} [${i}]: ${g[i]} vs ${want[i]}`).toBeLessThan(1e-10 * (1 + Math.abs(want[i]!)));
      }
    }
  });

  it('refuses bad options with typed errors', () => {
    const bad: unknown[] = [
      { experts: 4, topK: 2, routing: 'token-choice' },
      { experts: 4, topK: 2, routing: 'dropless', capacityFactor: 2 },
      { experts: 4, topK: 2, activation: 'relu' },
      { experts: 4, topK: 2, sharedExperts: -1 },
      { experts: 4, topK: 2, sharedExperts: 1.5 },
      { experts: 4, topK: 5, routing: 'dropless' },
    ];
    for (const o of bad) expect(errorOf(() => new MoE(8, 4, o as MoEOptions)).code, JSON.stringify(o)).toBe('INVALID_ARGUMENT');
    expect(new MoE(8, 4, { experts: 4, topK: 2, routing: 'dropless', activation: 'swiglu', sharedExperts: 1 }).namedParameters().map(([n]) => n).sort()).toEqual(
      ['router.weight', 'shared.fc.weight', 'shared.proj.weight', 'shared.up.weight', 'w1', 'w2', 'w3'].sort(),
    );
  });
});
