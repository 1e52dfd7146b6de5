/**
 * ZeRO-1 (Rajbhandari et al., stage 1) in the compiled step: each rank keeps the AdamW moments of one
 * shard of the parameters, updates only that shard, and the updated shards are all-gathered so every
 * rank holds every parameter again. dataParallel(step, { worldSize, comm, zero: { rank } }) applies it
 * in place of the gradient all-reduce.
 *
 * The layout (zeroLayout): the parameters, grouped by their gradient's dtype and in the step's
 * order within a group, are one flat vector per group, padded to W equal shards of S elements (S a
 * multiple of `align`, NCCL's reduce-scatter and all-gather move equal blocks). Rank r owns
 * [r·S, (r + 1)·S); a shard may cut a parameter, so a rank holds *pieces* (zeroPieces). For each group
 * the step then does:
 *   flat gradient (the gradients concatenated, zeros in the padding) -> reduce_scatter('avg') -> this
 *   rank's averaged shard; clipping (if the step clips): sum_squares of the shards, all_reduce('sum'),
 *   clip_coef, so the norm is the global one; per piece: adamw on the piece of the parameter with
 *   moments `zero.m.<param>` / `zero.v.<param>` of the piece's size (state of this rank only);
 *   the updated pieces concatenated -> all_gather -> every parameter sliced back out and updated.
 * Memory: the moments are 8 bytes an element over W ranks instead of on each; the parameters and
 * gradients stay whole (stage 1). Communication: a reduce-scatter and an all-gather move what one
 * all-reduce does.
 * Results: the same AdamW arithmetic on the same averaged gradient as the all-reduce step; only the
 * order in which NCCL sums the ranks' gradients (and, with clipping, the norm's partial sums) may
 * differ. With worldSize 1 every collective is the identity, so on the CPU the step equals the plain
 * one bit for bit.
 * `graph.gradients` keep naming each rank's local gradients (there is no whole averaged gradient).
 */
import { DeepwellError, checkInteger, describe, type DTypeName } from '@deepwell/core';
import { GraphBuilder, type Sym } from '../builder.js';
import type { Graph, NodeDecl } from '../graph.js';
import { reshape } from '../ops/basic/reshape.js';
import { fill } from '../ops/basic/fill.js';
import { adamw } from '../ops/optim/adamw.js';
import { clipCoef } from '../ops/optim/clip_coef.js';
import { sumSquares } from '../ops/optim/sum_squares.js';
import { concat } from '../ops/tensor/concat.js';
import { slice } from '../ops/tensor/slice.js';
import { numel } from '../types.js';
import { renumber } from './dce.js';

/** One flat vector of ZeRO: the parameters whose gradients have `dtype`, in order, padded to worldSize shards of `shard` elements. */
export interface ZeroGroup {
  dtype: DTypeName;
  names: string[];
  sizes: number[];
  /** Each parameter's first element in the flat vector. */
  offsets: number[];
  /** Elements of the parameters (the flat vector is worldSize · shard long, zeros past total). */
  total: number;
  shard: number;
}

export interface ZeroLayout {
  worldSize: number;
  align: number;
  groups: ZeroGroup[];
}

/** A parameter's piece [from, to) held by a rank, at `at` within the rank's shard of its group. */
export interface ZeroPiece {
  name: string;
  from: number;
  to: number;
  at: number;
}

/** The default shard alignment, in elements (256 bytes of f32). */
export const ZERO_ALIGN = 64;

/** The ZeRO-1 layout of `params` (name, elements, gradient dtype; in the step's order) over `worldSize` ranks. */
export function zeroLayout(params: readonly { name: string; size: number; dtype: DTypeName }[], worldSize: number, align = ZERO_ALIGN): ZeroLayout {
  if (!Array.isArray(params) || params.length === 0) throw new DeepwellError('INVALID_ARGUMENT', 'Expected at least one parameter for zeroLayout but received none');
  const W = checkInteger(worldSize, 'worldSize of zeroLayout', 1, 65536);
  const A = checkInteger(align, 'align of zeroLayout', 1, 1 << 20);
  const byDtype = new Map<DTypeName, ZeroGroup>();
  for (const p of params) {
    checkInteger(p.size, `the size of parameter '${p.name}' for zeroLayout`, 1);
    let g = byDtype.get(p.dtype);
    if (!g) byDtype.set(p.dtype, (g = { dtype: p.dtype, names: [], sizes: [], offsets: [], total: 0, shard: 0 }));
    g.names.push(p.name);
    g.sizes.push(p.size);
    g.offsets.push(g.total);
    g.total += p.size;
  }
  for (const g of byDtype.values()) {
    g.shard = Math.ceil(g.total / (W * A)) * A;
    if (g.shard * W > 2 ** 31 - 1) throw new DeepwellError('INVALID_ARGUMENT', `zeroLayout: Expected at most 2^31 - 1 elements of ${g.dtype} gradients (padded) but received ${g.shard * W}`);
  }
  return { worldSize: W, align: A, groups: [...byDtype.values()] };
}

