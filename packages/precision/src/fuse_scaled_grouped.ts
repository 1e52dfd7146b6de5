/**
 * Epilogue fusion of the FP8 grouped GEMMs of a GELU or SwiGLU expert MLP, after the precision
 * policy's native rewrite (fp8-blockwise): the activation and the quantization of its result for the
 * next GEMM done as the grouped GEMM writes its product, so the bf16 activation is never read back to
 * be quantized. What ir's fuse-grouped.ts does for the bf16 grouped GEMMs (fuseGeluInto,
 * fuseDgeluInto, fuseGroupedSwiglu), with the quantize that follows taken in too:
 *   A. grouped_scaled_matmul M → gelu G → quantize Q (fp8-block1x128, rowwise) of G's output:
 *      M becomes grouped_scaled_matmul_gelu with outputs [G's, M's, Q's codes, Q's scales]; the
 *      product M wrote stays (pre, for gelu_backward), and G's output keeps its other readers (the
 *      weight gradient's quantize_kgrouped).
 *   B. grouped_scaled_matmul M → gelu_backward GB (M's product its gradient input dh, and its only
 *      use; pre another value) → quantize Q of GB's output: GB becomes grouped_scaled_matmul_dgelu
 *      with inputs [...M's, pre], M's attributes, outputs [GB's, Q's codes, Q's scales].
 *   C. grouped_scaled_matmul M1 (gate) and M3 (up) reading one a, aScale and offsets with the same
 *      attributes (the policy's rewrite shares x's quantize between them: native_grouped.ts) →
 *      swiglu S (gate M1's product, up M3's) → quantize Q of S's output: the later of M1 and M3 (L;
 *      the other E) becomes grouped_scaled_matmul_swiglu with inputs [a, aScale, M1's b and bScale,
 *      M3's b and bScale, offsets], M1's attributes, outputs [S's, M1's, M3's, Q's codes, Q's
 *      scales]; both products stay (swiglu's gradient reads them), with their other readers.
 * Every value keeps its id, so every reader (and the graph's outputs) reads what it read before; G
 * (or M; or E and S) and Q are left without outputs, for eliminateDeadCode to drop. A gelu or
 * gelu_backward that returns an amax, a product or result in a form the fused kernel does not take
 * (the op's shape rule refuses it: N not a multiple of 128, f32 out, w3 not of w1's type, …), two
 * GEMMs of different inputs, or an activation with no such quantize is left alone.
 *
 * Order: the fused node sits where M (A), GB (B) or L (C) was, and that is always a topological order
 * when the graph's was, given C's one check. A: M's inputs come before M; G's output is read only
 * after G, which reads M; Q's codes and scales only after Q, which reads G's output. B: M's inputs
 * come before M, which GB reads, and pre before GB; GB's output and Q's results are read after GB and
 * Q. C: M1's and M3's inputs come before them, so before L; L's product is read only after L; S reads
 * both products, so S, Q and their results' readers come after L; E's product is read after E, but
 * a reader between E and L would come before the fused node: such a site is left unfused (none in a
 * policy's graph, where S is the first reader of both). The dead nodes still read values computed
 * before them.
 *
 * `kernels` (the policy's registry probe on a CUDA device; null on the CPU) is asked about each fused
 * call: where no kernel takes it the site is left unfused, silently (the unfused graph runs).
 * Tests: test/grouped_scaled_matmul_act.test.ts.
 */
import { invalid } from '@deepwell/core';
import { checkAttrs, getOp, type Graph, type NodeDecl, type ValueType } from '@deepwell/ir';
import { checkGraphLike } from './guards.js';
import { producerMap } from './native_gemm.js';
import type { KernelProbe } from './native_grouped.js';
import { EPILOGUE_QUANTIZE, GROUPED_DGELU_OP, GROUPED_GELU_OP, GROUPED_SWIGLU_OP } from './ops/grouped_scaled_matmul_act.js';

const sameType = (a: ValueType, b: ValueType) => a.dtype === b.dtype && a.shape.join() === b.shape.join();

/** Every node reading each value (a node reading a value twice listed once). */
function readersOf(graph: Graph): Map<number, NodeDecl[]> {
  const readers = new Map<number, NodeDecl[]>();
  for (const n of graph.nodes) for (const i of new Set(n.inputs)) readers.set(i, [...(readers.get(i) ?? []), n]);
  return readers;
}

