/**
 * The typed IR graph: values (each with a shape and dtype) and nodes (an op applied to values),
 * kept in topological order. Values are graph inputs (data fed each step), parameters (trainable,
 * named like "blocks.3.mlp.fc.weight"), state (persistent non-trainable values such as optimizer
 * moments) or node outputs. `updates` says which node output replaces a parameter or state value
 * after a step. Every node carries its phase as data: 'forward' (the model and its loss),
 * 'backward' (every node autodiff makes) or 'optimizer' (clipping and the update); its scope stays
 * the module path that names it (a backward node keeps the scope of the forward node it
 * differentiates). A verifier, a readable text form and JSON that round-trips come with it.
 *
 * JSON: version 2 writes each node's phase. A version 1 document (before nodes carried it) still
 * loads: its phase is read off the old scope convention, where autodiff's nodes were in '<scope>.grad'
 * (or 'grad') and trainingStep's in 'clip' and 'optimizer.<param>'; the '.grad' suffix is dropped so
 * that the scopes follow today's convention.
 */
import { DeepwellError, checkShape, describe, dtypeInfo, invalid, type DTypeName } from '@deepwell/core';
import { checkGraphJSON } from './graph-json.js';
import { checkAttrs, getOp } from './op.js';
import { shapeStr, type AttrValue, type Attrs, type ValueType } from './types.js';

export type ValueKind = 'input' | 'param' | 'state' | 'node';

/** Which part of a training step a node belongs to. */
export type Phase = 'forward' | 'backward' | 'optimizer';
export const PHASES: readonly Phase[] = ['forward', 'backward', 'optimizer'];

/** How a parameter or state value starts: deterministic from the run's seed and the value's name. */
export interface InitSpec {
  dist: 'normal' | 'zeros' | 'ones' | 'uniform' | 'sinusoidal';
  /** normal: standard deviation; uniform: half-width; sinusoidal: amplitude. */
  scale?: number;
  /**
   * sinusoidal: the row width C of a [rows, C] table (C even). Row p, columns 2i and 2i + 1:
   * scale · sin(p · ω_i) and scale · cos(p · ω_i), ω_i = base^(-2i / C), the Transformer's
   * position encoding (Vaswani et al. 2017; base 10000) as a starting value.
   */
  columns?: number;
  /** sinusoidal: the base of the frequencies (default 10000; the longest period is 2π · base). */
  base?: number;
}

export interface ValueDecl {
  id: number;
  type: ValueType;
  kind: ValueKind;
  /** Inputs, parameters and state have names; node outputs may. */
  name?: string;
  /** For node outputs: the producing node. */
  producer?: number;
}

export interface NodeDecl {
  id: number;
  op: string;
  inputs: number[];
  outputs: number[];
  attrs: Attrs;
  /** The module path the node was made in ("blocks.0.attn"); '' at the top. */
  scope: string;
  /** The part of the step it belongs to; set by the builder (GraphBuilder.phase). */
  phase: Phase;
  /** Set by the fusion pass: nodes with the same group may run as one elementwise kernel. */
  fusionGroup?: number;
}

export class Graph {
  values: ValueDecl[] = [];
  nodes: NodeDecl[] = [];
  inputs: Record<string, number> = {};
  params: Record<string, number> = {};
  state: Record<string, number> = {};
  outputs: Record<string, number> = {};
  updates: Record<string, number> = {};
  /**
   * Gradient of each parameter, by parameter name (set by trainingStep): the loss's gradient as the
   * backward pass made it, before clipping (the optimizer applies the clipping factor itself, as
   * adamw's gradScale). Read by dryrun and the planner (gradient bytes) and counted as a use by the
   * fusions; not kept alive by DCE. The elide-casts pass may point an entry at the bf16 / f16 value a
   * skipped widening cast read (the same numbers, in the dtype the step now holds them in).
   */
  gradients: Record<string, number> = {};
  init: Record<string, InitSpec> = {};