/** `layout` if it is one zeroLayout made (its groups consistent), else INVALID_ARGUMENT naming `what`. */
export function checkZeroLayout(layout: unknown, what: string): ZeroLayout {
  const l = layout as ZeroLayout;
  const ok =
    typeof l === 'object' && l !== null && Number.isSafeInteger(l.worldSize) && l.worldSize >= 1 && Number.isSafeInteger(l.align) && l.align >= 1 && Array.isArray(l.groups) &&
    l.groups.every(
      (g) =>
        typeof g === 'object' && g !== null && Array.isArray(g.names) && Array.isArray(g.sizes) && Array.isArray(g.offsets) && g.names.length === g.sizes.length && g.sizes.length === g.offsets.length &&
        Number.isSafeInteger(g.total) && Number.isSafeInteger(g.shard) && g.shard >= 0 && g.shard * l.worldSize >= g.total &&
        g.sizes.every((n, i) => Number.isSafeInteger(n) && n >= 1 && g.offsets[i] === (i === 0 ? 0 : g.offsets[i - 1]! + g.sizes[i - 1]!)),
    );
  if (!ok) throw new DeepwellError('INVALID_ARGUMENT', `Expected a layout from zeroLayout() for ${typeof what === 'string' ? what : 'a ZeRO layout'} but received ${typeof layout === 'object' && layout !== null ? 'an object that is not one' : describe(layout)}`);
  return l;
}

/** The pieces of `group`'s parameters that `rank` holds, in order. */
export function zeroPieces(layout: ZeroLayout, group: ZeroGroup, rank: number): ZeroPiece[] {
  checkZeroLayout(layout, 'zeroPieces');
  if (!layout.groups.includes(group)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of the layout's groups for zeroPieces but received ${describe(group)}`);
  checkInteger(rank, 'rank of zeroPieces', 0, layout.worldSize - 1);
  const start = rank * group.shard, end = Math.min(group.total, start + group.shard);
  const out: ZeroPiece[] = [];
  group.names.forEach((name, i) => {
    const a = Math.max(start, group.offsets[i]!), b = Math.min(end, group.offsets[i]! + group.sizes[i]!);
    if (a < b) out.push({ name, from: a - group.offsets[i]!, to: b - group.offsets[i]!, at: a - start });
  });
  return out;
}

interface StepOptimizer {
  node: NodeDecl;
  name: string;
  attrs: Record<string, number>;
}

/**
 * The step's AdamW nodes (trainingStep's: one per parameter, its moments `adamw.m.<name>` /
 * `adamw.v.<name>`), lr, step, and clipping's nodes and maxNorm (if it clips); a typed error for a
 * graph whose optimizer is not trainingStep's.
 */
function findOptimizer(graph: Graph): { adams: StepOptimizer[]; lr: number; step: number; clip?: { nodes: NodeDecl[]; maxNorm: number } } {
  const refuse = (why: string): never => {
    throw new DeepwellError('INVALID_ARGUMENT', `dataParallel's zero: Expected trainingStep's AdamW step (one adamw node per parameter, moments adamw.m.<name> and adamw.v.<name>) but ${why}`);
  };
  const producer = new Map<number, NodeDecl>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n);
  const adams: StepOptimizer[] = [];
  for (const name of Object.keys(graph.params)) {
    const node = producer.get(graph.updates[name] ?? -1);
    if (!node || node.op !== 'adamw') refuse(`parameter '${name}' is not updated by an adamw node`);
    const [p, , m, v] = node!.inputs;
    if (p !== graph.params[name] || m !== graph.state[`adamw.m.${name}`] || v !== graph.state[`adamw.v.${name}`]) refuse(`the adamw node of '${name}' reads other values`);
    if (graph.updates[`adamw.m.${name}`] !== node!.outputs[1] || graph.updates[`adamw.v.${name}`] !== node!.outputs[2]) refuse(`the moments of '${name}' are not updated by its adamw node`);
    adams.push({ node: node!, name, attrs: node!.attrs as Record<string, number> });
  }
  const [lr, step, scale] = [4, 5, 6].map((k) => adams[0]!.node.inputs[k]);
  if (adams.some((a) => a.node.inputs[4] !== lr || a.node.inputs[5] !== step || a.node.inputs[6] !== scale)) refuse('the adamw nodes read different lr, step or gradScale values');
  if (scale === undefined) return { adams, lr: lr!, step: step! };
  const coef = producer.get(scale);
  const sumsq = coef?.op === 'clip_coef' ? producer.get(coef.inputs[0]!) : undefined;
  if (!coef || !sumsq || sumsq.op !== 'sum_squares') refuse('gradScale does not come from trainingStep\'s clipping (sum_squares, clip_coef)');
  return { adams, lr: lr!, step: step!, clip: { nodes: [sumsq!, coef!], maxNorm: coef!.attrs.maxNorm as number } };
}

