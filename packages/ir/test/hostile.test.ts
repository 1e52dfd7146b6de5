// Bad input never corrupts, hangs or lies (issue 20): each defect a fuzz run found in ir, as a case
// that failed before its fix. Every refusal must be a DeepwellError, and most name what was wrong.
import { getBackend } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  Graph,
  axisOf,
  GraphBuilder,
  adamw,
  capture,
  compile,
  crossEntropy,
  currentBuilder,
  dryrun,
  eager,
  gelu,
  gradcheck,
  initialValues,
  interpret,
  matmul,
  runPasses,
  trainingStep,
  type Capturable,
  type GraphJSON,
  type Sym,
} from '../src/index.js';
import { errorOf, randInt, randn } from './helpers.js';

class MLP implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const w1 = b.param('w1', [8, 5], 'f32', { dist: 'normal', scale: 0.5 });
    const w2 = b.param('w2', [4, 8], 'f32', { dist: 'normal', scale: 0.5 });
    return { loss: crossEntropy(matmul(gelu(matmul(x!, w1, { transB: true })), w2, { transB: true }), y!) };
  }
}

const N = randInt(2, 5);
const forward = () => capture(new MLP(), { x: { shape: [N, 5] }, y: { shape: [N], dtype: 'i32' } });
const batch = () => ({ x: Float32Array.from(randn(N * 5)), y: Int32Array.from({ length: N }, () => randInt(0, 3)) });
/** A training step's document, copied so a test may damage it. */
const doc = (): GraphJSON => JSON.parse(JSON.stringify(trainingStep(forward()).toJSON())) as GraphJSON;

describe('Graph.fromJSON validates the whole document up front', () => {
  const cases: [string, (j: any) => void, RegExp][] = [
    ['a null node', (j) => (j.nodes[3] = null), /nodes\[3\]/],
    ['a null value', (j) => (j.values[2] = null), /values\[2\]/],
    ['null inputs of a node', (j) => (j.nodes[1].inputs = null), /nodes\[1\]\.inputs/],
    ['a node input that is no value', (j) => (j.nodes[3].inputs[1] = 100000), /nodes\[3\]\.inputs\[1\]/],
    ['a node input that is a string', (j) => (j.nodes[0].inputs[0] = '0'), /nodes\[0\]\.inputs\[0\]/],
    ['a value without a type', (j) => delete j.values[1].type, /values\[1\]\.type/],
    ['a shape that is no array', (j) => (j.values[0].type.shape = 5), /values\[0\]\.type\.shape/],
    ['a negative size', (j) => (j.values[0].type.shape = [-2, 5]), /values\[0\]\.type\.shape/],
    ['an unknown dtype', (j) => (j.values[0].type.dtype = 'f99'), /values\[0\]\.type\.dtype/],
    ['a params entry at a missing value', (j) => (j.params.w1 = 99999), /params\.w1/],
    ['a params entry at an input', (j) => (j.params.w1 = j.inputs.x), /params\.w1/],
    ['an inputs entry at a parameter', (j) => (j.inputs.x = j.params.w1), /inputs\.x/],
    ['a deleted params entry', (j) => delete j.params.w2, /w2/],
    ['a deleted state entry', (j) => delete j.state['adamw.m.w1'], /adamw\.m\.w1/],
    ['an output at a missing value', (j) => (j.outputs.loss = -1), /outputs\.loss/],
    ['a gradient of no parameter', (j) => (j.gradients.nope = 0), /gradients\.nope/],
    ['an init of no parameter or state', (j) => (j.init.nope = { dist: 'zeros' }), /init\.nope/],
    ['a bogus init dist', (j) => (j.init.w1 = { dist: 'gaussian' }), /init\.w1\.dist/],
    ['a non-finite init scale', (j) => (j.init.w1 = { dist: 'normal', scale: null }), /init\.w1\.scale/],
    ['an unknown op', (j) => (j.nodes[2].op = 'nope'), /nodes\[2\]\.op/],
    ['null attrs', (j) => (j.nodes[2].attrs = null), /nodes\[2\]\.attrs/],
    ['a non-string scope', (j) => (j.nodes[2].scope = 7), /nodes\[2\]\.scope/],
    ['a null outputs table', (j) => (j.outputs = null), /outputs/],
    ['a value id out of place', (j) => (j.values[4].id = 5), /values\[4\]\.id/],
  ];
  for (const [what, damage, path] of cases) {
    it(`refuses ${what}, naming where`, () => {
      const j = doc();
      damage(j);
      const e = errorOf(() => Graph.fromJSON(j));
      expect(e.code).toMatch(/INVALID_ARGUMENT|INVALID_DTYPE|SHAPE_MISMATCH/);
      expect(e.message).toMatch(path);
    });
  }

  it('still loads every valid document (and what it loads compiles)', () => {
    const g = Graph.fromJSON(doc());
    const exe = compile(g, { seed: 3 });
    try {
      const out = exe.run({ ...batch(), lr: Float32Array.of(1e-3), step: Float32Array.of(1) });
      expect(Number.isFinite(out.loss![0]!)).toBe(true);
    } finally {
      exe.dispose();
    }
  });
});

