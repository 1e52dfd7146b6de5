#!/usr/bin/env node
// Soak and crash-resume checks for issue 20, run on the GPU host (scripts/robust-check.sh):
//
//   node bench/soak.mjs train  --steps 10000 --dir D [--losses F] [--json F] [--every 500] [--check-memory]
//       trains a small GPT (4 layers, width 128, batch 16 × 64) on a Markov corpus on cuda:0 and
//       samples, every 100 steps, the allocator's bytes in use and reserved, the driver's used bytes,
//       and the process's RSS and V8 heap (after a full GC). Past warm-up (the first 10% of steps)
//       device memory (in use, reserved, the driver's used) and host memory (RSS, and its anonymous
//       and file-backed parts) must stay within 1 MiB (with --check-memory, the exit code says so).
//       V8's heap and external counts are reported, not judged: `external` counts ArrayBuffers
//       until their memory is released after a GC, so it jumps by a checkpoint's arrays in the
//       sample after each checkpoint and comes back; the resident memory is what the process holds.
//       Appends "step hexbits" per step to --losses.
//   node bench/soak.mjs bare   --steps 10000 [--fresh] [--json F]
//       the same model's compiled step run directly, without the Trainer, memory sampled the same way
//   node bench/soak.mjs alloc  --cycles 100000 [--warmup 100000] [--json F]
//       allocate/free cycles through the CUDA backend in step-like rounds (64 tensors of fixed sizes,
//       allocated in a random order with random frees between): bytes in use back to zero, reserved
//       and RSS within 1 MiB after warm-up; then a random walk over 256 sizes (reported).
//   node bench/soak.mjs resume --steps 1500 --kills 6 [--json F]
//       a reference run, then the same run started with resume: 'auto' and killed with SIGKILL at
//       random moments (one kill the instant a checkpoint's temporary file appears, so mid-write)
//       and restarted until it finishes: every step's loss bitwise equal to the reference's.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const mode = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MiB = 2 ** 20;
// The process's resident memory by kind (Linux): anonymous (heaps, malloc), file-backed (mapped
// libraries), shared memory; to tell a leak from libraries paging in.
function residentKinds() {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rssAnon: kb('RssAnon'), rssFile: kb('RssFile'), rssShmem: kb('RssShmem') };
  } catch {
    return {};
  }
}
const gc = globalThis.gc ?? (() => {});

async function cuda() {
  const kn = await import('@deepwell/kernels-native');
  if (!kn.cudaStatus().available) throw new Error(`soak: needs a GPU (${kn.cudaStatus().reason})`);
  return kn;
}

function hex(x) {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return b.toString('hex');
}