/**
 * Rewrites a training step's optimizer as ZeRO-1 for `rank` of `worldSize` (see the file's comment).
 * Returns a new graph (dead values renumbered away); the caller averages the loss as before.
 */
export function zeroOptimizer(graph: Graph, options: { worldSize: number; comm: number; rank: number; align?: number }): Graph {
  const { worldSize, comm } = options;
  const rank = checkInteger(options.rank, "rank of dataParallel's zero", 0, worldSize - 1);
  const { adams, lr, step, clip } = findOptimizer(graph);
  const layout = zeroLayout(
    adams.map(({ name }) => ({ name, size: numel(graph.values[graph.params[name]!]!.type.shape), dtype: graph.values[graph.gradients[name]!]!.type.dtype })),
    worldSize,
    options.align,
  );
  // The old optimizer out: its nodes, the whole-size moments, the parameters' updates.
  const gone = new Set<NodeDecl>([...adams.map((a) => a.node), ...(clip?.nodes ?? [])]);
  graph.nodes = graph.nodes.filter((n) => !gone.has(n));
  for (const { name } of adams) {
    for (const s of [`adamw.m.${name}`, `adamw.v.${name}`]) {
      delete graph.state[s];
      delete graph.init[s];
      delete graph.updates[s];
    }
    delete graph.updates[name];
  }
  if (clip) delete graph.outputs.grad_norm;

  const b = GraphBuilder.extend(graph);
  const attrsOf = new Map(adams.map((a) => [a.name, a.attrs]));
  b.phase('optimizer', () => {
    // Each group's averaged shard of the gradients.
    const shards = layout.groups.map((g) =>
      b.scoped(`zero.${g.dtype}`, () => {
        const parts = g.names.map((name) => reshape(b.sym(graph.gradients[name]!), [numel(graph.values[graph.gradients[name]!]!.type.shape)]));
        const pad = g.shard * worldSize - g.total;
        if (pad > 0) parts.push(fill(b, [pad], 0, g.dtype as 'f32' | 'bf16' | 'f16'));
        const flat = parts.length === 1 ? parts[0]! : concat(parts, 0);
        return b.op1('reduce_scatter', [flat], { op: 'avg', worldSize, comm });
      }),
    );
    let coef: Sym | undefined;
    if (clip) {
      coef = b.scoped('clip', () => {
        const sumsq = b.op1('all_reduce', [sumSquares(shards)], { op: 'sum', worldSize, comm });
        const [c, norm] = clipCoef(sumsq, clip.maxNorm);
        b.output('grad_norm', norm);
        return c;
      });
    }
    layout.groups.forEach((g, gi) => {
      const pieces = zeroPieces(layout, g, rank);
      const updated = pieces.map(({ name, from, to, at }) =>
        b.scoped(`optimizer.${name}`, () => {
          const p = b.sym(graph.params[name]!);
          const whole = p.rank === 1 ? p : reshape(p, [numel(p.shape)]);
          const piece = from === 0 && to === numel(p.shape) ? whole : slice(whole, 0, from, to);
          const grad = at === 0 && to - from === g.shard ? shards[gi]! : slice(shards[gi]!, 0, at, at + to - from);
          const m = b.state(`zero.m.${name}`, [to - from], 'f32', { dist: 'zeros' });
          const v = b.state(`zero.v.${name}`, [to - from], 'f32', { dist: 'zeros' });
          const [p2, m2, v2] = adamw(piece, grad, m, v, b.sym(lr), b.sym(step), attrsOf.get(name)!, coef);
          b.update(`zero.m.${name}`, m2);
          b.update(`zero.v.${name}`, v2);
          return p2;
        }),
      );
      b.scoped(`zero.${g.dtype}`, () => {
        const held = pieces.reduce((a, p) => a + p.to - p.from, 0);
        if (held < g.shard) updated.push(fill(b, [g.shard - held], 0, 'f32'));
        const mine = updated.length === 1 ? updated[0]! : concat(updated, 0);
        const all = b.op1('all_gather', [mine], { worldSize, comm });
        g.names.forEach((name, i) => {
          const p = b.sym(graph.params[name]!);
          const part = g.offsets[i] === 0 && g.sizes[i] === all.shape[0] ? all : slice(all, 0, g.offsets[i]!, g.offsets[i]! + g.sizes[i]!);
          b.update(name, p.rank === 1 ? part : reshape(part, p.shape));
        });
      });
    });
  });
  // The whole-size moments' values and the old optimizer's outputs are gone: drop what nothing names.
  return renumber(graph, graph.nodes).verify();
}
