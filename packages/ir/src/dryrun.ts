/**
 * dryrun: what a compiled step will cost before anything runs — bytes for parameters, gradients,
 * optimizer state, activations and workspace, FLOPs per step, and a time estimate from the device's
 * peak rates. It runs the same passes, the same kernel selection and the same planner as compile()
 * (kernel workspaces included), so its arena figure is the allocation run() makes, and its total is
 * every byte a compiled step takes from the device allocator (the arena, each parameter and each
 * state value). Where the device's kernels cannot be selected here (no GPU), workspaces are not
 * known: `workspaceUnknown` says why, and the arena excludes them.
 *
 * Rates: for a GPU, the probe's datasheet peaks for that GPU; for the CPU, the reference kernels'
 * rates measured here (a small matmul and a large copy), since a datasheet says nothing about them.
 */
import { DeepwellError, checkKeys, checkNumber, invalid } from '@deepwell/core';
import { probe } from '@deepwell/probe';
import { Graph, byteSizeOf, checkGraph } from './graph.js';
import { bytesMoved, getOp } from './op.js';
import { checkPass, runPasses, type GraphPass } from './passes/index.js';
import { planMemory, storageBytesFor } from './planner.js';
import { planStep, selectKernels } from './select.js';
import type { ValueType } from './types.js';
import { checkDeviceName } from './device.js';

export interface DryrunOptions {
  device?: string;
  precision?: GraphPass;
  /** Override the rates used for the time estimate. */
  peakTflops?: number;
  memoryGBps?: number;
}

export interface DryrunReport {
  device: string;
  parameters: number;
  parameterBytes: number;
  gradientBytes: number;
  optimizerStateBytes: number;
  /** At the busiest point of the step: forward activations live, inputs live, other temporaries. */
  activationBytes: number;
  inputBytes: number;
  workspaceBytes: number;
  /** Kernel scratch live at the busiest point (in workspaceBytes too), and the largest any one node takes. */
  kernelWorkspaceBytes: { atPeak: number; largest: number };
  /** Why kernel workspaces could not be planned (their kernels cannot be selected here), else absent. */
  workspaceUnknown?: string;
  /** The arena run() allocates (gradients, activations and temporaries share it over time). */
  arenaBytes: number;
  /** Arena plus parameters and state. */
  totalBytes: number;
  flopsPerStep: number;
  /** Bytes read and written by all kernels, unfused (aliased reshapes, which run none, move none). */
  bytesMovedPerStep: number;
  estimate: { ms: number; bound: 'compute' | 'memory'; peakTflops: number; memoryGBps: number; source: string };
}

let cpuRates: { tflops: number; gbps: number } | null = null;
function measureCpuRates(): { tflops: number; gbps: number } {
  if (cpuRates) return cpuRates;
  // The CPU backend's own matmul kernel (the reference) on a 96³ problem, and a 16 MiB copy.
  const n = 96;
  const t96: ValueType = { shape: [n, n], dtype: 'f32' };
  const a = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const c = new Float32Array(n * n);
  const mm = getOp('matmul');
  const call = () => mm.reference({ inputs: [a, a], outputs: [c], inTypes: [t96, t96], outTypes: [t96], attrs: { transA: false, transB: false } });
  for (let r = 0; r < 8; r++) call(); // let the JIT compile it
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    call();
    times.push(performance.now() - t0);
  }
  const flopMs = times.sort((x, y) => x - y)[2]!;
  let t = performance.now();
  const big = new Float32Array(1 << 22).map(() => Math.random());
  const dst = new Float32Array(big.length);
  t = performance.now();
  for (let r = 0; r < 4; r++) dst.set(big);
  const copyMs = (performance.now() - t) / 4;
  cpuRates = { tflops: (2 * n ** 3) / (flopMs * 1e9), gbps: (2 * big.byteLength) / (copyMs * 1e6) };
  return cpuRates;
}