async function train() {
  const kn = await cuda();
  const { GPT, MarkovCorpus } = await import('@deepwell/nn');
  const { TokenLoader, Trainer, markovShard } = await import('@deepwell/trainer');
  const steps = Number(opt('steps', 10000));
  const dir = opt('dir');
  const every = Number(opt('every', 500));
  const lossesFile = opt('losses');
  const [B, T, vocab] = [16, 64, 64];
  const corpus = new MarkovCorpus({ vocab, seed: 7 });
  const trainLoader = new TokenLoader({ shards: [markovShard(corpus, 1_000_000, 'soak train')], batchSize: B, seqLen: T, seed: 7 });
  const model = new GPT({ vocabSize: vocab, blockSize: T, nLayer: 4, nHead: 4, nEmbd: 128 });
  const trainer = new Trainer({
    model,
    train: trainLoader,
    device: 'cuda:0',
    steps,
    optimizer: { lr: 1e-3, weightDecay: 0.1 },
    schedule: { warmup: 100, minLr: 1e-4 },
    checkpoint: { dir, every, keep: 2 },
    seed: 7,
    log: { jsonl: join(dir, 'log.jsonl'), every: 1000 },
  });
  const backend = kn.cudaBackend(0);
  const samples = [];
  const sample = (step) => {
    gc();
    const m = backend.memoryStats();
    const info = kn.memGetInfo(0);
    const mem = process.memoryUsage();
    samples.push({ step, inUse: m.inUse, reserved: m.reserved, driverUsed: info.total - info.free, rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, ...residentKinds() });
  };
  trainer.on('step', (ev) => {
    if (lossesFile) appendFileSync(lossesFile, `${ev.step} ${hex(ev.loss)}\n`);
    if (ev.step % 100 === 0) sample(ev.step);
  });
  const t0 = performance.now();
  const result = trainer.fit({ resume: 'auto' });
  const seconds = (performance.now() - t0) / 1000;
  const warm = samples.filter((s) => s.step >= Math.max(100, steps / 10));
  const drift = {};
  for (const key of ['inUse', 'reserved', 'driverUsed', 'rss', 'rssAnon', 'rssFile', 'rssShmem', 'heapUsed', 'external']) {
    const v = warm.map((s) => s[key]);
    drift[key] = v.length ? { first: v[0], min: Math.min(...v), max: Math.max(...v), spreadMiB: (Math.max(...v) - Math.min(...v)) / MiB } : null;
  }
  const judged = ['inUse', 'reserved', 'driverUsed', 'rss', 'rssAnon', 'rssFile'];
  const flat = judged.every((k) => drift[k] === null || drift[k].spreadMiB <= 1);
  const out = { mode: 'train', steps, seconds, lastLoss: result.losses.at(-1)?.loss, samples: samples.length, warmFrom: warm[0]?.step, drift, flat };
  console.log(`soak train: ${steps} steps in ${seconds.toFixed(1)} s, last loss ${out.lastLoss?.toFixed(4)}`);
  for (const [k, d] of Object.entries(drift)) if (d) console.log(`  ${k.padEnd(10)} ${(d.first / MiB).toFixed(2)} MiB at step ${warm[0].step}; spread after warm-up ${d.spreadMiB.toFixed(3)} MiB`);
  console.log(`  RSS every 1000 steps (MiB): ${samples.filter((s) => s.step % 1000 === 0).map((s) => (s.rss / MiB).toFixed(1)).join(' ')}`);
  console.log(`  device and host memory flat after warm-up (${judged.join(', ')} each within 1 MiB): ${flat ? 'yes' : 'NO'}`);
  if (opt('json')) writeFileSync(opt('json'), JSON.stringify({ ...out, trace: samples }, null, 1));
  if (!flat && args.includes('--check-memory')) process.exitCode = 1;
}

