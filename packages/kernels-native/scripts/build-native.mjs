#!/usr/bin/env node
// Builds the native addon with nvcc into the prebuildify layout that node-gyp-build reads:
//   prebuilds/linux-x64/@deepwell+kernels-native.napi.node
//
// Why not node-gyp/prebuildify: node-gyp drives a C++ compiler through gyp and has no clean way to
// hand .cu files and device-code flags to nvcc, nor to link cudart statically with nvcc's link step.
// This script does that one job and writes the same layout prebuildify would, so loading stays
// node-gyp-build's. It is skipped when the sources and flags have not changed since the last build.
//
//   node scripts/build-native.mjs [--force] [--copy-sources]
//   DEEPWELL_CUDA_ARCHS="90a,100f"   targets to build (default: 90a and 100f, plus compute_90 PTX)
//   DEEPWELL_REQUIRE_NATIVE=1         fail when nvcc is missing (CI) instead of skipping
//   DEEPWELL_SKIP_NATIVE_BUILD=1      build nothing (release: the prebuilds come from the CUDA job)
//   CUDA_HOME                          where nvcc lives (else PATH, else /usr/local/cuda)
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(pkg, 'package.json'));
const args = new Set(process.argv.slice(2));
const log = (m) => console.log(`[kernels-native] ${m}`);
export const OUT_DIR = join(pkg, 'prebuilds', `${process.platform}-${process.arch}`);
export const OUT_FILE = join(OUT_DIR, '@deepwell+kernels-native.napi.node');

function sourceRoot() {
  const mono = join(pkg, '..', '..', 'native');
  if (existsSync(mono)) return mono;
  const packed = join(pkg, 'native-src');
  if (existsSync(packed)) return packed;
  return null;
}

if (args.has('--copy-sources')) {
  // prepack: ship the sources so a machine with nvcc but no matching prebuild can build.
  const src = sourceRoot();
  const dst = join(pkg, 'native-src');
  if (src && src !== dst) {
    rmSync(dst, { recursive: true, force: true });
    cpSync(src, dst, { recursive: true });
    log(`copied ${relative(pkg, src)} to native-src/ for packing`);
  }
  process.exit(0);
}

export function findNvcc() {
  const cands = [];
  if (process.env.CUDA_HOME) cands.push(join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  for (const d of (process.env.PATH ?? '').split(':')) if (d) cands.push(join(d, 'nvcc'));
  cands.push('/usr/local/cuda/bin/nvcc');
  return cands.find((c) => existsSync(c)) ?? null;
}

function walk(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

function archFlags(nvcc) {
  const supported = execFileSync(nvcc, ['--list-gpu-arch'], { encoding: 'utf8' });
  const want = (process.env.DEEPWELL_CUDA_ARCHS ?? '90a,100f').split(',').map((s) => s.trim()).filter(Boolean);
  const flags = [];
  const built = [];
  for (const a of want) {
    let arch = a;
    // The Blackwell family target (sm_100f: B200 and B300) needs nvcc >= 12.9; fall back to sm_100a.
    if (arch === '100f' && !/compute_100/.test(supported)) continue;
    if (arch === '100f') {
      try {
        execFileSync(nvcc, ['-gencode=arch=compute_100f,code=sm_100f', '--dryrun', '-x', 'cu', '-c', '/dev/null', '-o', '/dev/null'], { stdio: 'ignore' });
      } catch {
        arch = '100a';
      }
    }
    flags.push(`-gencode=arch=compute_${arch},code=sm_${arch}`);
    built.push(`sm_${arch}`);
  }
  // PTX for forward compatibility: plain compute_90 JIT-compiles on any later GPU.
  flags.push('-gencode=arch=compute_90,code=compute_90');
  built.push('compute_90 (PTX)');
  return { flags, built };
}

function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve(err) : reject(new Error(`${cmd} ${argv.join(' ')}\n${err}`))));
  });
}

