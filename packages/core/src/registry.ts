/**
 * The kernel registry, after PyTorch's SDPA dispatch: each op has candidates ordered by priority;
 * `select` takes the first whose `supports(params)` is true, and when none is, the error lists
 * every candidate with its reason. Counting which kernel served each call makes `summary()`
 * answer "what actually ran". The package that defines an op registers its kernels here.
 */
import { checkFunction, checkInteger } from './check.js';
import { DeepwellError, describe, invalid } from './errors.js';

export interface KernelCandidate<P = unknown, R = unknown> {
  readonly op: string;
  /** Where it runs: 'cpu', 'cuda', or a vendor-specific name such as 'cuda:cublaslt'. */
  readonly backend: string;
  readonly name: string;
  /** Higher runs first. */
  readonly priority: number;
  /** `true` when this kernel can serve `params`; otherwise a reason a person can read. */
  supports(params: P): true | string;
  /**
   * Device scratch one call with `params` needs, in bytes (absent: none). A compiled step's memory
   * plan places it in the arena for the duration of the call; eager callers allocate it.
   */
  workspace?(params: P): number;
  run(params: P): R;
}

export interface ExplainRow {
  name: string;
  backend: string;
  priority: number;
  /** 'selected', 'supported' (a lower-priority fit) or the reason it does not fit. */
  verdict: string;
}

export interface Explanation {
  op: string;
  selected: string | null;
  rows: ExplainRow[];
  /** The same as text, one candidate a line. */
  text: string;
}

export interface SummaryRow {
  op: string;
  kernel: string;
  backend: string;
  calls: number;
}

export class KernelRegistry {
  #ops = new Map<string, KernelCandidate<any, any>[]>();
  #calls = new Map<KernelCandidate<any, any>, number>();

  register<P, R>(candidate: KernelCandidate<P, R>): void {
    const c = candidate as KernelCandidate<P, R> | undefined;
    for (const key of ['op', 'backend', 'name'] as const) {
      if (typeof c?.[key] !== 'string' || c[key] === '') {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-empty string for kernel ${key} but received ${describe(c?.[key])}`);
      }
    }
    checkInteger(c!.priority, `priority of kernel '${c!.name}'`, -1_000_000, 1_000_000);
    checkFunction(c!.supports, `supports of kernel '${c!.name}'`);
    checkFunction(c!.run, `run of kernel '${c!.name}'`);
    if (c!.workspace !== undefined) checkFunction(c!.workspace, `workspace of kernel '${c!.name}'`);
    const list = this.#ops.get(c!.op) ?? [];
    if (list.some((k) => k.name === c!.name)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Kernel '${c!.name}' is already registered for op '${c!.op}'`);
    }
    list.push(c!);
    list.sort((a, b) => b.priority - a.priority);
    this.#ops.set(c!.op, list);
  }

  unregister(op: string, name: string): boolean {
    checkOp(op);
    if (typeof name !== 'string') invalid('a kernel name (a string)', 'unregister', name);
    const list = this.#ops.get(op);
    const i = list?.findIndex((k) => k.name === name) ?? -1;
    if (i < 0) return false;
    this.#calls.delete(list![i]!);
    list!.splice(i, 1);
    return true;
  }

  ops(): string[] {
    return [...this.#ops.keys()].sort();
  }

  candidates(op: string): readonly KernelCandidate<any, any>[] {
    checkOp(op);
    return [...(this.#ops.get(op) ?? [])];
  }

  explain<P>(op: string, params: P): Explanation {
    checkOp(op);
    let selected: string | null = null;
    const rows: ExplainRow[] = (this.#ops.get(op) ?? []).map((k) => {
      const verdict = verdictOf(k, params);
      const ok = verdict === true;
      if (ok && selected === null) selected = k.name;
      return { name: k.name, backend: k.backend, priority: k.priority, verdict: ok ? (selected === k.name ? 'selected' : 'supported') : verdict };
    });
    const head = `${op}: ${selected ? `'${selected}'` : 'no kernel fits'}`;
    const lines = rows.map((r) => `  ${r.verdict === 'selected' ? '->' : '  '} ${r.name} [${r.backend}, priority ${r.priority}]: ${r.verdict}`);
    if (rows.length === 0) lines.push('  (no kernels registered for this op)');
    return { op, selected, rows, text: [head, ...lines].join('\n') };
  }

  select<P, R = unknown>(op: string, params: P): KernelCandidate<P, R> {
    checkOp(op);
    for (const k of this.#ops.get(op) ?? []) if (verdictOf(k, params) === true) return k;
    const known = this.#ops.has(op) ? '' : ` (registered ops: ${this.ops().join(', ') || 'none'})`;
    throw new DeepwellError('NO_KERNEL', `No kernel supports this call of '${op}'${known}\n${this.explain(op, params).text}`, {
      details: { op, candidates: this.explain(op, params).rows },
    });
  }

  /** Select, count and run. */
  dispatch<P, R = unknown>(op: string, params: P): R {
    const k = this.select<P, R>(op, params);
    this.#calls.set(k, (this.#calls.get(k) ?? 0) + 1);
    return k.run(params);
  }


  summary(): SummaryRow[] {
    return [...this.#calls]
      .map(([k, calls]) => ({ op: k.op, kernel: k.name, backend: k.backend, calls }))
      .sort((a, b) => a.op.localeCompare(b.op) || b.calls - a.calls);
  }

  resetSummary(): void {
    this.#calls.clear();
  }
}

function checkOp(op: unknown): void {
  if (typeof op !== 'string') invalid('an op name (a string)', 'the kernel registry', op);
}

function verdictOf<P>(k: KernelCandidate<P, unknown>, params: P): true | string {
  try {
    const v = k.supports(params);
    return v === true ? true : typeof v === 'string' && v ? v : `supports() returned ${describe(v)}`;
  } catch (e) {
    return `supports() threw: ${e instanceof Error ? e.message : String(e)}`;
  }
}

const SHARED = Symbol.for('deepwell.registry');
/** The registry shared by every Deepwell package in this process. */
export const registry: KernelRegistry =
  ((globalThis as Record<symbol, unknown>)[SHARED] as KernelRegistry | undefined) ?? new KernelRegistry();
(globalThis as Record<symbol, unknown>)[SHARED] = registry;