// The same model's compiled step run directly (no Trainer): what the native side and the executable
// hold per step, apart from the Trainer's own history (its per-step loss records).
async function bare() {
  const kn = await cuda();
  const { GPT, MarkovCorpus } = await import('@deepwell/nn');
  const { autocast, capture, compile, trainingStep } = await import('@deepwell/ir');
  const steps = Number(opt('steps', 10000));
  const [B, T, vocab] = [16, 64, 64];
  const corpus = new MarkovCorpus({ vocab, seed: 7 });
  const spec = { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } };
  const exe = compile(trainingStep(autocast(capture(new GPT({ vocabSize: vocab, blockSize: T, nLayer: 4, nHead: 4, nEmbd: 128 }), spec))), { device: 'cuda:0', seed: 7 });
  const batch = corpus.batch(B, T);
  const backend = kn.cudaBackend(0);
  const samples = [];
  const lr = new Float32Array(1);
  const stepArr = new Float32Array(1);
  let last = 0;
  // --fresh: new batch and scalar arrays every step, as the Trainer passes them.
  const fresh = args.includes('--fresh');
  for (let s = 1; s <= steps; s++) {
    lr[0] = 1e-3;
    stepArr[0] = s;
    const inputs = fresh ? { tokens: batch.tokens.slice(), targets: batch.targets.slice(), lr: Float32Array.of(1e-3), step: Float32Array.of(s) } : { ...batch, lr, step: stepArr };
    last = exe.run(inputs).loss[0];
    if (s % 100 === 0) {
      gc();
      const m = backend.memoryStats();
      const h = process.memoryUsage();
      samples.push({ step: s, inUse: m.inUse, rss: h.rss, heapUsed: h.heapUsed, external: h.external, ...residentKinds() });
    }
  }
  exe.dispose();
  const warm = samples.filter((x) => x.step >= steps / 10);
  const spread = (k) => (Math.max(...warm.map((x) => x[k])) - Math.min(...warm.map((x) => x[k]))) / MiB;
  const out = { mode: 'bare', fresh, steps, last, spreadMiB: { inUse: spread('inUse'), rss: spread('rss'), rssAnon: spread('rssAnon'), rssFile: spread('rssFile'), heapUsed: spread('heapUsed'), external: spread('external') } };
  console.log(`soak bare: ${steps} steps of the compiled step alone, last loss ${last.toFixed(4)}; spread after warm-up (MiB): ${Object.entries(out.spreadMiB).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}`);
  console.log(`  RSS every 1000 steps (MiB): ${samples.filter((x) => x.step % 1000 === 0).map((x) => (x.rss / MiB).toFixed(1)).join(' ')}`);
  if (opt('json')) writeFileSync(opt('json'), JSON.stringify({ ...out, trace: samples }, null, 1));
}