describe('initialValues', () => {
  it('refuses an unknown dist instead of giving zeros', () => {
    expect(errorOf(() => initialValues({ dist: 'gaussian' } as never, 8, 0, 'w')).message).toMatch(/dist/);
    expect(errorOf(() => initialValues({ dist: 'normal', scale: NaN }, 8, 0, 'w')).message).toMatch(/scale/);
  });
  it('refuses a bogus init when a parameter is declared', () => {
    const b = new GraphBuilder();
    expect(errorOf(() => b.param('w', [2, 2], 'f32', { dist: 'gaussian' } as never)).message).toMatch(/dist/);
  });
});

describe('capture', () => {
  it('refuses a forward that returns a Sym of an earlier capture', () => {
    let stale: Sym | null = null;
    capture({ forward: ({ x }) => (stale = gelu(x!)) }, { x: { shape: [2, 3] } });
    const e = errorOf(() => capture({ forward: ({ x }) => (gelu(x!), stale!) }, { x: { shape: [2, 3] } }));
    expect(e.message).toMatch(/out/);
    const f = errorOf(() => capture({ forward: ({ x }) => ({ y: gelu(x!), z: stale! }) }, { x: { shape: [2, 3] } }));
    expect(f.message).toMatch(/'z'/);
  });
  it('refuses an async forward', () => {
    const model = { forward: async ({ x }: Record<string, Sym>) => gelu(x!) } as unknown as Capturable;
    expect(errorOf(() => capture(model, { x: { shape: [2, 3] } })).message).toMatch(/Promise|async/);
  });
  it('refuses a forward that returns something else', () => {
    expect(errorOf(() => capture({ forward: () => 3 as never }, { x: { shape: [2, 3] } })).code).toBe('INVALID_ARGUMENT');
  });
  it('refuses unknown keys of an input spec', () => {
    expect(errorOf(() => capture({ forward: ({ x }) => gelu(x!) }, { x: { shape: [2, 3], dtyp: 'f32' } as never })).message).toMatch(/dtyp.*dtype/);
  });
});

describe('attributes are checked when the graph is built', () => {
  it('refuses negative target shapes in broadcast_to and sum_to', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [1], 'f32');
    const y = b.input('y', [3, 2], 'f32');
    expect(errorOf(() => b.op('broadcast_to', [x], { shape: [-1] })).message).toMatch(/shape/);
    expect(errorOf(() => b.op('broadcast_to', [x], { shape: [-3, 2] })).message).toMatch(/shape/);
    expect(errorOf(() => b.op('sum_to', [y], { shape: [-1, 2] })).message).toMatch(/shape/);
  });
  it('refuses integer attributes past 2^53', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 6], 'f32');
    expect(errorOf(() => b.op('slice', [x], { axis: 1, start: 0, end: 2 ** 53 + 2 })).message).toMatch(/end/);
    expect(errorOf(() => b.op('transpose', [x], { perm: [1, 2 ** 60] })).message).toMatch(/perm/);
    expect(errorOf(() => b.op('one_hot', [b.input('i', [3], 'i32')], { classes: 1e300 })).message).toMatch(/classes/);
  });
  it('refuses a null attribute instead of taking its default (a NaN written to JSON reads back as null)', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3], 'f32');
    expect(errorOf(() => b.op('causal_mask', [x], { value: null } as never)).message).toMatch(/value/);
    expect(errorOf(() => b.op('matmul', [x, b.input('w', [3, 2], 'f32')], { transA: null } as never)).message).toMatch(/transA/);
    const j = JSON.parse(JSON.stringify(doc()));
    const n = j.nodes.find((m: { op: string }) => m.op === 'adamw');
    n.attrs.eps = null;
    expect(errorOf(() => Graph.fromJSON(j)).message).toMatch(/eps/);
  });
  it('refuses null attrs or inputs with a typed error', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3], 'f32');
    expect(errorOf(() => b.op('gelu', [x], null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => b.op('gelu', null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => b.op('gelu', [x], [] as never)).code).toBe('INVALID_ARGUMENT');
  });
});

