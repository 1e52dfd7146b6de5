// The op as a unit: an op defined outside the standard set, its gradient given with it or later
// through defineGradient, and the errors of giving a rule twice or to an op that does not exist.
import { describe, expect, it } from 'vitest';
import { GraphBuilder, bytesMoved, defineGradient, defineOp, differentiableOps, differentiate, gradientRule, mul, scale, type GradRule, type Sym } from '../src/index.js';
import { errorOf, gradcheck } from './helpers.js';

/** An elementwise op y = x³ with no gradient rule of its own. */
const cubeOp = defineOp({
  name: 'test_cube',
  doc: 'y = x^3',
  inputs: ['x'],
  outputs: ['y'],
  attrs: {},
  infer: ([x]) => [x!],
  reference: ({ inputs: [x], outputs: [y] }) => {
    for (let i = 0; i < x!.length; i++) y![i] = x![i]! ** 3;
  },
});
const cube = (x: Sym) => x.builder.op1('test_cube', [x]);
const cubeRule: GradRule = ({ inputs: [x], grads: [g] }) => [mul(g!, scale(mul(x!, x!), 3))];

describe('defineGradient', () => {
  it('gives an op defined elsewhere its rule, once', () => {
    expect(cubeOp.gradient).toBeUndefined();
    const b = new GraphBuilder();
    const x = b.param('x', [3], 'f32', { dist: 'zeros' });
    const y = b.op1('reshape', [cube(x)], { shape: [3] });
    const loss = b.op1('sum', [y], { axes: [], keepdims: false });
    expect(errorOf(() => differentiate(b.graph, b.op1('reshape', [loss], { shape: [1] }).id, [x.id])).message).toMatch(/\(test_cube\) has no gradient rule/);
    expect(differentiableOps()).not.toContain('test_cube');

    defineGradient('test_cube', cubeRule);
    expect(gradientRule('test_cube')).toBe(cubeRule);
    expect(differentiableOps()).toContain('test_cube');
    gradcheck('test_cube', [{ shape: [2, 3] }]);

    const again = errorOf(() => defineGradient('test_cube', cubeRule));
    expect(again.code).toBe('INVALID_ARGUMENT');
    expect(again.message).toBe("Expected one gradient rule for op 'test_cube' but received a second one (it already has a rule)");
  });

  it('refuses a rule for an op that has one from defineOp, for an unknown op, and a rule that is not a function', () => {
    expect(errorOf(() => defineGradient('add', cubeRule)).message).toMatch(/^Expected one gradient rule for op 'add' but received a second one/);
    const unknown = errorOf(() => defineGradient('frobnicate', cubeRule));
    expect(unknown.code).toBe('INVALID_ARGUMENT');
    expect(unknown.message).toBe('Expected an op defined with defineOp for defineGradient but received "frobnicate"');
    expect(errorOf(() => defineGradient('matmul_bgrad', 'rule' as never)).message).toBe('Expected a function for the gradient rule of matmul_bgrad but received "rule"');
    expect(gradientRule('matmul_bgrad')).toBeUndefined();
    const bad = errorOf(() => defineOp({ ...cubeOp, name: 'test_cube_bad', gradient: 3 as never }));
    expect(bad.message).toBe('Expected a function for the gradient rule of test_cube_bad but received 3');
  });

  it("reads the op table: the standard set's rules come with their ops", () => {
    for (const op of ['add', 'matmul', 'layernorm', 'cross_entropy', 'gather_rows', 'cast']) expect(gradientRule(op)).toBeTypeOf('function');
    for (const op of ['moe_plan', 'adamw', 'layernorm_backward']) expect(gradientRule(op)).toBeUndefined();
  });
});

describe('bytesMoved', () => {
  it('counts a gather by the rows it takes and every other op by its inputs and outputs whole', () => {
    const [V, D, n] = [1000 + Math.floor(Math.random() * 5000), 64, 1 + Math.floor(Math.random() * 100)];
    const table = { shape: [V, D], dtype: 'bf16' as const };
    const ids = { shape: [n], dtype: 'i32' as const };
    const rows = { shape: [n, D], dtype: 'bf16' as const };
    // The table (V·D·2 bytes) is not read whole: ids (4n) and the rows read and written (2·2nD).
    expect(bytesMoved('embedding', [table, ids], [rows], {})).toBe(4 * n + 2 * 2 * n * D);
    expect(bytesMoved('gather_rows', [table, ids], [rows], {})).toBe(4 * n + 2 * 2 * n * D);
    expect(bytesMoved('embedding_backward', [ids, rows], [table], { vocab: V })).toBe(4 * n + 3 * 2 * n * D + 2 * V * D);
    expect(bytesMoved('slice', [table], [rows], { axis: 0, start: 0, end: n })).toBe(2 * 2 * n * D);
    expect(bytesMoved('add', [rows, rows], [rows], {})).toBe(3 * 2 * n * D);
  });
});