/** How many times each value is read, the graph's outputs, updates and gradients counted. */
function useCounts(graph: Graph): Map<number, number> {
  const uses = new Map<number, number>();
  for (const n of graph.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const table of [graph.outputs, graph.updates, graph.gradients]) for (const v of Object.values(table ?? {})) uses.set(v, (uses.get(v) ?? 0) + 1);
  return uses;
}

/** A quantize of value `v` alone, into the 1 × 128 rowwise codes and scales the epilogue writes. */
function isEpilogueQuantize(q: NodeDecl, v: number): boolean {
  const direction = q.attrs.direction ?? 'rowwise';
  return q.op === 'quantize' && q.inputs.length === 1 && q.inputs[0] === v && q.outputs.length === 2 && q.attrs.format === EPILOGUE_QUANTIZE.format && direction === EPILOGUE_QUANTIZE.direction;
}

/** A grouped_scaled_matmul (not yet fused) writing one product. */
const isScaledGemm = (m: NodeDecl | undefined): m is NodeDecl => m !== undefined && m.op === 'grouped_scaled_matmul' && m.outputs.length === 1;

/**
 * Whether fused op `op` takes inputs of these types and attributes, giving exactly the types of the
 * values it is to write, and (on a device) has a kernel for the call.
 */
function fits(graph: Graph, op: string, inputs: number[], attrs: NodeDecl['attrs'], outputs: number[], kernels: KernelProbe): boolean {
  const inTypes = inputs.map((id) => graph.values[id]!.type);
  let want: ValueType[];
  try {
    const def = getOp(op);
    want = def.infer(inTypes, checkAttrs(def, attrs));
  } catch {
    return false; // a form the fused kernel does not take: the unfused graph stays
  }
  if (want.length !== outputs.length || !want.every((t, k) => sameType(t, graph.values[outputs[k]!]!.type))) return false;
  return kernels === null || kernels(op, inTypes, attrs) === true;
}

/** The values now written by node n: their producer is n (before eliminateDeadCode renumbers). */
function own(graph: Graph, n: NodeDecl): void {
  for (const o of n.outputs) graph.values[o]!.producer = n.id;
}

/**
 * Node n becomes the fused call (op, inputs, attributes, outputs) and owns its outputs; the nodes it
 * replaces are left without outputs, for eliminateDeadCode.
 */
function becomeFused(graph: Graph, n: NodeDecl, op: string, inputs: number[], attrs: NodeDecl['attrs'], outputs: number[], replaced: NodeDecl[]): void {
  n.op = op;
  n.inputs = inputs;
  n.attrs = attrs;
  n.outputs = outputs;
  for (const r of replaced) r.outputs = [];
  own(graph, n);
}

/** A: grouped_scaled_matmul → gelu → quantize becomes grouped_scaled_matmul_gelu. */
function fuseGelu(graph: Graph, kernels: KernelProbe): number {
  const producer = producerMap(graph);
  const readers = readersOf(graph);
  let fused = 0;
  for (const g of graph.nodes) {
    if (g.op !== 'gelu' || g.outputs.length !== 1 || g.inputs.length !== 1 || g.attrs.amax === true) continue;
    const m = producer.get(g.inputs[0]!);
    if (!isScaledGemm(m)) continue;
    const h = g.outputs[0]!;
    const q = (readers.get(h) ?? []).find((n) => isEpilogueQuantize(n, h));
    if (!q) continue;
    const outputs = [h, m.outputs[0]!, q.outputs[0]!, q.outputs[1]!];
    if (!fits(graph, GROUPED_GELU_OP, m.inputs, m.attrs, outputs, kernels)) continue;
    becomeFused(graph, m, GROUPED_GELU_OP, m.inputs, m.attrs, outputs, [g, q]);
    fused++;
  }
  return fused;
}