describe('trainingStep options', () => {
  it('refuses a huge accumulate at once (no hang)', () => {
    const t = performance.now();
    expect(errorOf(() => trainingStep(forward(), { accumulate: 2 ** 31 })).message).toMatch(/accumulate/);
    expect(performance.now() - t).toBeLessThan(1000);
  });
  it('refuses unknown option keys, with a hint', () => {
    expect(errorOf(() => trainingStep(forward(), { acumulate: 2 } as never)).message).toMatch(/acumulate.*accumulate/);
    expect(errorOf(() => trainingStep(forward(), { optimizer: { beta: 0.9 } } as never)).message).toMatch(/beta/);
    expect(errorOf(() => trainingStep(forward(), null as never)).code).toBe('INVALID_ARGUMENT');
  });
  it('refuses AdamW hyperparameters outside their ranges', () => {
    for (const optimizer of [{ beta1: 1 }, { beta1: -0.1 }, { beta1: NaN }, { beta2: 1 }, { beta2: -0.5 }, { eps: -1e-8 }, { eps: Infinity }, { weightDecay: Infinity }, { weightDecay: -0.1 }, { decay: 3 }]) {
      const e = errorOf(() => trainingStep(forward(), { optimizer } as never));
      expect(e.message).toMatch(new RegExp(Object.keys(optimizer)[0]!));
    }
    const b = new GraphBuilder();
    const p = b.param('p', [3], 'f32', { dist: 'zeros' });
    const s = b.input('s', [1], 'f32');
    expect(errorOf(() => adamw(p, p, p, p, s, s, { beta1: 1 })).message).toMatch(/beta1/);
    expect(errorOf(() => b.op('adamw', [p, p, p, p, s, s], { beta2: 1.5 })).message).toMatch(/beta2/);
  });
  it('refuses a clipGradNorm or loss name of the wrong type', () => {
    expect(errorOf(() => trainingStep(forward(), { clipGradNorm: NaN })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => trainingStep(forward(), { loss: 3 } as never)).code).toBe('INVALID_ARGUMENT');
  });
});

describe('a training step refuses a learning rate or step that is not finite', () => {
  const step = trainingStep(forward());
  it('compiled', () => {
    const exe = compile(step, { seed: 1 });
    try {
      const before = exe.get('w1');
      for (const lr of [NaN, Infinity, -Infinity, -1]) {
        const e = errorOf(() => exe.run({ ...batch(), lr: Float32Array.of(lr), step: Float32Array.of(1) }));
        expect(e.message).toMatch(/'lr'/);
      }
      expect(errorOf(() => exe.run({ ...batch(), lr: Float32Array.of(1e-3), step: Float32Array.of(NaN) })).message).toMatch(/'step'/);
      // Nothing ran: the weights are as they were.
      expect(exe.get('w1')).toEqual(before);
      expect(exe.steps).toBe(0);
    } finally {
      exe.dispose();
    }
  });
  it('interpreted', () => {
    const bind: Record<string, Float32Array | Int32Array> = { ...batch(), lr: Float32Array.of(NaN), step: Float32Array.of(1) };
    for (const [name, id] of [...Object.entries(step.params), ...Object.entries(step.state)]) bind[name] = new Float32Array(step.values[id]!.type.shape.reduce((a, b) => a * b, 1)).fill(0.5);
    expect(errorOf(() => interpret(step, bind)).message).toMatch(/lr/);
  });
});

describe('sizes are checked before anything is allocated', () => {
  it('interpret of fill [2^31] is refused at once', () => {
    const b = new GraphBuilder();
    b.output('y', b.op1('fill', [], { shape: [2 ** 31], value: 1 }));
    const t = performance.now();
    expect(errorOf(() => interpret(b.graph, {})).message).toMatch(/elements/);
    expect(performance.now() - t).toBeLessThan(1000);
  });
  it('compile on the CPU refuses a step past the host memory limit before allocating', () => {
    const b = new GraphBuilder();
    // 2 GiB of parameter and 2 GiB of arena, and one element more: core's CPU backend would
    // allocate it, then draw 2^29 normals, all before the first step.
    const w = b.param('w', [2 ** 29 + 1], 'f32', { dist: 'normal' });
    b.output('y', gelu(w));
    const before = getBackend('cpu').memoryStats().inUse;
    const t = performance.now();
    expect(errorOf(() => compile(b.graph)).code).toBe('OUT_OF_MEMORY');
    expect(performance.now() - t).toBeLessThan(1000);
    expect(getBackend('cpu').memoryStats().inUse).toBe(before);
  });
});

