/**
 * Kernel selection and the step's memory plan, shared by compile() and dryrun() so that dryrun's
 * figure is what compile allocates: every node's kernel is chosen through core's registry, the
 * workspace it declares for the call is read, and the planner places values and workspaces in one
 * arena.
 */
import { DeepwellError, registry, type KernelCandidate } from '@deepwell/core';
import type { Graph, NodeDecl } from './graph.js';
import type { KernelParams } from './op.js';
import { planMemory, storageBytesFor, type MemoryPlan } from './planner.js';

export interface SelectedKernel {
  node: NodeDecl;
  kernel: KernelCandidate<any, void>;
  params: KernelParams;
  /** Scratch bytes the kernel declared for this call (0: none). */
  workspace: number;
}

/** Each node's kernel on `device`; NO_KERNEL (with every candidate's reason) when one has none. */
export function selectKernels(graph: Graph, device: string): SelectedKernel[] {
  return graph.nodes.map((node) => {
    const params: KernelParams = {
      op: node.op,
      device,
      inTypes: node.inputs.map((i) => graph.values[i]!.type),
      outTypes: node.outputs.map((o) => graph.values[o]!.type),
      attrs: node.attrs,
    };
    let kernel: KernelCandidate<any, void>;
    try {
      kernel = registry.select<KernelParams, void>(node.op, params);
    } catch (e) {
      throw new DeepwellError('NO_KERNEL', `${graph.describeNode(node)}: ${(e as Error).message}`, { cause: e });
    }
    const workspace = kernel.workspace?.(params) ?? 0;
    if (!Number.isSafeInteger(workspace) || workspace < 0) {
      throw new DeepwellError('INTERNAL', `${graph.describeNode(node)}: kernel '${kernel.name}' declared a workspace of ${workspace} bytes; expected a non-negative integer`);
    }
    return { node, kernel, params, workspace };
  });
}

/** The memory plan of a step whose kernels are `kernels` (their workspaces placed in the arena). */
export function planStep(graph: Graph, device: string, kernels: readonly SelectedKernel[]): MemoryPlan {
  return planMemory(graph, storageBytesFor(device), (k) => kernels[k]?.workspace ?? 0);
}
