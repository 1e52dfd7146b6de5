/**
 * compile(graph) -> Executable: the graph after passes, its memory plan, and a flat list of kernel
 * launches bound through core's registry once (not per step). `run(batch)` feeds the inputs into
 * the arena, runs the launches in order and applies the updates; the arena is allocated once, at
 * the first run, at exactly the planned size, so dryrun's figure is the allocation.
 *
 * On the CPU the arena is one host buffer and each value a typed-array view into it. Parameters and
 * state are persistent buffers initialised deterministically from the seed.
 */
import { CpuBuffer, DeepwellError, describe, getBackend, registry, type Backend, type DeviceBuffer, type KernelCandidate } from '@deepwell/core';
import { Graph, type NodeDecl } from './graph.js';
import { initialValues } from './init.js';
import { checkBinding } from './interpret.js';
import type { KernelCall } from './op.js';
import { runPasses, type GraphPass } from './passes/index.js';
import { planMemory, type MemoryPlan } from './planner.js';
import { numel, shapeStr, type NumArray, type ValueType } from './types.js';

export interface CompileOptions {
  /** Where the step runs; 'cpu' (the reference backend) is the default. */
  device?: string;
  /** Seed for parameter initialisation. */
  seed?: number;
  /** A precision policy (or any graph rewrite) applied before the other passes. */
  precision?: GraphPass;
  /** Mark elementwise fusion groups (default true). */
  fuse?: boolean;
}

interface Launch {
  node: NodeDecl;
  kernel: KernelCandidate<KernelCall, void>;
  call: KernelCall;
}

export interface KernelSummaryRow {
  op: string;
  kernel: string;
  backend: string;
  nodes: number;
  calls: number;
}

export class Executable {
  readonly graph: Graph;
  readonly plan: MemoryPlan;
  readonly device: string;
  readonly seed: number;
  #backend: Backend;
  #arena: DeviceBuffer | null = null;
  #persistent = new Map<string, DeviceBuffer>();
  #launches: Launch[] = [];
  #views = new Map<number, NumArray>();
  #steps = 0;
  #disposed = false;

  /** @internal use compile() */
  constructor(graph: Graph, options: CompileOptions) {
    this.device = options.device ?? 'cpu';
    this.seed = options.seed ?? 0;
    if (this.device !== 'cpu') {
      throw new DeepwellError('NO_BACKEND', `compile: Expected 'cpu' for device but received ${describe(this.device)} (the CUDA executable arrives with the CUDA backend)`);
    }
    this.#backend = getBackend(this.device);
    this.graph = runPasses(Graph.fromJSON(graph.toJSON()), options);
    this.plan = planMemory(this.graph);
    for (const [name, id] of [...Object.entries(this.graph.params), ...Object.entries(this.graph.state)]) {
      const t = this.graph.values[id]!.type;
      const buf = this.#backend.alloc(4 * numel(t.shape));
      const host = initialValues(this.graph.init[name] ?? { dist: 'zeros' }, numel(t.shape), this.seed, name) as Float32Array;
      this.#backend.write(buf, host);
      this.#persistent.set(name, buf);
    }
  }

  /** Bytes of the arena and of persistent storage this executable holds. */
  get allocatedBytes(): { arena: number; persistent: number } {
    return { arena: this.#arena ? this.plan.arenaBytes : 0, persistent: [...this.#persistent.values()].reduce((a, b) => a + b.bytes, 0) };
  }

  get steps(): number {
    return this.#steps;
  }

  #view(id: number): NumArray {
    const v = this.#views.get(id);
    if (v) return v;
    const t = this.graph.values[id]!.type;
    const n = numel(t.shape);
    const pname = this.plan.persistent.get(id);
    const bytes = (pname ? this.#persistent.get(pname)! : this.#arena!) as CpuBuffer;
    const offset = pname ? 0 : this.plan.placements.get(id)!.offset;
    const Ctor = t.dtype === 'i32' ? Int32Array : Float32Array;
    const view = new Ctor(bytes.data.buffer as ArrayBuffer, bytes.data.byteOffset + offset, n);
    this.#views.set(id, view);
    return view;
  }

  #bind(): void {
    this.#arena = this.#backend.alloc(this.plan.arenaBytes);
    this.#launches = this.graph.nodes.map((node) => {
      const inTypes: ValueType[] = node.inputs.map((i) => this.graph.values[i]!.type);
      const outTypes: ValueType[] = node.outputs.map((o) => this.graph.values[o]!.type);
      const params = { op: node.op, device: this.device, inTypes, outTypes, attrs: node.attrs };
      let kernel: KernelCandidate<KernelCall, void>;
      try {
        kernel = registry.select<KernelCall, void>(node.op, params as KernelCall);
      } catch (e) {
        throw new DeepwellError('NO_KERNEL', `${this.graph.describeNode(node)}: ${(e as Error).message}`, { cause: e });
      }
      const call: KernelCall = { ...params, inputs: node.inputs.map((i) => this.#view(i)), outputs: node.outputs.map((o) => this.#view(o)) };
      return { node, kernel, call };
    });
  }