async function alloc() {
  const kn = await cuda();
  const cycles = Number(opt('cycles', 100000));
  const backend = kn.cudaBackend(0);
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  // A model's worth of tensor sizes (256 of them, from bytes to 64 MiB), allocated and freed in
  // random order with up to 64 live at once.
  const sizes = Array.from({ length: 256 }, () => {
    const r = rand();
    return r < 0.6 ? 1 + Math.floor(rand() * 65536) : r < 0.95 ? 1 + Math.floor(rand() * 8 * MiB) : 1 + Math.floor(rand() * 64 * MiB);
  });
  const snap = (cycle) => {
    gc();
    const m = backend.memoryStats();
    const h = process.memoryUsage();
    return { cycle, inUse: m.inUse, reserved: m.reserved, rss: h.rss, ...residentKinds(), heapUsed: h.heapUsed, external: h.external, cacheHits: m.cacheHits, deviceMallocs: m.deviceMallocs };
  };
  // Step-like rounds (the verdict): each round allocates a fixed set of 64 of those sizes in a
  // random order, freeing a random live one now and then, and frees the rest at its end, as a
  // training step does with different orders. 64 allocations and 64 frees a round; `--warmup`
  // cycles (default 100,000) come first and are not judged: the process's resident set rises by a
  // few MiB over the first 70,000 cycles and then stays put (H200, 2026-12-04, a 20,000-cycle
  // warm-up: 158.8 MiB at cycle 20,000, 162.3 from 70,000 to 120,000; the whole run took 0.6 s).
  const stepSizes = Array.from({ length: 64 }, () => sizes[Math.floor(rand() * sizes.length)]);
  const trace = [snap(0)];
  const live = [];
  const total = cycles + Number(opt('warmup', 100000));
  const t0 = performance.now();
  let done = 0;
  const every = Math.max(10000, Math.ceil(total / 50 / 10000) * 10000);
  let nextSnap = every;
  while (done < total) {
    const order = stepSizes.map((x) => [rand(), x]).sort((p, q) => p[0] - q[0]).map((p) => p[1]);
    for (const bytes of order) {
      live.push(backend.alloc(bytes));
      if (rand() < 0.3) backend.free(live.splice(Math.floor(rand() * live.length), 1)[0]);
    }
    while (live.length) backend.free(live.pop());
    done += stepSizes.length;
    if (done >= nextSnap) {
      trace.push(snap(done));
      nextSnap += every;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const end = snap(done);
  trace.push(end);
  const warm = trace.filter((t) => t.cycle >= total - cycles);
  const spread = (k) => (Math.max(...warm.map((t) => t[k])) - Math.min(...warm.map((t) => t[k]))) / MiB;
  // A random walk over all 256 sizes (reported, not judged): bytes in use must come back to zero;
  // without block splitting the cache keeps what the walk's highest demand per size needed.
  const walk = [];
  for (let i = 0; i < cycles; i++) {
    if (walk.length < 64 && (walk.length === 0 || rand() < 0.5)) walk.push(backend.alloc(sizes[Math.floor(rand() * sizes.length)]));
    else backend.free(walk.splice(Math.floor(rand() * walk.length), 1)[0]);
  }
  while (walk.length) backend.free(walk.pop());
  const afterWalk = snap(done + cycles);
  const out = {
    mode: 'alloc',
    cycles,
    warmup: total - cycles,
    seconds,
    inUseEnd: end.inUse,
    spreadMiB: { reserved: spread('reserved'), rss: spread('rss'), rssAnon: spread('rssAnon'), rssFile: spread('rssFile'), heapUsed: spread('heapUsed') },
    cacheHits: end.cacheHits,
    deviceMallocs: end.deviceMallocs,
    randomWalk: { cycles, inUseEnd: afterWalk.inUse, reservedMiB: afterWalk.reserved / MiB, rssMiB: afterWalk.rss / MiB },
    trace,
  };
  const flat = end.inUse === 0 && afterWalk.inUse === 0 && out.spreadMiB.reserved <= 1 && out.spreadMiB.rss <= 1;
  console.log(`soak alloc: ${done} allocations and as many frees in step-like rounds of 64 (${out.warmup} warm-up) in ${seconds.toFixed(2)} s; bytes in use at the end ${end.inUse}; ${end.cacheHits} cache hits, ${end.deviceMallocs} cudaMallocs`);
  const each = every.toLocaleString('en-US');
  console.log(`  reserved MiB every ${each}: ${trace.map((t) => (t.reserved / MiB).toFixed(1)).join(' ')}`);
  console.log(`  RSS MiB every ${each}:      ${trace.map((t) => (t.rss / MiB).toFixed(1)).join(' ')}`);
  console.log(`  anonymous RSS MiB:          ${trace.map((t) => (t.rssAnon / MiB).toFixed(1)).join(' ')}`);
  console.log(`  file-backed RSS MiB:        ${trace.map((t) => (t.rssFile / MiB).toFixed(1)).join(' ')}`);
  console.log(`  after ${out.warmup} warm-up cycles: reserved spread ${out.spreadMiB.reserved.toFixed(3)} MiB, RSS spread ${out.spreadMiB.rss.toFixed(3)} MiB (anonymous ${out.spreadMiB.rssAnon.toFixed(3)}, file-backed ${out.spreadMiB.rssFile.toFixed(3)}), heap spread ${out.spreadMiB.heapUsed.toFixed(3)} MiB; flat: ${flat ? 'yes' : 'NO'}`);
  console.log(`  then a random walk of ${cycles} allocate/free cycles over 256 sizes: bytes in use at the end ${afterWalk.inUse}; reserved ${out.randomWalk.reservedMiB.toFixed(1)} MiB; RSS ${out.randomWalk.rssMiB.toFixed(1)} MiB`);
  if (opt('json')) writeFileSync(opt('json'), JSON.stringify({ ...out, flat }, null, 1));
  if (!flat) process.exitCode = 1;
}

function readLosses(file) {
  const map = new Map();
  const redone = [];
  if (!existsSync(file)) return { map, redone };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+) ([0-9a-f]{16})$/.exec(line);
    if (!m) continue; // a line cut by the kill
    const step = Number(m[1]);
    if (map.has(step) && map.get(step) !== m[2]) redone.push({ step, first: map.get(step), again: m[2] });
    map.set(step, m[2]);
  }
  return { map, redone };
}