export function dryrun(graph: Graph, options: DryrunOptions = {}): DryrunReport {
  checkGraph(graph, 'the graph of dryrun');
  checkKeys(options, ['device', 'precision', 'peakTflops', 'memoryGBps'], 'dryrun');
  const device = checkDeviceName(options.device === undefined ? 'cpu' : options.device, 'dryrun device');
  if (options.precision !== undefined) checkPass(options.precision, 'dryrun precision');
  // Rates a time is divided by: finite and above 0 (0 would give an infinite estimate, NaN none).
  if (options.peakTflops !== undefined) checkNumber(options.peakTflops, 'dryrun peakTflops', { above: 0 });
  if (options.memoryGBps !== undefined) checkNumber(options.memoryGBps, 'dryrun memoryGBps', { above: 0 });
  const g = runPasses(Graph.fromJSON(graph.toJSON()), { precision: options.precision, device });
  let plan;
  let workspaceUnknown: string | undefined;
  let largest = 0;
  try {
    const kernels = selectKernels(g, device);
    plan = planStep(g, device, kernels);
    largest = kernels.reduce((a, k) => Math.max(a, k.workspace), 0);
  } catch (e) {
    if (!DeepwellError.is(e) || e.code !== 'NO_KERNEL') throw e;
    workspaceUnknown = `kernels for ${device} cannot be selected here (${e.message.split('\n')[0]})`;
    plan = planMemory(g, storageBytesFor(device));
  }
  const sumBytes = (ids: number[]) => ids.reduce((a, id) => a + byteSizeOf(g.values[id]!.type), 0);
  const paramIds = Object.values(g.params);
  const parameterBytes = sumBytes(paramIds);
  const optimizerStateBytes = sumBytes(Object.values(g.state));
  let flops = 0;
  let moved = 0;
  for (const n of g.nodes) {
    const def = getOp(n.op);
    const ins = n.inputs.map((i) => g.values[i]!.type);
    const outs = n.outputs.map((o) => g.values[o]!.type);
    flops += def.flops?.(ins, outs, n.attrs) ?? 0;
    // A reshape the planner aliased runs no kernel and moves nothing.
    if (n.outputs.length === 1 && plan.aliases.has(n.outputs[0]!)) continue;
    moved += bytesMoved(n.op, ins, outs, n.attrs);
  }
  let peakTflops = options.peakTflops;
  let memoryGBps = options.memoryGBps;
  let source = 'given';
  if (peakTflops === undefined || memoryGBps === undefined) {
    if (device === 'cpu') {
      const r = measureCpuRates();
      peakTflops ??= r.tflops;
      memoryGBps ??= r.gbps;
      source = 'CPU reference kernels, rates measured on this machine';
    } else {
      const index = Number(device.split(':')[1] ?? 0);
      const gpu = probe().gpus[index];
      if (!gpu) throw new DeepwellError('CUDA_UNAVAILABLE', `dryrun: no GPU ${device} here to estimate for (pass peakTflops and memoryGBps to estimate anyway)`);
      if (!gpu.peak) throw new DeepwellError('INVALID_ARGUMENT', `dryrun: no datasheet rates known for ${gpu.name}; pass peakTflops and memoryGBps`);
      peakTflops ??= gpu.peak.bf16Tflops;
      memoryGBps ??= gpu.peak.memoryGBps;
      source = gpu.peak.source;
    }
  }
  const computeMs = flops / (peakTflops * 1e9);
  const memoryMs = moved / (memoryGBps * 1e6);
  return {
    device,
    parameters: paramIds.reduce((a, id) => a + g.values[id]!.type.shape.reduce((x, y) => x * y, 1), 0),
    parameterBytes,
    gradientBytes: sumBytes(Object.values(g.gradients)),
    optimizerStateBytes,
    activationBytes: plan.peak.activations,
    inputBytes: plan.peak.inputs,
    workspaceBytes: plan.peak.other + plan.peak.gradients + plan.peak.workspace,
    kernelWorkspaceBytes: { atPeak: plan.peak.workspace, largest },
    ...(workspaceUnknown ? { workspaceUnknown } : {}),
    arenaBytes: plan.arenaBytes,
    totalBytes: plan.arenaBytes + parameterBytes + optimizerStateBytes,
    flopsPerStep: flops,
    bytesMovedPerStep: moved,
    estimate: { ms: Math.max(computeMs, memoryMs), bound: computeMs >= memoryMs ? 'compute' : 'memory', peakTflops, memoryGBps, source },
  };
}

/** The report as a few readable lines. */
export function formatDryrun(r: DryrunReport): string {
  const ok = typeof r === 'object' && r !== null && typeof r.device === 'string' && typeof r.estimate === 'object' && r.estimate !== null && typeof r.kernelWorkspaceBytes === 'object' && r.kernelWorkspaceBytes !== null;
  if (!ok) invalid('a report from dryrun()', 'formatDryrun', r);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  return [
    `dryrun on ${r.device}: ${r.parameters.toLocaleString('en')} parameters`,
    `  parameters ${mb(r.parameterBytes)}, gradients ${mb(r.gradientBytes)}, optimizer state ${mb(r.optimizerStateBytes)}`,
    `  arena ${mb(r.arenaBytes)} (at its peak: activations ${mb(r.activationBytes)}, inputs ${mb(r.inputBytes)}, gradients and workspace ${mb(r.workspaceBytes)}, of which kernel scratch ${mb(r.kernelWorkspaceBytes.atPeak)}); total ${mb(r.totalBytes)}`,
    ...(r.workspaceUnknown ? [`  kernel workspaces not planned: ${r.workspaceUnknown}`] : []),
    `  ${(r.flopsPerStep / 1e9).toFixed(3)} GFLOP and ${mb(r.bytesMovedPerStep)} moved per step; estimated ${r.estimate.ms < 1 ? `${(r.estimate.ms * 1000).toPrecision(3)} µs` : `${r.estimate.ms.toFixed(2)} ms`} (${r.estimate.bound}-bound at ${r.estimate.peakTflops.toPrecision(3)} TFLOP/s, ${r.estimate.memoryGBps.toPrecision(3)} GB/s: ${r.estimate.source})`,
  ].join('\n');
}
