/**
 * compile(graph) -> Executable: the graph after passes, its memory plan, and a flat list of kernel
 * launches bound through core's registry once (not per step). `run(batch)` feeds the inputs into
 * the arena, runs the launches in order and applies the updates; the arena is allocated once, at
 * the first run, at exactly the planned size, so dryrun's figure is the allocation.
 *
 * CPU ('cpu'): the arena is one host buffer and each value a typed-array view into it.
 * CUDA ('cuda:N'): the arena and the persistent values are device memory from kernels-native's
 * caching allocator; every launch goes on one stream. The first step runs eagerly (cuBLASLt makes
 * its plans and workspace then); the second is captured once as a CUDA graph, and every step after
 * replays it: inputs are copied in from pinned memory, the graph is launched, the outputs come back.
 *
 * A reshape the planner aliased (plan.aliases: its output is its input's storage) launches nothing
 * on either device, nor inside the captured CUDA graph; the node stays in the graph, its kernel is
 * still selected (so dryrun and compile agree) and kernelSummary() and profile() list it as kernel
 * 'alias' with no calls and 0 ms.
 */
import { CpuBuffer, DeepwellError, checkKeys, describe, editDistance, invalid, float16Unchecked, getBackend, type Backend, type DTypeName, type DeviceBuffer, type KernelCandidate } from '@deepwell/core';
import * as kn from '@deepwell/kernels-native';
import type { CudaCall, DevArg } from '@deepwell/kernels-native';
import { Graph, byteSizeOf, checkGraph, type NodeDecl } from './graph.js';
import { checkSeed, initialValues } from './init.js';
import { checkBinding, roundTo } from './interpret.js';
import { getOp, type KernelCall, type KernelParams } from './op.js';
import { checkPass, runPasses, type GraphPass } from './passes/index.js';
import { storageBytesFor, type MemoryPlan } from './planner.js';
import { planStep, selectKernels, type SelectedKernel } from './select.js';
import { numel, shapeStr, type NumArray } from './types.js';
import { checkDeviceName } from './device.js';
import { CollectiveOverlap, overlaps } from './overlap.js';

// Per-element loops over typed arrays (numbers by construction): the conversions without their checks.
const { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } = float16Unchecked;
/** The ops that talk to other ranks through a communicator (attribute comm). */
const COLLECTIVES = new Set(['all_reduce', 'reduce_scatter', 'all_gather']);

export interface CompileOptions {
  /** Where the step runs: 'cpu' (the reference backend, the default) or 'cuda:N'. */
  device?: string;
  /** Seed for parameter initialisation. */
  seed?: number;
  /** A precision policy (or any graph rewrite) applied before the other passes. */
  precision?: GraphPass;
  /** Mark elementwise fusion groups (default true). */
  fuse?: boolean;
  /** CUDA: capture the step as a CUDA graph and replay it (default true). */
  cudaGraph?: boolean;
}

/** One node's device time in a profiled step (CudaExecutable.profile). */
export interface NodeProfile {
  index: number;
  op: string;
  /** The kernel's name; 'alias' (and 0 ms) for a reshape that aliases its input, which runs nothing. */
  kernel: string;
  scope: string;
  ms: number;
}

export interface StepProfile {
  outputs: Outputs;
  nodes: NodeProfile[];
  /** From before the first node to after the last update, on the device. */
  totalMs: number;
}

export interface KernelSummaryRow {
  op: string;
  kernel: string;
  backend: string;
  nodes: number;
  calls: number;
}

type Outputs = Record<string, Float32Array | Int32Array>;

/** The compiled step. `compile()` makes the CPU or the CUDA one. */
export abstract class Executable {
  readonly graph: Graph;
  readonly plan: MemoryPlan;
  readonly device: string;
  readonly seed: number;
  protected backend: Backend;
  protected arena: DeviceBuffer | null = null;
  protected persistent = new Map<string, DeviceBuffer>();
  /** Every node's kernel, chosen once at compile time (the plan holds their workspaces). */
  protected kernels: SelectedKernel[];
  protected stepCount = 0;
  protected disposed = false;
  /** dispose()'s note on who disposed it and when, for the error of a later use. */
  #disposedNote = '';
  /** Inputs that are indices (token ids, targets), with the range each must lie in. */
  #indexRanges = new Map<string, { limit: number; allow: number | null; op: string }>();
  /** Inputs that are one-element hyperparameters (a learning rate, a step count), with their least value. */
  #scalarRanges = new Map<string, { min: number; what: string; op: string }>();