function child(steps, dir, losses) {
  const script = fileURLToPath(import.meta.url);
  return spawn(process.execPath, ['--expose-gc', script, 'train', '--steps', String(steps), '--dir', dir, '--losses', losses, '--every', String(Math.max(10, Math.floor(steps / 30)))], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function resume() {
  await cuda();
  const steps = Number(opt('steps', 1500));
  const kills = Number(opt('kills', 6));
  const root = opt('root', '/tmp/deepwell-soak-resume');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const wait = (p) => new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  // The reference: one uninterrupted run.
  const ref = child(steps, join(root, 'ref'), join(root, 'ref.losses'));
  let refErr = '';
  ref.stderr.on('data', (d) => (refErr += d));
  const refExit = await wait(ref);
  if (refExit.code !== 0) throw new Error(`soak resume: the reference run failed (${JSON.stringify(refExit)}): ${refErr.slice(-2000)}`);
  // The interrupted run: killed `kills` times, then let finish.
  const dir = join(root, 'killed');
  const losses = join(root, 'killed.losses');
  mkdirSync(dir, { recursive: true });
  const log = [];
  let seed = 99;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let k = 0; ; k++) {
    const p = child(steps, dir, losses);
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const done = wait(p);
    let how = 'ran to the end';
    if (k < kills) {
      if (k === 1 || k === 3) {
        // Mid-checkpoint: the instant a temporary file appears in the folder.
        const w = watch(dir, (ev, name) => {
          if (name && /tmp/.test(String(name)) && p.exitCode === null) {
            p.kill('SIGKILL');
            how = `killed as ${name} appeared (mid-checkpoint)`;
          }
        });
        const r = await done;
        w.close();
        if (how === 'ran to the end' && r.signal !== 'SIGKILL') how = 'ran to the end (no checkpoint write seen)';
      } else {
        const ms = 1500 + Math.floor(rand() * 4000);
        const t = setTimeout(() => {
          p.kill('SIGKILL');
          how = `killed after ${ms} ms`;
        }, ms);
        await done;
        clearTimeout(t);
      }
    }
    const r = await done;
    const got = readLosses(losses).map.size;
    log.push({ attempt: k, how, exit: r, stepsLogged: got, files: readdirSync(dir).filter((f) => !f.endsWith('.jsonl')) });
    console.log(`  attempt ${k}: ${how}; ${r.signal ?? `exit ${r.code}`}; ${got} steps logged; folder: ${log.at(-1).files.join(' ')}`);
    if (r.code !== 0 && r.signal !== 'SIGKILL') throw new Error(`soak resume: attempt ${k} failed: ${err.slice(-3000)}`);
    if (r.code === 0) break;
    if (k > kills + 3) throw new Error('soak resume: the run never finished');
  }
  const a = readLosses(join(root, 'ref.losses'));
  const b = readLosses(losses);
  let differ = 0;
  let first = null;
  for (let s = 1; s <= steps; s++) {
    if (a.map.get(s) !== b.map.get(s)) {
      differ++;
      first ??= { step: s, reference: a.map.get(s), resumed: b.map.get(s) };
    }
  }
  const out = { mode: 'resume', steps, kills, attempts: log, stepsCompared: steps, differ, first, redone: b.redone.length, redoneDiffer: b.redone.slice(0, 5) };
  console.log(`soak resume: ${steps} steps, ${log.length - 1} kills; losses differing from the uninterrupted run: ${differ}${first ? ` (first at step ${first.step})` : ''}; steps run twice with different losses: ${b.redone.length}`);
  if (opt('json')) writeFileSync(opt('json'), JSON.stringify(out, null, 1));
  if (differ || b.redone.length) process.exitCode = 1;
}

const modes = { train, bare, alloc, resume };
if (!modes[mode]) {
  console.error('usage: node bench/soak.mjs train|alloc|resume [options] (see the top of the file)');
  process.exit(2);
}
await modes[mode]();