async function main() {
  if (process.env.DEEPWELL_SKIP_NATIVE_BUILD === '1' && !args.has('--force')) {
    log('DEEPWELL_SKIP_NATIVE_BUILD=1: keeping whatever is in prebuilds/');
    return;
  }
  const root = sourceRoot();
  const nvcc = findNvcc();
  if (!nvcc || !root) {
    const why = !nvcc ? 'nvcc was not found (set CUDA_HOME or put nvcc on PATH)' : 'the native sources are not here';
    if (process.env.DEEPWELL_REQUIRE_NATIVE === '1') throw new Error(`cannot build the native addon: ${why}`);
    log(existsSync(OUT_FILE) ? `${why}; keeping the existing prebuilt binary` : `${why}; skipping the native build (CPU only)`);
    return;
  }
  const sources = walk(root).filter((f) => /\.(cu|cpp)$/.test(f)).sort();
  const headers = walk(root).filter((f) => /\.(h|cuh|hpp)$/.test(f)).sort();
  const { flags, built } = archFlags(nvcc);
  const includes = [require('node-addon-api').include_dir, join(dirname(require.resolve('node-api-headers/package.json')), 'include')];
  const common = [
    '-std=c++17', '-O3', '-Xcompiler', '-fPIC,-fvisibility=hidden', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS',
    '-DNODE_ADDON_API_CPP_EXCEPTIONS_ALL', `-DDW_CUDA_ARCHS="${built.join(',')}"`, ...includes.map((i) => `-I${i}`), `-I${root}`,
  ];
  const hash = createHash('sha256');
  for (const f of [...sources, ...headers]) hash.update(f.slice(root.length)).update(readFileSync(f));
  hash.update(JSON.stringify([common, flags, execFileSync(nvcc, ['--version'], { encoding: 'utf8' })]));
  const digest = hash.digest('hex');
  const infoFile = join(OUT_DIR, 'build-info.json');
  if (!args.has('--force') && existsSync(OUT_FILE) && existsSync(infoFile) && JSON.parse(readFileSync(infoFile, 'utf8')).digest === digest) {
    log('native addon is up to date');
    return;
  }
  // Objects are kept by a key of their source, every header, the flags and nvcc: editing one .cu
  // file recompiles that file alone (a header change recompiles everything, as it may). They live in
  // the package's build/ (ignored by git; os.tmpdir() is the package folder itself under pnpm's
  // lifecycle scripts), and objects of earlier sources are removed once the addon is linked.
  const objDir = join(pkg, 'build', 'objects');
  mkdirSync(objDir, { recursive: true });
  mkdirSync(OUT_DIR, { recursive: true });
  const shared = createHash('sha256');
  for (const f of headers) shared.update(f.slice(root.length)).update(readFileSync(f));
  shared.update(JSON.stringify([common, flags, execFileSync(nvcc, ['--version'], { encoding: 'utf8' })]));
  const sharedKey = shared.digest('hex');
  const objects = sources.map((s) => {
    const key = createHash('sha256').update(sharedKey).update(s.slice(root.length)).update(readFileSync(s)).digest('hex').slice(0, 16);
    return join(objDir, `${relative(root, s).replace(/[/\\]/g, '_')}-${key}.o`);
  });
  const queue = sources.filter((_, i) => !existsSync(objects[i]));
  log(`building ${queue.length} of ${sources.length} sources for ${built.join(', ')} with ${nvcc}`);
  const t0 = Date.now();
  const workers = Array.from({ length: Math.max(1, Math.min(availableParallelism(), 4)) }, async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      const obj = objects[sources.indexOf(s)];
      const warnings = await run(nvcc, [...common, ...(s.endsWith('.cu') ? flags : []), '-c', s, '-o', `${obj}.tmp`]);
      renameSync(`${obj}.tmp`, obj);
      if (warnings.trim()) process.stderr.write(warnings);
    }
  });
  await Promise.all(workers);
  const tmpOut = `${OUT_FILE}.tmp`;
  await run(nvcc, ['-shared', '-cudart', 'static', ...flags, '-o', tmpOut, ...objects, '-ldl']);
  rmSync(OUT_FILE, { force: true });
  cpSync(tmpOut, OUT_FILE);
  rmSync(tmpOut, { force: true });
  const keep = new Set(objects.map((o) => relative(objDir, o)));
  for (const f of readdirSync(objDir)) if (!keep.has(f)) rmSync(join(objDir, f), { force: true });
  writeFileSync(infoFile, JSON.stringify({ digest, archs: built, nvcc: execFileSync(nvcc, ['--version'], { encoding: 'utf8' }).trim().split('\n').at(-1), builtAt: new Date().toISOString() }, null, 2));
  log(`built ${relative(pkg, OUT_FILE)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`[kernels-native] native build failed: ${e.message}`);
    process.exit(1);
  });
}