/** B: grouped_scaled_matmul → gelu_backward(dh, pre) → quantize becomes grouped_scaled_matmul_dgelu. */
function fuseDgelu(graph: Graph, kernels: KernelProbe): number {
  const producer = producerMap(graph);
  const readers = readersOf(graph);
  const uses = useCounts(graph);
  let fused = 0;
  for (const gb of graph.nodes) {
    if (gb.op !== 'gelu_backward' || gb.outputs.length !== 1 || gb.inputs.length !== 2 || gb.attrs.amax === true) continue;
    const [dh, pre] = gb.inputs as [number, number];
    const m = producer.get(dh);
    if (!isScaledGemm(m) || pre === dh || uses.get(dh) !== 1) continue;
    const out = gb.outputs[0]!;
    const q = (readers.get(out) ?? []).find((n) => isEpilogueQuantize(n, out));
    if (!q) continue;
    const inputs = [...m.inputs, pre];
    const outputs = [out, q.outputs[0]!, q.outputs[1]!];
    if (!fits(graph, GROUPED_DGELU_OP, inputs, m.attrs, outputs, kernels)) continue;
    becomeFused(graph, gb, GROUPED_DGELU_OP, inputs, m.attrs, outputs, [m, q]);
    fused++;
  }
  return fused;
}

/** Whether two grouped_scaled_matmul nodes have the same attributes, defaults filled in. */
function sameAttrs(x: NodeDecl, y: NodeDecl): boolean {
  try {
    const def = getOp(x.op);
    const [p, q] = [checkAttrs(def, x.attrs), checkAttrs(def, y.attrs)];
    return Object.keys({ ...p, ...q }).every((k) => p[k] === q[k]);
  } catch {
    return false;
  }
}

/** C: grouped_scaled_matmul × 2 (gate, up) of one a → swiglu → quantize becomes grouped_scaled_matmul_swiglu. */
function fuseSwiglu(graph: Graph, kernels: KernelProbe): number {
  const producer = producerMap(graph);
  const readers = readersOf(graph);
  const position = new Map(graph.nodes.map((n, i) => [n, i] as const));
  let fused = 0;
  for (const s of graph.nodes) {
    if (s.op !== 'swiglu' || s.outputs.length !== 1 || s.inputs.length !== 2) continue;
    const [m1, m3] = [producer.get(s.inputs[0]!), producer.get(s.inputs[1]!)];
    if (!isScaledGemm(m1) || !isScaledGemm(m3) || m1 === m3 || m1.inputs.length !== 5 || m3.inputs.length !== 5) continue;
    const [a, aScale, b1, b1Scale, offsets] = m1.inputs as [number, number, number, number, number];
    if (m3.inputs[0] !== a || m3.inputs[1] !== aScale || m3.inputs[4] !== offsets || !sameAttrs(m1, m3)) continue;
    const out = s.outputs[0]!;
    const q = (readers.get(out) ?? []).find((n) => isEpilogueQuantize(n, out));
    if (!q) continue;
    // The fused node takes the later GEMM's place: the earlier one's product read before it is not fused.
    const [early, late] = position.get(m1)! < position.get(m3)! ? [m1, m3] : [m3, m1];
    const at = position.get(late)!;
    if ((readers.get(early.outputs[0]!) ?? []).some((n) => position.get(n)! < at)) continue;
    const inputs = [a, aScale, b1, b1Scale, m3.inputs[2]!, m3.inputs[3]!, offsets];
    const outputs = [out, m1.outputs[0]!, m3.outputs[0]!, q.outputs[0]!, q.outputs[1]!];
    if (!fits(graph, GROUPED_SWIGLU_OP, inputs, m1.attrs, outputs, kernels)) continue;
    becomeFused(graph, late, GROUPED_SWIGLU_OP, inputs, m1.attrs, outputs, [early, s, q]);
    fused++;
  }
  return fused;
}

/**
 * The three fusions, in place (A, B, then C); returns how many sites each fused. Run
 * eliminateDeadCode afterwards (the policy does): the nodes left without outputs are dropped there.
 */
export function fuseScaledGroupedEpilogues(graph: Graph, kernels: KernelProbe = null): { gelu: number; dgelu: number; swiglu: number } {
  checkGraphLike(graph, 'the graph of fuseScaledGroupedEpilogues');
  if (kernels !== null && typeof kernels !== 'function') invalid('a kernel probe ((op, inTypes, attrs) => true | reason) or null', 'fuseScaledGroupedEpilogues', kernels);
  const gelu = fuseGelu(graph, kernels);
  const dgelu = fuseDgelu(graph, kernels);
  const swiglu = fuseSwiglu(graph, kernels);
  return { gelu, dgelu, swiglu };
}
