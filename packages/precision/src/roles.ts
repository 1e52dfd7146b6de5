/**
 * What the GEMMs of a training step are, read off the graph's structure (never off parameter or
 * module names, which are the model author's): which forward GEMMs make the output head, and how
 * deep in the stack of residual blocks every other forward GEMM sits. The precision policy keeps the
 * head and the first and last block in BF16 by these roles.
 *
 *  - Embedding tables: the parameters an `embedding` node reads (through casts).
 *  - Output head: a forward GEMM whose product reaches a `cross_entropy`'s logits through shape and
 *    dtype changes and a bias (reshape, transpose, cast, bias_add), or one that multiplies by an
 *    embedding table (a head tied to the embedding).
 *  - MoE router: a forward GEMM whose product reaches `moe_route` (or a softmax that feeds `topk`)
 *    through the same shape and dtype changes.
 *  - Depth: from each head GEMM, the residual stream is walked back to the embedding: through the
 *    activation input of every node (the final norm, casts), and at each residual add x + f(x) (an
 *    add one of whose inputs depends on the other) on along x, recording f's nodes as one residual
 *    branch. In stream order, a new block starts at every branch that holds an attention core (a
 *    GEMM of two activations, as QKᵀ and ·V, or a fused attention op); the branches after it up to the next one (the MLP,
 *    GELU or SwiGLU, or the MoE) belong to the same block. A stack without attention counts every
 *    branch as a block. Forward GEMMs outside every branch (the head, anything before the first
 *    block) have no block.
 */
import type { Graph, NodeDecl } from '@deepwell/ir';

export interface GemmRoles {
  /** The forward GEMMs that make the output head. */
  heads: Set<NodeDecl>;
  /** The forward GEMMs that make a mixture-of-experts router's logits (they feed moe_route, or a softmax that feeds topk). */
  routers: Set<NodeDecl>;
  /** The block (0 = the first, by depth) of each forward GEMM inside one. */
  blockOf: Map<NodeDecl, number>;
  /** How many blocks the deepest stream has. */
  blocks: number;
  /** The parameter a value is (through casts), or null. */
  paramOf(id: number): string | null;
}

/** Fused attention ops (@deepwell/attention-sparsek): an attention core in one node. */
export const ATTENTION_OPS: ReadonlySet<string> = new Set(['sdpa', 'sdpa_qkv', 'sdpa_backward', 'sdpa_qkv_backward']);

/** Ops the head's product passes through on its way to the loss. */
const TO_LOGITS = new Set(['reshape', 'transpose', 'cast', 'bias_add']);

export function gemmRoles(graph: Graph): GemmRoles {
  const forward = graph.nodes.filter((n) => n.phase === 'forward');
  const producer = new Map<number, NodeDecl>();
  for (const n of forward) for (const o of n.outputs) producer.set(o, n);
  const position = new Map(graph.nodes.map((n, k) => [n, k]));
  const paramOf = (id: number): string | null => {
    const v = graph.values[id]!;
    if (v.kind === 'param') return v.name!;
    const p = producer.get(id);
    return p && p.op === 'cast' ? paramOf(p.inputs[0]!) : null;
  };
  const isGemm = (n: NodeDecl) => n.op === 'matmul' || n.op === 'grouped_matmul';

  const tables = new Set(forward.filter((n) => n.op === 'embedding').map((n) => paramOf(n.inputs[0]!)));
  const heads = new Set<NodeDecl>();
  for (const n of forward) {
    if (isGemm(n) && n.inputs.some((i) => tables.has(paramOf(i)))) heads.add(n);
    if (n.op !== 'cross_entropy') continue;
    let p = producer.get(n.inputs[0]!);
    while (p && TO_LOGITS.has(p.op)) p = producer.get(p.inputs[0]!);
    if (p && isGemm(p)) heads.add(p);
  }

  const gemmBehind = (id: number): NodeDecl | null => {
    let p = producer.get(id);
    while (p && TO_LOGITS.has(p.op)) p = producer.get(p.inputs[0]!);
    return p && isGemm(p) ? p : null;
  };
  const routers = new Set<NodeDecl>();
  const softmaxOf = new Map(forward.filter((n) => n.op === 'softmax').map((n) => [n.outputs[0]!, n]));
  for (const n of forward) {
    const logits = n.op === 'moe_route' ? n.inputs[0]! : n.op === 'topk' && softmaxOf.has(n.inputs[0]!) ? softmaxOf.get(n.inputs[0]!)!.inputs[0]! : null;
    const g = logits === null ? null : gemmBehind(logits);
    if (g) routers.add(g);
  }

  /** The forward nodes between `stream` and `value` when `value` depends on `stream`, else null. */
  const branch = (value: number, stream: number): Set<NodeDecl> | null => {
    const s = producer.get(stream);
    const floor = s ? position.get(s)! : -1; // nothing made before `stream` can depend on it
    const nodes = new Set<NodeDecl>();
    const seen = new Set<number>();
    let found = false;
    for (const todo = [value]; todo.length; ) {
      const v = todo.pop()!;
      if (v === stream) found = true;
      if (v === stream || seen.has(v)) continue;
      seen.add(v);
      const p = producer.get(v);
      if (!p || position.get(p)! <= floor) continue;
      nodes.add(p);
      todo.push(...p.inputs);
    }
    return found ? nodes : null;
  };

  /** The residual branches of the stream that ends in `value`, first block first. */
  const branchesBelow = (value: number): Set<NodeDecl>[] => {
    const out: Set<NodeDecl>[] = [];
    for (let v: number | undefined = value, p = producer.get(v); p; p = v === undefined ? undefined : producer.get(v)) {
      if (p.op === 'add' && p.inputs.length === 2) {
        const [a, b] = p.inputs as [number, number];
        const fa = branch(b, a);
        const fb = fa ? null : branch(a, b);
        if (fa || fb) {
          out.push((fa ?? fb)!);
          v = fa ? a : b;
          continue;
        }
      }
      v = p.inputs.find((i) => graph.values[i]!.kind === 'node' && paramOf(i) === null);
    }
    return out.reverse();
  };

  const blockOf = new Map<NodeDecl, number>();
  let blocks = 0;
  for (const head of heads) {
    const x = head.inputs.find((i) => paramOf(i) === null);
    if (x === undefined) continue;
    const branches = branchesBelow(x);
    const core = branches.map((f) => [...f].some((n) => ATTENTION_OPS.has(n.op) || (isGemm(n) && n.inputs.every((i) => paramOf(i) === null))));
    const starts = core.some(Boolean) ? core : core.map(() => true);
    let block = -1;
    branches.forEach((f, k) => {
      if (starts[k] || block < 0) block++;
      for (const n of f) if (isGemm(n)) blockOf.set(n, block);
    });
    blocks = Math.max(blocks, block + 1);
  }
  return { heads, routers, blockOf, blocks, paramOf };
}
