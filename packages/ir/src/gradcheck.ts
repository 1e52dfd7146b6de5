/**
 * gradcheck(op, inputs, attrs): a float64 finite-difference check of an op's gradient rule, for
 * whoever defines an op (ir's own tests and any package's). The loss is Σ_k <out_k, w_k> with
 * random w_k; its gradient with respect to every differentiable input, by autodiff through the
 * op's rule, is compared element by element with central differences of the loss, both computed by
 * the reference interpreter in float64. Returns the largest error relative to max(1, |numeric|);
 * throws INVALID_ARGUMENT naming the first element past `tol`.
 */
import { DeepwellError, checkFunction, checkInteger, checkKeys, checkNumber, checkShape, invalid, type DTypeName } from '@deepwell/core';
import { differentiate } from './autodiff.js';
import { GraphBuilder, type Sym } from './builder.js';
import { interpret } from './interpret.js';
import { matmul } from './ops/basic/matmul.js';
import { reshape } from './ops/basic/reshape.js';
import { numel, type AttrValue, type NumArray } from './types.js';

export interface GradcheckInput {
  shape: number[];
  dtype?: DTypeName;
  /** Data to use instead of random normals (needed for indices). */
  data?: NumArray;
  /** false: not differentiated (indices, targets, masks). Default: true for f32. */
  diff?: boolean;
}

export interface GradcheckOptions {
  /** The finite-difference step (default 1e-6). */
  eps?: number;
  /** The largest error allowed, relative to max(1, |numeric|) (default 1e-6). */
  tol?: number;
  /** The outputs the loss uses (default: every f32 output). */
  outputs?: number[];
}

/** Standard normal samples (Box–Muller). */
function normals(n: number): Float64Array {
  return Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
}

/** (f() at x[j] + eps − f() at x[j] − eps) / 2·eps: the central difference of f, which reads x, along x[j]. */
export function centralDifference(f: () => number, x: Float64Array, j: number, eps = 1e-6): number {
  checkFunction(f, 'the function of centralDifference');
  if (!(x instanceof Float64Array)) invalid('a Float64Array', 'x of centralDifference', x);
  checkInteger(j, 'the index of centralDifference', 0, Math.max(0, x.length - 1));
  if (x.length === 0) invalid('a non-empty Float64Array', 'x of centralDifference', x);
  checkNumber(eps, 'eps of centralDifference', { above: 0 });
  const keep = x[j]!;
  x[j] = keep + eps;
  const up = f();
  x[j] = keep - eps;
  const down = f();
  x[j] = keep;
  return (up - down) / (2 * eps);
}

function dot(y: Sym, w: Sym): Sym {
  const n = numel(y.shape);
  return reshape(matmul(reshape(y, [1, n]), reshape(w, [n, 1])), [1]);
}

/**
 * The most elements gradcheck differentiates: each takes two interpreter runs of the op's graph,
 * so past this a check would run for minutes (it is for small inputs).
 */
export const MAX_GRADCHECK_ELEMENTS = 4096;

export function gradcheck(op: string, specs: GradcheckInput[], attrs: Record<string, AttrValue> = {}, options: GradcheckOptions = {}): number {
  checkKeys(options, ['eps', 'tol', 'outputs'], 'gradcheck');
  const eps = checkNumber(options.eps ?? 1e-6, 'gradcheck eps', { above: 0 });
  const tol = checkNumber(options.tol ?? 1e-6, 'gradcheck tol', { min: 0 });
  if (options.outputs !== undefined && !(Array.isArray(options.outputs) && options.outputs.every((k) => Number.isSafeInteger(k) && k >= 0))) invalid('an array of output indices', 'gradcheck outputs', options.outputs);
  if (!Array.isArray(specs)) invalid('an array of input specs ({ shape, dtype?, data?, diff? })', 'the inputs of gradcheck', specs);
  let diffElements = 0;
  specs.forEach((s, i) => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) invalid('an input spec ({ shape, dtype?, data?, diff? })', `gradcheck input ${i}`, s);
    checkKeys(s, ['shape', 'dtype', 'data', 'diff'], `gradcheck input ${i}`, { noun: 'key' });
    const n = numel(checkShape(s.shape, `the shape of gradcheck input ${i}`));
    if (s.diff !== undefined && typeof s.diff !== 'boolean') invalid('a boolean', `diff of gradcheck input ${i}`, s.diff);
    if ((s.diff ?? (s.dtype ?? 'f32') === 'f32')) diffElements += n;
  });
  if (diffElements > MAX_GRADCHECK_ELEMENTS) invalid(`at most ${MAX_GRADCHECK_ELEMENTS} elements to differentiate (two interpreter runs each)`, 'the inputs of gradcheck', diffElements);
  const b = new GraphBuilder();
  const syms = specs.map((s, i) => {
    const diff = s.diff ?? (s.dtype ?? 'f32') === 'f32';
    return diff ? b.param(`x${i}`, s.shape, s.dtype ?? 'f32', { dist: 'zeros' }) : b.input(`x${i}`, s.shape, s.dtype ?? 'f32');
  });
  const outs = b.op(op, syms, attrs);
  const used = options.outputs ?? outs.map((_, i) => i).filter((i) => outs[i]!.dtype === 'f32');
  const weights = used.map((i) => b.input(`w${i}`, outs[i]!.shape, 'f32'));
  let loss: Sym | null = null;
  used.forEach((i, k) => {
    const term = dot(outs[i]!, weights[k]!);
    loss = loss ? b.op1('add', [loss, term]) : term;
  });
  b.output('loss', loss!);
  const params = specs.map((_, i) => b.graph.params[`x${i}`]).filter((id): id is number => id !== undefined);
  const grads = differentiate(b.graph, loss!.id, params);
  b.graph.verify();
  const bind: Record<string, NumArray> = {};
  specs.forEach((s, i) => (bind[`x${i}`] = s.data ?? normals(numel(s.shape))));
  used.forEach((i) => (bind[`w${i}`] = normals(numel(outs[i]!.shape))));
  const lossAt = () => interpret(b.graph, bind, { precision: 'f64' })[loss!.id]![0]!;
  const vals = interpret(b.graph, bind, { precision: 'f64' });
  let worst = 0;
  specs.forEach((_, i) => {
    const id = b.graph.params[`x${i}`];
    if (id === undefined) return;
    const x = bind[`x${i}`] as Float64Array;
    const ana = vals[grads.get(id)!]!;
    for (let j = 0; j < x.length; j++) {
      const num = centralDifference(lossAt, x, j, eps);
      const err = Math.abs(num - ana[j]!) / Math.max(1, Math.abs(num));
      if (!(err <= tol)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: gradient of input ${i} element ${j}: autodiff ${ana[j]} vs finite difference ${num}`);
      worst = Math.max(worst, err);
    }
  });
  return worst;
}