  protected constructor(graph: Graph, options: CompileOptions, backend: Backend) {
    if (new.target === Executable) invalid('compile(graph, options) to make an executable', 'new Executable', 'a direct construction');
    this.device = options.device ?? 'cpu';
    this.seed = options.seed ?? 0;
    this.backend = backend;
    this.graph = runPasses(Graph.fromJSON(graph.toJSON()), { precision: options.precision, fuse: options.fuse, device: this.device });
    this.kernels = selectKernels(this.graph, this.device);
    this.plan = planStep(this.graph, this.device, this.kernels);
    this.#findIndexInputs();
    this.#findScalarInputs();
    if (this.device === 'cpu') this.#checkHostBytes();
    try {
      this.#allocatePersistent();
    } catch (e) {
      // Nothing half-made is left behind: what was allocated before the failure is freed.
      this.freePersistent();
      throw e;
    }
  }

  /** The CPU step's bytes (arena, parameters, state) against MAX_CPU_STEP_BYTES, before any is allocated. */
  #checkHostBytes(): void {
    const ids = [...Object.values(this.graph.params), ...Object.values(this.graph.state)];
    const bytes = this.plan.arenaBytes + ids.reduce((a, id) => a + byteSizeOf(this.graph.values[id]!.type), 0);
    if (bytes > MAX_CPU_STEP_BYTES) {
      throw new DeepwellError('OUT_OF_MEMORY', `compile: Expected a step needing at most ${MAX_CPU_STEP_BYTES} bytes of host memory on the CPU reference but received one needing ${bytes} (its arena, parameters and state)`);
    }
  }

  /** Frees every persistent value allocated so far (a failed compile, dispose()). */
  protected freePersistent(): void {
    for (const b of this.persistent.values()) this.backend.free(b);
    this.persistent.clear();
  }

  /** Allocates and initialises every parameter and state value; each buffer is recorded as soon as it exists. */
  #allocatePersistent(): void {
    for (const [name, id] of [...Object.entries(this.graph.params), ...Object.entries(this.graph.state)]) {
      const t = this.graph.values[id]!.type;
      const init = this.graph.init[name] ?? { dist: 'zeros' };
      if (t.dtype !== 'f32') {
        // 16-bit state is an activation kept across steps (a decode step's key/value caches): state
        // the graph updates, starting from zeros.
        const kept = (t.dtype === 'bf16' || t.dtype === 'f16') && name in this.graph.state && name in this.graph.updates && init.dist === 'zeros';
        if (!kept) throw new DeepwellError('INVALID_DTYPE', `compile: Expected f32 for parameter or state '${name}' (master weights and optimizer state are f32; autocast() makes the low-precision copies) but received ${shapeStr(t)}`);
        const bytes = storageBytesFor(this.device)(t);
        const buf = this.backend.alloc(bytes);
        this.persistent.set(name, buf);
        this.backend.write(buf, new Uint8Array(bytes));
        continue;
      }
      const buf = this.backend.alloc(byteSizeOf(t));
      this.persistent.set(name, buf);
      this.backend.write(buf, initialValues(init, numel(t.shape), this.seed, name) as Float32Array);
    }
  }

  /** Graph inputs that ops read as one-element hyperparameters (OpDef.scalarInputs), followed back through reshapes. */
  #findScalarInputs(): void {
    const producer = new Map<number, NodeDecl>();
    for (const n of this.graph.nodes) for (const o of n.outputs) producer.set(o, n);
    const inputName = new Map(Object.entries(this.graph.inputs).map(([k, v]) => [v, k]));
    for (const n of this.graph.nodes) {
      for (const sc of getOp(n.op).scalarInputs?.(n.inputs.length) ?? []) {
        let v = n.inputs[sc.input]!;
        for (let p = producer.get(v); p && p.op === 'reshape'; p = producer.get(v)) v = p.inputs[0]!;
        const name = inputName.get(v);
        if (name === undefined) continue;
        const prev = this.#scalarRanges.get(name);
        if (!prev || sc.min > prev.min) this.#scalarRanges.set(name, { min: sc.min, what: sc.name, op: n.op });
      }
    }
  }

  /**
   * Graph inputs used as indices (the inputs an op declares in `indexInputs`: embedding ids,
   * cross-entropy targets, …), followed back through reshapes, so a bad id is reported before
   * anything runs: a kernel on the device could only skip it, and the optimizer would then apply a
   * step computed from garbage. An input several ops read must suit all of them; errors name the
   * first.
   */
  #findIndexInputs(): void {
    const producer = new Map<number, NodeDecl>();
    for (const n of this.graph.nodes) for (const o of n.outputs) producer.set(o, n);
    const inputName = new Map(Object.entries(this.graph.inputs).map(([k, v]) => [v, k]));
    const source = (id: number): string | undefined => {
      let v = id;
      for (let p = producer.get(v); p && p.op === 'reshape'; p = producer.get(v)) v = p.inputs[0]!;
      return inputName.get(v);
    };
    for (const n of this.graph.nodes) {
      for (const index of getOp(n.op).indexInputs ?? []) {
        const name = source(n.inputs[index.input]!);
        if (!name) continue;
        const limit = index.bound(n.inputs.map((i) => this.graph.values[i]!.type), n.attrs);
        const allow = index.allow?.(n.attrs) ?? null;
        const prev = this.#indexRanges.get(name);
        this.#indexRanges.set(name, { limit: Math.min(limit, prev?.limit ?? limit), allow: prev ? (prev.allow === allow ? allow : null) : allow, op: prev?.op ?? n.op });
      }
    }
  }

  get allocatedBytes(): { arena: number; persistent: number } {
    return { arena: this.arena ? this.plan.arenaBytes : 0, persistent: [...this.persistent.values()].reduce((a, b) => a + b.bytes, 0) };
  }

  get steps(): number {
    return this.stepCount;
  }

  /** Throw DISPOSED, with dispose()'s note, once the executable is disposed (its memory is gone). */
  protected checkLive(): void {
    if (this.disposed) throw new DeepwellError('DISPOSED', `Expected a live executable but this one was disposed${this.#disposedNote ? ` ${this.#disposedNote}` : ' (dispose())'}`);
  }

  protected checkBatch(batch: Record<string, NumArray>): void {
    this.checkLive();
    if (typeof batch !== 'object' || batch === null || Array.isArray(batch)) invalid('an object of arrays by input name', 'the batch of a step', batch);
    for (const name of Object.keys(batch)) {
      if (!(name in this.graph.inputs)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(this.graph.inputs).join(', ')} for a batch input but received ${describe(name)}`);
    }
    for (const [name, id] of Object.entries(this.graph.inputs)) {
      if (!(name in batch)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a value for input '${name}' (${shapeStr(this.graph.values[id]!.type)}) but received none`);
      checkBinding(name, this.graph.values[id]!.type, batch[name]);
      const scalar = this.#scalarRanges.get(name);
      if (scalar) {
        const data = batch[name]!;
        for (let i = 0; i < data.length; i++) {
          const v = data[i]!;
          if (!(Number.isFinite(v) && v >= scalar.min)) {
            throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite number >= ${scalar.min} for input '${name}' (the ${scalar.what} of ${scalar.op}) but received ${v}`, { details: { input: name, value: v } });
          }
        }
      }
      const range = this.#indexRanges.get(name);
      if (!range) continue;
      const data = batch[name] as Int32Array;
      const i = this.findBadId(data, range.limit, range.allow);
      if (i >= 0) {
        const v = data[i]!;
        throw new DeepwellError('INVALID_ARGUMENT', `Expected ids in [0, ${range.limit})${range.allow !== null ? ` or ${range.allow}` : ''} for input '${name}' (used by ${range.op}) but received ${v} at position ${i}`, {
          details: { input: name, position: i, value: v },
        });
      }
    }
  }

  /**
   * The position of the first id outside [0, limit) that is not `allow`, or -1. Every step, so one
   * tight pass (an unsigned compare takes v < 0 too); the CUDA executable does it natively.
   */
  protected findBadId(data: Int32Array, limit: number, allow: number | null): number {
    const ok = allow ?? Number.NaN; // no id equals NaN
    for (let i = 0, n = data.length; i < n; i++) {
      const v = data[i]!;
      if (v >>> 0 >= limit && v !== ok) return i;
    }
    return -1;
  }

  protected rethrow(node: NodeDecl, e: unknown): never {
    throw new DeepwellError(DeepwellError.is(e) ? e.code : 'INTERNAL', `${this.graph.describeNode(node)}: ${(e as Error).message}`, { cause: e });
  }

  /** One step: every graph input by name in, the graph's outputs (copies) out. */
  abstract run(batch: Record<string, NumArray>): Outputs;

  /**
   * One step with the time of every node, computing what run() would: CUDA executables launch node
   * by node between CUDA events (device time); the CPU reference times each kernel on the host.
   */
  profile(_batch: Record<string, NumArray>): StepProfile {
    throw new DeepwellError('NO_BACKEND', `profile() times kernels on a GPU; this executable runs on ${this.device}`);
  }

  /** Whether steps replay one captured CUDA graph (the CUDA executable after its first steps). */
  get replaying(): boolean {
    return false;
  }

  /** How many of the step's nodes run on a side stream (the CUDA executable's overlapped gradient all-reduces, once bound). */
  get overlappedNodes(): number {
    return 0;
  }

  /** Whether node k launches nothing: a reshape whose output aliases its input's storage. */
  protected aliased(k: number): boolean {
    const out = this.kernels[k]!.node.outputs[0];
    return out !== undefined && this.plan.aliases.has(out);
  }

  /** The indices of the nodes that launch a kernel, in order. */
  protected launchedNodes(): number[] {
    return this.kernels.flatMap((_, k) => (this.aliased(k) ? [] : [k]));
  }

  /** Which kernel served each op, over how many nodes and calls so far (aliased reshapes: kernel 'alias', no calls). */
  kernelSummary(): KernelSummaryRow[] {
    const rows = new Map<string, KernelSummaryRow>();
    this.kernels.forEach((l, k) => {
      const alias = this.aliased(k);
      const kernel = alias ? 'alias' : l.kernel.name;
      const key = `${l.node.op}/${kernel}`;
      const r = rows.get(key) ?? { op: l.node.op, kernel, backend: l.kernel.backend, nodes: 0, calls: 0 };
      r.nodes++;
      if (!alias) r.calls += this.stepCount;
      rows.set(key, r);
    });
    return [...rows.values()].sort((a, b) => a.op.localeCompare(b.op));
  }

  /**
   * A copy of a parameter or state value by name; into `into` when given (a Float32Array of the
   * value's size, reused: the trainer's snapshots read every value into the same arrays).
   */
  get(name: string, into?: Float32Array): Float32Array {
    const id = this.named(name);
    const n = numel(this.graph.values[id]!.type.shape);
    if (into !== undefined && (!(into instanceof Float32Array) || into.length !== n)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Float32Array of ${n} elements to read '${name}' into but received ${describe(into)}${into instanceof Float32Array ? ` of ${into.length}` : ''}`);
    const out = into ?? new Float32Array(n);
    const buf = this.persistent.get(this.persistentName(id))!;
    const dtype = this.graph.values[id]!.type.dtype;
    if (this.device !== 'cpu' && (dtype === 'bf16' || dtype === 'f16')) {
      const bits = new Uint16Array(n);
      this.backend.read(buf, bits);
      const dec = dtype === 'bf16' ? bf16BitsToF32 : f16BitsToF32;
      for (let i = 0; i < n; i++) out[i] = dec(bits[i]!);
    } else this.backend.read(buf, out);
    return out;
  }

  /** Overwrite a parameter or state value by name. */
  set(name: string, data: Float32Array | Float64Array): void {
    const id = this.named(name);
    const t = this.graph.values[id]!.type;
    checkBinding(name, t, data);
    const buf = this.persistent.get(this.persistentName(id))!;
    if (this.device !== 'cpu' && (t.dtype === 'bf16' || t.dtype === 'f16')) {
      const enc = t.dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
      this.backend.write(buf, Uint16Array.from(data, (v) => enc(v)));
    } else if (t.dtype === 'bf16' || t.dtype === 'f16') {
      // The CPU stores 16-bit values widened: rounded to their format, as its kernels leave them.
      const v = Float32Array.from(data);
      roundTo(t.dtype, v);
      this.backend.write(buf, v);
    } else this.backend.write(buf, data instanceof Float32Array ? data : Float32Array.from(data));
  }

  parameterNames(): string[] {
    return Object.keys(this.graph.params);
  }

  protected persistentName(id: number): string {
    return this.plan.persistent.get(id)!;
  }

  protected named(name: string): number {
    this.checkLive();
    if (typeof name !== 'string') invalid('a parameter or state name', 'get/set', name);
    const id = this.graph.params[name] ?? this.graph.state[name];
    if (id === undefined) {
      const known = [...Object.keys(this.graph.params), ...Object.keys(this.graph.state)];
      const near = known.filter((k) => editDistance(k, name) <= 2).slice(0, 3);
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a parameter or state name but received ${describe(name)} (unknown${near.length ? `; did you mean ${near.join(', ')}?` : ''})`);
    }
    return id;
  }

  /**
   * Free the arena and the persistent values. `note` says who disposed it and when (e.g. "when
   * fit() returned"); a later run, get or set throws DISPOSED with it.
   */
  dispose(note?: string): void {
    if (note !== undefined && typeof note !== 'string') invalid('a string', 'the note of dispose()', note);
    if (this.disposed) return;
    this.disposed = true;
    this.#disposedNote = note ?? '';
    this.release();
    if (this.arena) this.backend.free(this.arena);
    this.freePersistent();
  }

  protected release(): void {}
}

class CpuExecutable extends Executable {
  #launches: { index: number; node: NodeDecl; kernel: KernelCandidate<any, void>; call: KernelCall; narrow: [DTypeName, NumArray][] }[] = [];
  #views = new Map<number, NumArray>();

  constructor(graph: Graph, options: CompileOptions) {
    super(graph, options, getBackend('cpu'));
  }

  #view(id: number): NumArray {
    const v = this.#views.get(id);
    if (v) return v;
    const t = this.graph.values[id]!.type;
    const pname = this.plan.persistent.get(id);
    const buf = (pname ? this.persistent.get(pname)! : this.arena!) as CpuBuffer;
    const offset = pname ? 0 : this.plan.placements.get(id)!.offset;
    const Ctor = t.dtype === 'i32' ? Int32Array : Float32Array;
    const view = new Ctor(buf.data.buffer as ArrayBuffer, buf.data.byteOffset + offset, numel(t.shape));
    this.#views.set(id, view);
    return view;
  }

  #bind(): void {
    this.arena = this.backend.alloc(this.plan.arenaBytes);
    this.#launches = this.launchedNodes().map((k) => {
      const { node, kernel, params } = this.kernels[k]!;
      const outputs = node.outputs.map((o) => this.#view(o));
      // Outputs stored widened that the kernel must leave rounded to their format.
      const narrow = params.outTypes.flatMap((t, j): [DTypeName, NumArray][] => (t.dtype === 'bf16' || t.dtype === 'f16' ? [[t.dtype, outputs[j]!]] : []));
      return { index: k, node, kernel, call: { ...params, inputs: node.inputs.map((i) => this.#view(i)), outputs }, narrow };
    });
  }

  run(batch: Record<string, NumArray>): Outputs {
    return this.#step(batch, null);
  }

  /** One step with each node's host time (the reference kernels run on the calling thread). */
  override profile(batch: Record<string, NumArray>): StepProfile {
    const ms = new Map<number, number>();
    const t0 = performance.now();
    const outputs = this.#step(batch, ms);
    const totalMs = performance.now() - t0;
    const nodes = this.kernels.map(({ node, kernel }, k) => ({ index: k, op: node.op, kernel: this.aliased(k) ? 'alias' : kernel.name, scope: node.scope, ms: ms.get(k) ?? 0 }));
    return { outputs, nodes, totalMs };
  }

  /** The step; with `times`, each launched node's milliseconds by its graph index. */
  #step(batch: Record<string, NumArray>, times: Map<number, number> | null): Outputs {
    this.checkBatch(batch);
    if (!this.arena) this.#bind();
    for (const [name, id] of Object.entries(this.graph.inputs)) this.#view(id).set(batch[name]! as never);
    for (const l of this.#launches) {
      const t = times ? performance.now() : 0;
      try {
        l.kernel.run(l.call);
      } catch (e) {
        this.rethrow(l.node, e);
      }
      for (const [dtype, view] of l.narrow) roundTo(dtype, view);
      if (times) times.set(l.index, performance.now() - t);
    }
    for (const [name, id] of Object.entries(this.graph.updates)) {
      if (this.plan.persistent.get(id) === name) continue;
      const target = this.graph.params[name] ?? this.graph.state[name]!;
      this.#view(target).set(this.#view(id) as never);
    }
    this.stepCount++;
    const out: Outputs = {};
    for (const [name, id] of Object.entries(this.graph.outputs)) out[name] = this.#view(id).slice() as Float32Array | Int32Array;
    return out;
  }

  protected override release(): void {
    this.#views.clear();
  }
}

/** The host time of a CUDA step by part, in µs (CudaExecutable's lastHostSplit). */
export interface HostSplit {
  checkUs: number;
  stageUs: number;
  launchUs: number;
  outputsUs: number;
}

class CudaExecutable extends Executable {
  #stream: kn.Stream;
  #graphExec: kn.Graph | null = null;
  #useGraph: boolean;
  #launches: { index: number; node: NodeDecl; kernel: KernelCandidate<any, void>; call: CudaCall<KernelParams> }[] = [];
  #staging = new Map<string, { pinned: kn.PinnedBuffer; arg: DevArg; put: (v: NumArray) => void; take: () => Float32Array | Int32Array }>();
  #lastHostMs = 0;
  #lastHostSplit: HostSplit = { checkUs: 0, stageUs: 0, launchUs: 0, outputsUs: 0 };
  /** The communicators of the step's collective nodes (dataParallel, ZeRO-1): waited on through NCCL, so a peer's failure ends the wait. */
  #comms: number[];
  /** The gradient buckets' all-reduces on a side stream (overlap.ts), or null when the step has none. */
  #overlap: CollectiveOverlap | null = null;

  constructor(graph: Graph, options: CompileOptions) {
    super(graph, options, getBackend(options.device!));
    this.#comms = [...new Set(this.graph.nodes.filter((n) => COLLECTIVES.has(n.op) && n.attrs.comm !== 0).map((n) => n.attrs.comm as number))];
    try {
      this.#stream = new kn.Stream(Number(this.device.split(':')[1]));
    } catch (e) {
      // The parameters and state are already on the device: free them, as a failed compile must.
      this.freePersistent();
      throw e;
    }
    this.#useGraph = options.cudaGraph ?? true;
  }

  #arg(id: number): DevArg {
    const t = this.graph.values[id]!.type;
    const pname = this.plan.persistent.get(id);
    const buf = (pname ? this.persistent.get(pname)! : this.arena!) as kn.CudaBuffer;
    return { base: buf.ptr, offset: pname ? 0 : this.plan.placements.get(id)!.offset, bytes: byteSizeOf(t) };
  }

  /** Node k's workspace: its region of the arena, or null when its kernel declared none. */
  #workspace(k: number): DevArg | null {
    const w = this.plan.workspaces.get(k);
    return w ? { base: (this.arena as kn.CudaBuffer).ptr, offset: w.offset, bytes: this.kernels[k]!.workspace } : null;
  }

  /** The arena, the launches and the pinned staging buffers; on a failure part-way, all freed (the next run binds afresh). */
  #bind(): void {
    this.arena = this.backend.alloc(Math.max(1, this.plan.arenaBytes));
    try {
      this.#bindLaunches();
    } catch (e) {
      for (const st of this.#staging.values()) st.pinned.dispose();
      this.#staging.clear();
      this.#launches = [];
      this.#overlap?.dispose();
      this.#overlap = null;
      this.backend.free(this.arena);
      this.arena = null;
      throw e;
    }
  }

  #bindLaunches(): void {
    const bound = this.launchedNodes().map((k) => {
      const { node, kernel, params } = this.kernels[k]!;
      return { k, node, kernel, params, inputs: node.inputs.map((i) => this.#arg(i)), outputs: node.outputs.map((o) => this.#arg(o)) };
    });
    const side = bound.filter((b) => overlaps(b.node, b.inputs, b.outputs)).map((b) => b.k);
    if (side.length) this.#overlap = new CollectiveOverlap(Number(this.device.split(':')[1]), side);
    this.#launches = bound.map(({ k, node, kernel, params, inputs, outputs }) => {
      const stream = this.#overlap?.has(k) ? this.#overlap.stream.handle : this.#stream.handle;
      return { index: k, node, kernel, call: { ...params, stream, inputs, outputs, workspace: this.#workspace(k) } };
    });
    const io = [...Object.entries(this.graph.inputs), ...Object.entries(this.graph.outputs).map(([k, v]) => [`out:${k}`, v] as const)];
    for (const [name, id] of io) {
      const t = this.graph.values[id]!.type;
      const pinned = new kn.PinnedBuffer(Math.max(4, byteSizeOf(t)));
      const n = numel(t.shape);
      if (t.dtype === 'bf16' || t.dtype === 'f16') {
        // 16-bit storage: the host side sees f32 values, rounded to nearest even on the way in.
        const bits = new Uint16Array(pinned.buffer, 0, n);
        const [enc, dec] = t.dtype === 'bf16' ? [f32ToBf16Bits, bf16BitsToF32] : [f32ToF16Bits, f16BitsToF32];
        const put = (v: NumArray) => {
          for (let i = 0; i < n; i++) bits[i] = enc(v[i] as number);
        };
        this.#staging.set(name, { pinned, arg: this.#arg(id), put, take: () => Float32Array.from(bits, dec) });
      } else {
        const view = t.dtype === 'i32' ? new Int32Array(pinned.buffer, 0, n) : new Float32Array(pinned.buffer, 0, n);
        this.#staging.set(name, { pinned, arg: this.#arg(id), put: (v) => view.set(v as never), take: () => view.slice() });
      }
    }
  }

  #enqueueKernels(checkIndices: boolean): void {
    const side = this.#overlap;
    for (const l of this.#launches) {
      const call = checkIndices ? l.call : { ...l.call, checkIndices: false };
      const launch = () => {
        try {
          l.kernel.run(call);
        } catch (e) {
          this.rethrow(l.node, e);
        }
      };
      if (side?.has(l.index)) {
        side.run(l.index, l.node, this.#stream, launch);
      } else {
        side?.before(l.node, this.#stream);
        launch();
      }
    }
    side?.joinAll(this.#stream);
    this.#copyUpdates();
  }

  /** Updates not written in place are copied into their persistent value. */
  #copyUpdates(): void {
    for (const [name, id] of Object.entries(this.graph.updates)) {
      if (this.plan.persistent.get(id) === name) continue;
      const src = this.#arg(id);
      const dst = this.#arg(this.graph.params[name] ?? this.graph.state[name]!);
      kn.loadNative().copyDtoD(dst.base, dst.offset, src.base, src.offset, src.bytes, this.#stream.handle);
    }
  }

  protected override findBadId(data: Int32Array, limit: number, allow: number | null): number {
    return kn.loadNative().firstBadId(data, limit, allow ?? 0, allow === null ? 0 : 1);
  }

  /** Copies the (checked) batch into the inputs' pinned buffers and queues their uploads. */
  #stageInputs(batch: Record<string, NumArray>): kn.NativeAddon {
    if (!this.arena) this.#bind();
    const native = kn.loadNative();
    for (const [name] of Object.entries(this.graph.inputs)) {
      const s = this.#staging.get(name)!;
      s.put(batch[name]!);
      native.copyHtoDAsync(s.arg.base, s.arg.offset, new Uint8Array(s.pinned.buffer, 0, s.arg.bytes), this.#stream.handle);
    }
    return native;
  }

  /**
   * One step like run(), launched node by node (not replayed) with a pair of CUDA events around each
   * node's kernels: where the step's device time goes. It is a real step (the weights update), and
   * computes what run() would, bit for bit. Returns the per-node times and the step's outputs.
   */
  override profile(batch: Record<string, NumArray>): StepProfile {
    this.checkBatch(batch);
    const native = this.#stageInputs(batch);
    const dev = Number(this.device.split(':')[1]);
    // Every event made is disposed at the end, also when making one (or the step) fails part-way.
    const made: kn.Event[] = [];
    const event = () => {
      const e = new kn.Event(dev);
      made.push(e);
      return e;
    };
    try {
      const events = this.#launches.map(() => [event(), event()] as const);
      const [first, last] = [event(), event()];
      first.record(this.#stream);
      this.#launches.forEach((l, j) => {
        events[j]![0].record(this.#stream);
        try {
          // Node by node on the step's stream (the side stream's overlap would blur the times).
          l.kernel.run({ ...l.call, stream: this.#stream.handle, checkIndices: false });
        } catch (e) {
          this.rethrow(l.node, e);
        }
        events[j]![1].record(this.#stream);
      });
      this.#copyUpdates();
      last.record(this.#stream);
      const outputs = this.#finish(native);
      // Every node, by its index in the graph; an aliased reshape launched nothing and took no time.
      const ms = new Map(this.#launches.map((l, j) => [l.index, events[j]![1].elapsedSince(events[j]![0])]));
      const nodes = this.kernels.map(({ node, kernel }, k) => ({ index: k, op: node.op, kernel: this.aliased(k) ? 'alias' : kernel.name, scope: node.scope, ms: ms.get(k) ?? 0 }));
      return { outputs, nodes, totalMs: last.elapsedSince(first) };
    } finally {
      for (const e of made) e.dispose();
    }
  }

  /** Queue the outputs' copies, wait for the step, check device-side errors, count the step. */
  #finish(native: kn.NativeAddon, t?: readonly [number, number, number, number]): Outputs {
    for (const [name] of Object.entries(this.graph.outputs)) {
      const s = this.#staging.get(`out:${name}`)!;
      native.copyDtoHAsync(new Uint8Array(s.pinned.buffer, 0, s.arg.bytes), s.arg.base, s.arg.offset, this.#stream.handle);
    }
    if (t) {
      const t4 = performance.now();
      this.#lastHostMs = t4 - t[0];
      this.#lastHostSplit = { checkUs: 1000 * (t[1] - t[0]), stageUs: 1000 * (t[2] - t[1]), launchUs: 1000 * (t[3] - t[2]), outputsUs: 1000 * (t4 - t[3]) };
    }
    // A data-parallel step waits through NCCL: a peer that failed or stopped ends the wait with
    // PEER_FAILED or TIMEOUT (the communicator aborted) instead of blocking here forever.
    for (const comm of this.#comms) native.ncclStreamWait(comm, this.#stream.handle);
    this.#stream.synchronize();
    // Bad indices inside a captured step are flagged on the device; report them now.
    if (this.#graphExec) {
      try {
        native.opsErrorCheck(this.#stream.handle);
      } catch (e) {
        throw new DeepwellError(DeepwellError.is(e) ? e.code : 'INTERNAL', `in a replayed step: ${(e as Error).message}`, { cause: e });
      }
    }
    this.stepCount++;
    const out: Outputs = {};
    for (const [name] of Object.entries(this.graph.outputs)) out[name] = this.#staging.get(`out:${name}`)!.take();
    return out;
  }

  run(batch: Record<string, NumArray>): Outputs {
    const t0 = performance.now();
    this.checkBatch(batch);
    const t1 = performance.now();
    const native = this.#stageInputs(batch);
    const t2 = performance.now();
    if (this.stepCount === 0 || !this.#useGraph) {
      this.#enqueueKernels(this.stepCount === 0 || !this.#useGraph);
    } else {
      if (!this.#graphExec) this.#graphExec = kn.Graph.capture(this.#stream, () => this.#enqueueKernels(false));
      this.#graphExec.launch(this.#stream);
    }
    return this.#finish(native, [t0, t1, t2, performance.now()]);
  }

  /** Host time of the last run() up to the wait for the device (queueing the step, not running it). */
  get lastHostMs(): number {
    return this.#lastHostMs;
  }

  /** Where lastHostMs went, in µs: the batch check, staging the inputs, launching the step, queueing the outputs' copies. */
  get lastHostSplit(): HostSplit {
    return { ...this.#lastHostSplit };
  }

  override get replaying(): boolean {
    return this.#graphExec !== null;
  }

  override get overlappedNodes(): number {
    return this.#launches.filter((l) => this.#overlap?.has(l.index)).length;
  }

  /** The captured step's nodes (all, and by kind), once it is replaying; else null. */
  get graphNodes(): { nodes: number; kinds: kn.GraphNodeKinds } | null {
    return this.#graphExec ? { nodes: this.#graphExec.nodes, kinds: { ...this.#graphExec.kinds } } : null;
  }

  protected override release(): void {
    this.#graphExec?.dispose();
    this.#overlap?.dispose();
    this.#overlap = null;
    for (const s of this.#staging.values()) s.pinned.dispose();
    this.#staging.clear();
    this.#stream.dispose();
  }
}

/** The most host memory a CPU-reference step may take (arena, parameters and state): 4 GiB. */
export const MAX_CPU_STEP_BYTES = 2 ** 32;

export function compile(graph: Graph, options: CompileOptions = {}): Executable {
  checkGraph(graph, 'the graph to compile');
  checkKeys(options, ['device', 'seed', 'precision', 'fuse', 'cudaGraph'], 'compile');
  if (options.device !== undefined && typeof options.device !== 'string') invalid("'cpu' or 'cuda:N'", 'compile device', options.device);
  if (options.seed !== undefined) checkSeed(options.seed, 'compile seed');
  if (options.precision !== undefined) checkPass(options.precision, 'compile precision');
  for (const k of ['fuse', 'cudaGraph'] as const) if (options[k] !== undefined && typeof options[k] !== 'boolean') invalid('a boolean', `compile ${k}`, options[k]);
  const device = options.device ?? 'cpu';
  if (device === 'cpu') return new CpuExecutable(graph, options);
  checkDeviceName(device, 'device of compile');
  const status = kn.cudaStatus();
  if (!status.available) throw new DeepwellError('NO_BACKEND', `compile: ${device} is not available here (${status.reason})`);
  const index = Number(device.slice(5));
  if (index >= status.deviceCount) throw new DeepwellError('INVALID_ARGUMENT', `compile: Expected a device in cuda:0 to cuda:${status.deviceCount - 1} but received ${device}`);
  kn.registerCudaBackends();
  return new CudaExecutable(graph, { ...options, device });
}

