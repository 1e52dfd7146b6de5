#!/usr/bin/env node
// The fuzz suite: every case module's generated bad and edge-case inputs, each case run in a child
// process (a worker) under a time limit. A case that outlives its limit is a hang (the worker is
// killed and replaced); a worker that dies in a case is a crash. Ends with one line,
//   fuzz: N cases, N typed errors, N accepted, 0 crashes, 0 hangs, 0 untyped, 0 silent
// and exits non-zero on any crash, hang, untyped error, silent acceptance, refused valid input, or
// public export no case reaches.
//
//   node fuzz/run.mjs [--only core,ir] [--seed N] [--workers N] [--json file] [--verbose]
// FUZZ_SEED sets the seed too; without either, the seed comes from the checked-out commit (so a
// commit's CI run is reproducible and every change tries new inputs), or is drawn fresh outside a
// git checkout. It is printed, and any failure can be replayed with --seed.
import { execFileSync, fork } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSuite, DEFAULT_TIMEOUT_MS, HERE, moduleNames } from './suite.mjs';
import { coverage } from './coverage.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
// The seed: --seed, else FUZZ_SEED, else one derived from the checked-out commit (so CI's run of a
// commit is reproducible and every change tries new inputs), else a fresh one.
function commitSeed() {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: HERE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return /^[0-9a-f]{40}$/.test(head) ? { seed: parseInt(head.slice(0, 7), 16), from: `commit ${head.slice(0, 10)}` } : null;
  } catch {
    return null;
  }
}
const given = opt('seed') ?? process.env.FUZZ_SEED;
const fromCommit = given === undefined ? commitSeed() : null;
const seed = Number(given ?? fromCommit?.seed ?? randomInt(2 ** 31));
if (!Number.isInteger(seed)) throw new Error(`fuzz: --seed must be an integer, got ${opt('seed') ?? process.env.FUZZ_SEED}`);
const only = opt('only')?.split(',').filter(Boolean);
const workers = Number(opt('workers') ?? Math.max(1, Math.min(4, availableParallelism())));
const verbose = args.includes('--verbose');
const names = moduleNames(only);
const scratch = mkdtempSync(join(tmpdir(), 'deepwell-fuzz-'));

const suite = await buildSuite(names, seed, { dir: join(scratch, 'parent') });
const queue = [];
for (const name of names) suite[name].forEach((c, index) => queue.push({ module: name, index, id: queue.length, timeoutMs: c.timeoutMs ?? DEFAULT_TIMEOUT_MS }));
const results = new Array(queue.length);
console.log(`fuzz: seed ${seed}${fromCommit ? ` (from ${fromCommit.from})` : given === undefined ? ' (fresh)' : ''}; ${queue.length} cases from ${names.join(', ')}; ${workers} workers`);

const t0 = Date.now();
let next = 0;
let spawned = 0;
let lastDone = null;