describe('dryrun rates', () => {
  for (const [k, v] of [['peakTflops', 0], ['peakTflops', -1], ['peakTflops', NaN], ['memoryGBps', 0], ['memoryGBps', Infinity], ['memoryGBps', -5]] as const) {
    it(`refuses ${k} ${v}`, () => {
      expect(errorOf(() => dryrun(forward(), { peakTflops: 10, memoryGBps: 100, [k]: v })).message).toMatch(new RegExp(k));
    });
  }
  it('still estimates from good rates', () => {
    const r = dryrun(forward(), { peakTflops: 10, memoryGBps: 100 });
    expect(r.estimate.ms).toBeGreaterThan(0);
  });
});

describe('a compile that fails late frees what it allocated', () => {
  it('on the CPU', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [64, 64], 'f32', { dist: 'normal' });
    // A bf16 parameter is refused after 'w' has been allocated and initialised.
    const h = b.param('h', [64, 64], 'bf16', { dist: 'normal' });
    b.output('y', gelu(w));
    b.output('z', gelu(h));
    const cpu = getBackend('cpu');
    const before = cpu.memoryStats();
    expect(errorOf(() => compile(b.graph)).code).toBe('INVALID_DTYPE');
    const after = cpu.memoryStats();
    expect(after.inUse).toBe(before.inUse);
    expect(after.allocations).toBe(before.allocations);
  });
});

describe('options of every public entry point', () => {
  const g = forward();
  it('refuses unknown keys', () => {
    expect(errorOf(() => compile(g, { sede: 1 } as never)).message).toMatch(/sede.*seed/);
    expect(errorOf(() => dryrun(g, { peakTflop: 1 } as never)).message).toMatch(/peakTflop/);
    expect(errorOf(() => interpret(g, {}, { precison: 'f64' } as never)).message).toMatch(/precison/);
    expect(errorOf(() => eager({ forward: ({ x }) => gelu(x!) }, { x: { shape: [2], data: new Float32Array(2) } }, { sed: 1 } as never)).message).toMatch(/sed/);
    expect(errorOf(() => runPasses(g, { fusee: false } as never)).message).toMatch(/fusee/);
    expect(errorOf(() => gradcheck('gelu', [{ shape: [3] }], {}, { tol: 1e-6, epsilon: 1 } as never)).message).toMatch(/epsilon/);
  });
  it("refuses a precision that is not a graph pass ('fp16')", () => {
    expect(errorOf(() => compile(g, { precision: 'fp16' } as never)).message).toMatch(/precision/);
    expect(errorOf(() => dryrun(g, { precision: 'fp16' } as never)).message).toMatch(/precision/);
    expect(errorOf(() => runPasses(g, { precision: 'bf16' } as never)).message).toMatch(/precision/);
    expect(errorOf(() => interpret(g, {}, { precision: 'fp16' } as never)).message).toMatch(/precision/);
  });
  it('refuses null where a device or precision name goes (not the default)', () => {
    expect(errorOf(() => dryrun(g, { device: null } as never)).message).toMatch(/device/);
    expect(errorOf(() => interpret(g, {}, { precision: null } as never)).message).toMatch(/precision/);
  });
  it('refuses a seed, device or flag of the wrong type', () => {
    expect(errorOf(() => compile(g, { seed: 1.5 })).message).toMatch(/seed/);
    expect(errorOf(() => compile(g, { seed: NaN })).message).toMatch(/seed/);
    expect(errorOf(() => compile(g, { device: 7 } as never)).message).toMatch(/device/);
    expect(errorOf(() => compile(g, { fuse: 'no' } as never)).message).toMatch(/fuse/);
  });
});

describe('axisOf with junk (found by the fuzz suite)', () => {
  it('a rank or op that is no number or string is a DeepwellError, not a TypeError from the arithmetic', () => {
    const rank = randInt(1, 6);
    expect(axisOf('sum', -1, rank)).toBe(rank - 1);
    for (const [op, axis, r] of [[Map, -(2 ** 31), Object.create(null)], ['sum', -1, Object.create(null)], [{}, 0, 2]] as const) {
      const e = errorOf(() => axisOf(op as never, axis, r as never));
      expect(e.name).toBe('DeepwellError');
      expect(e.message).toMatch(/axisOf/);
    }
  });
});
