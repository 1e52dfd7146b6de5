// Where the memory peak of GPT-2 124M's training step is, and what is live there. No GPU needed:
// the step the Trainer builds (autocast, trainingStep with clipping; B16 T1024 by default), the
// compile passes for 'cuda:0', the planner with the device's storage sizes (bf16 = 2 bytes) and,
// since kernels cannot be selected without a GPU, each node's workspace as its highest-priority
// CUDA candidate declares it (what compile would plan where that candidate is selected).
//   node examples/gpt2/peak.mjs [--preset gpt2-small] [--batch 16] [--seq 1024] [--top 25] [--json FILE]
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { registry } from '@deepwell/core';
import { GEMM_LT_WORKSPACE, autocast, byteSizeOf, capture, planMemory, runPasses, trainingStep } from '@deepwell/ir';
import { loadNative } from '@deepwell/kernels-native';
import { GPT } from '@deepwell/nn';

// attention-sparsek through nn (this example does not depend on it directly): its qkvDims gives the
// fused attention backward's sizes, whose workspace the addon answers for an H200 (9.0).
// Its ESM build, the copy nn imports (its CJS build would define every op a second time).
const fromNn = createRequire(createRequire(import.meta.url).resolve('@deepwell/nn'));
const { qkvDims } = await import(pathToFileURL(join(dirname(fromNn.resolve('@deepwell/attention-sparsek/package.json')), 'dist/index.js')).href);

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const preset = arg('preset', 'gpt2-small');
const B = Number(arg('batch', 16));
const T = Number(arg('seq', 1024));
const top = Number(arg('top', 25));
const device = 'cuda:0';

const model = new GPT(preset);
const captured = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
for (const k of Object.keys(captured.outputs)) if (k !== 'loss') delete captured.outputs[k];
const step = trainingStep(autocast(captured), { clipGradNorm: 1 });
const g = runPasses(step, { device });

// Workspaces: the first CUDA candidate's declaration (compile selects the first that supports the call).
const declared = g.nodes.map((node) => {
  const params = { op: node.op, device, inTypes: node.inputs.map((i) => g.values[i].type), outTypes: node.outputs.map((o) => g.values[o].type), attrs: node.attrs };
  const c = registry.candidates(node.op).find((k) => k.backend !== 'cpu');
  try {
    // cuBLASLt candidates declare their workspace only where the library loads (it does on the GPU host).
    if (c?.name.endsWith('_cublaslt')) return Math.max(c.workspace?.(params) ?? 0, GEMM_LT_WORKSPACE);
    return c?.workspace ? c.workspace(params) : 0;
  } catch (e) {
    // Declarations that ask the device (the flash backward's) cannot run without a GPU.
    if (node.op !== 'sdpa_qkv_backward') throw e;
    const n = qkvDims(node.op, params.inTypes[1], node.attrs);
    return loadNative().flashBackwardWorkspace(n.B, n.H, n.Hkv, n.Sq, n.Sk, n.D, 9, 0);
  }
});
const plan = planMemory(g, byteSizeOf, (k) => declared[k] ?? 0);
const persistentBytes = [...Object.values(g.params), ...Object.values(g.state)].reduce((a, id) => a + byteSizeOf(g.values[id].type), 0);

const GiB = (b) => `${(b / 2 ** 30).toFixed(3)} GiB`;
const MiB = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const at = plan.peak.step;
const node = g.nodes[at];
// One row per storage group (its root): reshapes and values written in place over it share it.
const inplace = plan.inplace ?? new Map(); // absent before the planner wrote in place
const member = (id) => plan.aliases.has(id) || inplace.has(id);
const overwrittenBy = new Map([...inplace].map(([out, src]) => [src, out]));
const live = [];
for (const [id, p] of plan.placements) {
  if (member(id) || !(p.first <= at && at <= p.last)) continue;
  const v = g.values[id];
  const prod = v.producer !== undefined ? g.nodes[v.producer] : null;
  const lastReader = p.last >= g.nodes.length ? '(graph output)' : `#${p.last} ${g.nodes[p.last].op} ${g.nodes[p.last].scope}`;
  // Follow the in-place chain from the root (through its reshapes' ids too) to name what overwrites it.
  const chain = [...plan.placements.keys()].filter((x) => overwrittenBy.has(x) && (x === id || plan.aliases.get(x) === id)).map((x) => overwrittenBy.get(x));
  const over = chain.map((o) => `, overwritten in place by #${g.values[o].producer} ${g.nodes[g.values[o].producer].op}`).join('');
  live.push({ id, bytes: p.bytes, type: `${v.type.dtype}[${v.type.shape.join(',')}]`, made: (prod ? `#${v.producer} ${prod.op} ${prod.scope}` : `input ${v.name ?? ''}`) + over, phase: prod?.phase ?? 'input', first: p.first, last: p.last, lastReader });
}
for (const [k, p] of plan.workspaces) if (p.first <= at && at <= p.last) live.push({ id: -(k + 1), bytes: p.bytes, type: 'workspace', made: `#${k} ${g.nodes[k].op}`, phase: 'workspace', first: k, last: k, lastReader: '' });
live.sort((a, b) => b.bytes - a.bytes);
const byPhase = {};
for (const l of live) byPhase[l.phase] = (byPhase[l.phase] ?? 0) + l.bytes;

// Bytes live at each node, to see the shape of the curve around the peak.
const curve = g.nodes.map((_, k) => {
  let b = 0;
  for (const [id, p] of plan.placements) if (!member(id) && p.first <= k && k <= p.last) b += p.bytes;
  for (const [, p] of plan.workspaces) if (p.first <= k && k <= p.last) b += p.bytes;
  return b;
});
const topNodes = curve.map((b, k) => ({ k, b })).sort((x, y) => y.b - x.b).slice(0, 8);

console.log(`${preset} B${B} T${T} on ${device}: ${g.nodes.length} nodes`);
console.log(`  arena ${GiB(plan.arenaBytes)} + parameters and state ${GiB(persistentBytes)} = total ${GiB(plan.arenaBytes + persistentBytes)}`);
console.log(`  live at the peak ${GiB(plan.peak.bytes)} (arena ${GiB(plan.arenaBytes)}: the placement's fragmentation is ${MiB(plan.arenaBytes - plan.peak.bytes)})`);
console.log(`  peak at node #${at} ${node ? `${node.op} '${node.scope}' (${node.phase})` : '(end)'}; by phase: ${Object.entries(byPhase).map(([k, v]) => `${k} ${MiB(v)}`).join(', ')}`);
console.log(`  busiest nodes: ${topNodes.map(({ k, b }) => `#${k} ${g.nodes[k].op} ${GiB(b)}`).join('; ')}`);
console.log(`  live at the peak, largest first (${live.length} values):`);
for (const l of live.slice(0, top)) console.log(`    ${MiB(l.bytes).padStart(11)}  ${l.type.padEnd(22)} made by ${l.made}; last read by ${l.lastReader}`);
if (live.length > top) console.log(`    … and ${live.length - top} more, ${MiB(live.slice(top).reduce((a, l) => a + l.bytes, 0))}`);
const out = arg('json', null);
if (out) writeFileSync(out, JSON.stringify({ preset, B, T, arenaBytes: plan.arenaBytes, persistentBytes, totalBytes: plan.arenaBytes + persistentBytes, peak: plan.peak, live }, null, 1));