function startWorker() {
  const id = spawned++;
  const child = fork(join(HERE, 'worker.mjs'), [], {
    env: { ...process.env, NO_COLOR: '1', DEEPWELL_FUZZ_WORKER: JSON.stringify({ names, seed, dir: join(scratch, `w${id}`) }) },
    execArgv: ['--max-old-space-size=3072'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const w = { child, item: null, timer: null, stderr: '', done: null, ready: false };
  w.finished = new Promise((resolve) => (w.done = resolve));
  child.stderr.on('data', (d) => (w.stderr = (w.stderr + d).slice(-2000)));
  const record = (item, r) => {
    // The first outcome stands, except that a later crash (an uncaught error from a timer the case
    // left behind) overrides it.
    if (!results[item.id] || r.outcome === 'crash') results[item.id] = { ...item, ...r };
  };
  const dispatch = () => {
    if (next >= queue.length) {
      child.kill();
      return;
    }
    const item = queue[next++];
    w.item = item;
    w.timer = setTimeout(() => {
      record(item, { outcome: 'hang', detail: `no answer in ${item.timeoutMs} ms` });
      w.item = null;
      child.kill('SIGKILL');
    }, item.timeoutMs);
    child.send({ module: item.module, index: item.index, id: item.id });
  };
  child.on('message', (m) => {
    if (m.ready) {
      w.ready = true;
      return dispatch();
    }
    const item = m.id !== null && m.id !== undefined ? queue[m.id] : lastDone;
    if (!item) return;
    record(item, m);
    if (w.item && m.id === w.item.id && m.outcome !== 'crash') {
      clearTimeout(w.timer);
      lastDone = w.item;
      w.item = null;
      dispatch();
    }
  });
  child.on('exit', (code, signal) => {
    clearTimeout(w.timer);
    if (w.item) record(w.item, { outcome: 'crash', detail: `worker died (${signal ?? `exit ${code}`}): ${w.stderr.trim().split('\n').slice(-6).join(' | ')}` });
    w.item = null;
    if (!w.ready) {
      // A worker that cannot even build the case lists would fail the same way again.
      console.log(`fuzz: a worker died before it was ready (${signal ?? `exit ${code}`}):\n${w.stderr}`);
      process.exit(2);
    }
    // A worker killed for a hang or dead in a crash is replaced while cases remain.
    if (next < queue.length) pool.push(startWorker());
    w.done();
  });
  return w;
}

const pool = [];
for (let i = 0; i < Math.min(workers, queue.length); i++) pool.push(startWorker());
// Wait for every worker, replacements included.
for (let i = 0; i < pool.length; i++) await pool[i].finished;
const seconds = (Date.now() - t0) / 1000;
rmSync(scratch, { recursive: true, force: true });

const count = (o) => results.filter((r) => r?.outcome === o).length;
const missing = queue.filter((q) => !results[q.id]);
for (const q of missing) results[q.id] = { ...q, outcome: 'crash', detail: 'never answered (its worker died before it)' };
const byModule = {};
for (const r of results) {
  const m = (byModule[r.module] ??= { cases: 0, typed: 0, accepted: 0, bad: 0, ms: 0 });
  m.cases++;
  m.ms += r.ms ?? 0;
  if (r.outcome === 'typed') m.typed++;
  else if (r.outcome === 'accepted') m.accepted++;
  else m.bad++;
}
for (const [name, m] of Object.entries(byModule)) console.log(`  ${name.padEnd(22)} ${String(m.cases).padStart(6)} cases ${String(m.typed).padStart(6)} typed ${String(m.accepted).padStart(6)} accepted ${String(m.bad).padStart(4)} bad  ${(m.ms / 1000).toFixed(1)} s`);

const bad = results.filter((r) => !['typed', 'accepted'].includes(r.outcome));
for (const r of bad.slice(0, verbose ? bad.length : 40)) {
  const c = suite[r.module][r.index];
  console.log(`\n  ${r.outcome.toUpperCase()}  ${c.name}  (${c.entry ?? r.module}; expect ${c.expect})\n    ${String(r.detail ?? '').split('\n').join('\n    ')}`);
}
if (bad.length > 40 && !verbose) console.log(`\n  … and ${bad.length - 40} more (--verbose lists all)`);
if (bad.length) console.log(`\n  replay: node fuzz/run.mjs --seed ${seed}${only ? ` --only ${only.join(',')}` : ''}`);

const cov = await coverage(names, Object.values(suite).flat());
if (cov.uncovered.length) console.log(`\n  public exports no case reaches (${cov.uncovered.length}): ${cov.uncovered.join(', ')}`);
console.log(`  entry points reached: ${cov.covered} of ${cov.total} public exports of ${cov.packages.join(', ')}; ${(seconds).toFixed(0)} s`);
const refused = count('refused');
if (refused) console.log(`fuzz: ${refused} valid inputs refused`);
if (opt('json')) writeFileSync(opt('json'), JSON.stringify({ seed, seconds, results: results.map((r) => ({ ...r, name: suite[r.module][r.index].name })) }, null, 1));
console.log(`fuzz: ${queue.length} cases, ${count('typed')} typed errors, ${count('accepted')} accepted, ${count('crash')} crashes, ${count('hang')} hangs, ${count('untyped')} untyped, ${count('silent')} silent`);
process.exitCode = bad.length || cov.uncovered.length ? 1 : 0;