  value(id: number): ValueDecl {
    const v = this.values[id];
    if (!v || !Number.isSafeInteger(id)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a value id in [0, ${this.values.length - 1}] but received ${describe(id)}`);
    return v;
  }

  /** "%12 'blocks.0.attn' (matmul)": how errors name a node. */
  describeNode(n: NodeDecl): string {
    if (typeof n !== 'object' || n === null) invalid('a node of the graph', 'describeNode', n);
    return `node #${n.id}${n.scope ? ` '${n.scope}'` : ''} (${n.op})`;
  }

  /** Checks ids, topological order (no cycles), and every node's types against its op's rule. */
  verify(): this {
    const defined = new Set<number>();
    for (const v of this.values) if (v.kind !== 'node') defined.add(v.id);
    const seenNode = new Set<number>();
    for (const n of this.nodes) {
      if (seenNode.has(n.id)) throw new DeepwellError('INVALID_ARGUMENT', `${this.describeNode(n)} appears twice`);
      seenNode.add(n.id);
      for (const i of n.inputs) {
        if (!this.values[i]) throw new DeepwellError('INVALID_ARGUMENT', `${this.describeNode(n)} reads value %${i}, which does not exist`);
        if (!defined.has(i)) {
          const p = this.values[i]!.producer;
          const later = p !== undefined && this.nodes.findIndex((m) => m.id === p) > this.nodes.indexOf(n);
          throw new DeepwellError(
            'INVALID_ARGUMENT',
            `${this.describeNode(n)} reads %${i} before it is computed${later ? ' (the graph has a cycle, or is out of order)' : ''}`,
          );
        }
      }
      const def = getOp(n.op);
      let want: ValueType[];
      try {
        want = def.infer(n.inputs.map((i) => this.values[i]!.type), checkAttrs(def, n.attrs as Record<string, unknown>));
      } catch (e) {
        throw withNode(this.describeNode(n), e);
      }
      want.forEach((t, k) => checkShape(t.shape, `the shape of output ${k} of ${this.describeNode(n)}`));
      if (want.length !== n.outputs.length) throw new DeepwellError('SHAPE_MISMATCH', `${this.describeNode(n)} has ${n.outputs.length} outputs, its op gives ${want.length}`);
      n.outputs.forEach((o, k) => {
        const v = this.values[o];
        if (!v || v.producer !== n.id) throw new DeepwellError('INVALID_ARGUMENT', `${this.describeNode(n)} output %${o} is not marked as its own`);
        if (defined.has(o)) throw new DeepwellError('INVALID_ARGUMENT', `${this.describeNode(n)} writes %${o}, which is already defined`);
        if (shapeStr(v.type) !== shapeStr(want[k]!)) {
          throw new DeepwellError('SHAPE_MISMATCH', `${this.describeNode(n)} output %${o} is ${shapeStr(v.type)} but its op gives ${shapeStr(want[k]!)}`);
        }
        defined.add(o);
      });
    }
    for (const [what, table] of [['output', this.outputs], ['update', this.updates]] as const) {
      for (const [name, id] of Object.entries(table)) {
        if (!defined.has(id)) throw new DeepwellError('INVALID_ARGUMENT', `${what} '${name}' is %${id}, which is never computed`);
      }
    }
    for (const [name, id] of Object.entries(this.updates)) {
      const target = this.params[name] ?? this.state[name];
      if (target === undefined) throw new DeepwellError('INVALID_ARGUMENT', `update '${name}' names no parameter or state value`);
      if (shapeStr(this.values[target]!.type) !== shapeStr(this.values[id]!.type)) {
        throw new DeepwellError('SHAPE_MISMATCH', `update '${name}' is ${shapeStr(this.values[id]!.type)} but the value it replaces is ${shapeStr(this.values[target]!.type)}`);
      }
    }
    return this;
  }

  /** A readable listing, one line a value or node. */
  toText(): string {
    const out: string[] = ['graph {'];
    const named = (kind: ValueKind, label: string) => {
      for (const v of this.values.filter((x) => x.kind === kind)) out.push(`  ${label} %${v.id} ${v.name}: ${shapeStr(v.type)}`);
    };
    named('input', 'input');
    named('param', 'param');
    named('state', 'state');
    for (const n of this.nodes) {
      const outs = n.outputs.map((o) => `%${o}: ${shapeStr(this.values[o]!.type)}`).join(', ');
      const attrs = Object.entries(n.attrs).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
      const extra = [n.scope ? `# ${n.scope}` : '', n.phase !== 'forward' ? `[${n.phase}]` : '', n.fusionGroup !== undefined ? `[fused ${n.fusionGroup}]` : ''].filter(Boolean).join(' ');
      out.push(`  ${outs} = ${n.op}(${n.inputs.map((i) => `%${i}`).join(', ')})${attrs ? ` {${attrs}}` : ''}${extra ? `  ${extra}` : ''}`);
    }
    for (const [k, v] of Object.entries(this.outputs)) out.push(`  output ${k} = %${v}`);
    for (const [k, v] of Object.entries(this.updates)) out.push(`  update ${k} <- %${v}`);
    out.push('}');
    return out.join('\n');
  }

  toJSON(): GraphJSON {
    return {
      format: 'deepwell.ir',
      version: 2,
      values: this.values.map((v) => ({ ...v, type: { shape: [...v.type.shape], dtype: v.type.dtype } })),
      nodes: this.nodes.map((n) => ({ ...n, attrs: { ...n.attrs } })),
      inputs: { ...this.inputs },
      params: { ...this.params },
      state: { ...this.state },
      outputs: { ...this.outputs },
      updates: { ...this.updates },
      gradients: { ...this.gradients },
      init: { ...this.init },
    };
  }

  static fromJSON(json: unknown): Graph {
    // Every field checked before anything is built (errors name the place: "nodes[3].inputs[1]").
    checkGraphJSON(json);
    const j = json as GraphJSON | GraphJSONv1;
    const g = new Graph();
    j.values.forEach((v) => {
      g.values.push({ ...v, type: Object.freeze({ shape: Object.freeze([...v.type.shape]), dtype: v.type.dtype as DTypeName }) });
    });
    g.nodes = j.nodes.map((n) => {
      const node = { ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: Object.freeze({ ...n.attrs }) as Attrs };
      return j.version === 1 ? { ...node, ...phaseOfV1(n.scope) } : (node as NodeDecl);
    });
    Object.assign(g.inputs, j.inputs);
    Object.assign(g.params, j.params);
    Object.assign(g.state, j.state);
    Object.assign(g.outputs, j.outputs);
    Object.assign(g.updates, j.updates);
    Object.assign(g.gradients, j.gradients ?? {});
    for (const [name, spec] of Object.entries(j.init)) g.init[name] = { ...spec };
    return g.verify();
  }

}

type NodeJSON = { id: number; op: string; inputs: number[]; outputs: number[]; attrs: Record<string, AttrValue>; scope: string; phase: Phase; fusionGroup?: number };

export interface GraphJSON {
  format: 'deepwell.ir';
  version: 2;
  values: { id: number; type: { shape: number[]; dtype: string }; kind: ValueKind; name?: string; producer?: number }[];
  nodes: NodeJSON[];
  inputs: Record<string, number>;
  params: Record<string, number>;
  state: Record<string, number>;
  outputs: Record<string, number>;
  updates: Record<string, number>;
  gradients?: Record<string, number>;
  init: Record<string, InitSpec>;
}

/** A version 1 document: nodes without a phase. */
type GraphJSONv1 = Omit<GraphJSON, 'version' | 'nodes'> & { version: 1; nodes: Omit<NodeJSON, 'phase'>[] };

/** A version 1 node's phase and scope, from the scope convention of that version. */
function phaseOfV1(scope: string): { scope: string; phase: Phase } {
  if (scope === 'grad' || scope.endsWith('.grad')) return { scope: scope.slice(0, -'grad'.length).replace(/\.$/, ''), phase: 'backward' };
  if (scope === 'clip' || scope === 'optimizer' || scope.startsWith('optimizer.')) return { scope, phase: 'optimizer' };
  return { scope, phase: 'forward' };
}

/** `g` if it is a Graph (from any copy of this package), else an INVALID_ARGUMENT naming `what`. */
export function checkGraph(g: unknown, what: string): Graph {
  const ok = g instanceof Graph || (typeof g === 'object' && g !== null && Array.isArray((g as Graph).values) && Array.isArray((g as Graph).nodes) && typeof (g as Graph).toJSON === 'function' && typeof (g as Graph).verify === 'function');
  if (!ok) invalid('a Graph', what, g);
  return g as Graph;
}

export function byteSizeOf(t: ValueType): number {
  if (typeof t !== 'object' || t === null || !Array.isArray(t.shape)) invalid('a value type ({ shape, dtype })', 'byteSizeOf', t);
  return Math.ceil((t.shape.reduce((a, b) => a * b, 1) * dtypeInfo(t.dtype).bits) / 8);
}

/** Prefix an error with the node it came from, keeping its code and cause. */
export function withNode(where: string, e: unknown): DeepwellError {
  if (DeepwellError.is(e)) return new DeepwellError(e.code, `${where}: ${e.message}`, { cause: e, details: { ...e.details, node: where } });
  return new DeepwellError('INTERNAL', `${where}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