  /**
   * One step: `batch` gives every graph input by name. Returns the graph's outputs (copies).
   * Parameters and state are updated in place.
   */
  run(batch: Record<string, NumArray>): Record<string, Float32Array | Int32Array> {
    if (this.#disposed) throw new DeepwellError('DISPOSED', 'This executable was disposed');
    for (const name of Object.keys(batch)) {
      if (!(name in this.graph.inputs)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(this.graph.inputs).join(', ')} for a batch input but received ${describe(name)}`);
    }
    for (const [name, id] of Object.entries(this.graph.inputs)) {
      if (!(name in batch)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a value for input '${name}' (${shapeStr(this.graph.values[id]!.type)}) but received none`);
      checkBinding(name, this.graph.values[id]!.type, batch[name]);
    }
    if (!this.#arena) this.#bind();
    for (const [name, id] of Object.entries(this.graph.inputs)) this.#view(id).set(batch[name]! as never);
    for (const l of this.#launches) {
      try {
        l.kernel.run(l.call);
      } catch (e) {
        throw new DeepwellError(DeepwellError.is(e) ? e.code : 'INTERNAL', `${this.graph.describeNode(l.node)}: ${(e as Error).message}`, { cause: e });
      }
    }
    // Updates not written in place are copied into their persistent value.
    for (const [name, id] of Object.entries(this.graph.updates)) {
      if (this.plan.persistent.get(id) === name) continue;
      const target = this.graph.params[name] ?? this.graph.state[name]!;
      this.#view(target).set(this.#view(id) as never);
    }
    this.#steps++;
    const out: Record<string, Float32Array | Int32Array> = {};
    for (const [name, id] of Object.entries(this.graph.outputs)) out[name] = this.#view(id).slice() as Float32Array | Int32Array;
    return out;
  }

  /** Which kernel served each op, over how many nodes and calls so far. */
  kernelSummary(): KernelSummaryRow[] {
    if (!this.#arena) this.#bind();
    const rows = new Map<string, KernelSummaryRow>();
    for (const l of this.#launches) {
      const key = `${l.node.op}/${l.kernel.name}`;
      const r = rows.get(key) ?? { op: l.node.op, kernel: l.kernel.name, backend: l.kernel.backend, nodes: 0, calls: 0 };
      r.nodes++;
      r.calls += this.#steps;
      rows.set(key, r);
    }
    return [...rows.values()].sort((a, b) => a.op.localeCompare(b.op));
  }

  /** A copy of a parameter or state value by name. */
  get(name: string): Float32Array {
    const id = this.#named(name);
    return Float32Array.from(this.#view(id));
  }

  /** Overwrite a parameter or state value by name. */
  set(name: string, data: Float32Array | Float64Array): void {
    const id = this.#named(name);
    checkBinding(name, this.graph.values[id]!.type, data);
    this.#view(id).set(data as never);
  }

  parameterNames(): string[] {
    return Object.keys(this.graph.params);
  }

  #named(name: string): number {
    const id = this.graph.params[name] ?? this.graph.state[name];
    if (id === undefined) {
      const known = [...Object.keys(this.graph.params), ...Object.keys(this.graph.state)];
      const near = known.filter((k) => editDistance(k, name) <= 2).slice(0, 3);
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a parameter or state name but received ${describe(name)} (unknown${near.length ? `; did you mean ${near.join(', ')}?` : ''})`);
    }
    return id;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#views.clear();
    if (this.#arena) this.#backend.free(this.#arena);
    for (const b of this.#persistent.values()) this.#backend.free(b);
    this.#persistent.clear();
  }
}

/** Levenshtein distance, for "did you mean" in errors. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

export function compile(graph: Graph, options: CompileOptions = {}): Executable {
  return new Executable(graph, options);
}
