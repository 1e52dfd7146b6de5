#!/usr/bin/env node
// Every published package, installed alone from its packed tarball into an empty app, runs its
// README's example: what a user gets from `npm install @deepwell/<pkg>` and a copy-paste.
//
//   node scripts/package-check.mjs [--only trainer,nn] [--without-addon] [--keep] [--json FILE]
//
// It builds nothing: run `pnpm build` first (each package's dist/, and kernels-native's prebuilds/,
// are packed as they are). Per package: `pnpm pack --json` (as scripts/pack-install.mjs packs; its
// `prepack` steps run, so kernels-native ships its native sources), then an empty app that
// `npm install`s that tarball and the tarballs of its @deepwell dependencies, transitively (local
// tarballs only for @deepwell/*; third-party dependencies come from the npm registry), then the
// README's example — the first ```js block after a `<!-- package-check -->` line, else the first
// ```js block — read from the installed package (so the README was packed too), written to the app
// as index.mjs and run with node. kernels-native's install step runs with DEEPWELL_SKIP_NATIVE_BUILD=1,
// so it never compiles; the prebuilt binary in the tarball is what loads.
//
//   --without-addon   delete the installed prebuilds/ before running: the CPU path of a user whose
//                     addon cannot load (no binary for the platform, or an install that omitted it)
//   --keep            keep the temporary directory (printed) for a look at the apps
//   --json FILE       also write the results (pass/fail, seconds, tarball and installed sizes) as JSON
//
// Prints a line per package, the sizes that docs/packaging.md quotes, and a final summary line;
// exits 1 when any package fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCOPE = '@deepwell/';
const MB = 1e6;

/** The workspace's published packages: { dir, name, deps (their @deepwell dependencies) } by name. */
export function workspacePackages() {
  const out = new Map();
  for (const dir of readdirSync(join(root, 'packages')).sort()) {
    const file = join(root, 'packages', dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8'));
    if (pkg.private) continue;
    // What an install brings: dependencies, optional ones (npm installs those it can), peers (npm 7+).
    const all = { ...pkg.peerDependencies, ...pkg.optionalDependencies, ...pkg.dependencies };
    out.set(pkg.name, { dir: join(root, 'packages', dir), short: dir, name: pkg.name, deps: Object.keys(all).filter((d) => d.startsWith(SCOPE)) });
  }
  return out;
}

/** `name` and every @deepwell package it depends on, transitively. */
export function closure(packages, name) {
  const seen = new Set();
  const visit = (n) => {
    if (seen.has(n)) return;
    if (!packages.has(n)) throw new Error(`${name} depends on ${n}, which is not a package of this workspace`);
    seen.add(n);
    for (const d of packages.get(n).deps) visit(d);
  };
  visit(name);
  return [...seen];
}

/** Packs each package into `dest` with `pnpm pack`; returns the tarball paths by name. */
export function packAll(packages, dest) {
  mkdirSync(dest, { recursive: true });
  const tarballs = new Map();
  for (const p of packages) {
    const json = execFileSync('pnpm', ['pack', '--json', '--pack-destination', dest], { cwd: p.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    // prepack scripts may print before the JSON; the JSON is the last thing written.
    tarballs.set(p.name, JSON.parse(json.slice(json.indexOf('{\n'))).filename);
  }
  return tarballs;
}

/** Bytes under `path`, links not followed (what the install put on disk, less block rounding). */
export function bytesUnder(path) {
  const s = lstatSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((sum, f) => sum + bytesUnder(join(path, f)), 0);
}

/** The README's example: the first ```js block after `<!-- package-check -->`, else the first one. */
export function readmeExample(readme) {
  const marker = readme.indexOf('<!-- package-check -->');
  const m = /^```(?:js|javascript|mjs)\n([\s\S]*?)^```/m.exec(marker >= 0 ? readme.slice(marker) : readme);
  return m ? m[1] : null;
}

function installApp(app, tarballs) {
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'deepwell-package-check', private: true, type: 'module' }, null, 2));
  const env = { ...process.env, DEEPWELL_SKIP_NATIVE_BUILD: '1', npm_config_loglevel: 'error', npm_config_update_notifier: 'false' };
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', ...tarballs], { cwd: app, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm install failed (exit ${r.status}):\n${(r.stdout + r.stderr).trim()}`);
}

/** One package: install its closure, check the README, run its example. Returns a result row. */
function checkPackage(p, packages, tarballs, work, options) {
  const names = closure(packages, p.name);
  const row = { package: p.name, ok: false, seconds: 0, tarballBytes: statSync(tarballs.get(p.name)).size, closureTarballBytes: 0, installedBytes: 0, addonBytes: 0, why: '' };
  row.closureTarballBytes = names.reduce((s, n) => s + statSync(tarballs.get(n)).size, 0);
  const app = join(work, 'apps', p.short);
  const t0 = Date.now();
  try {
    installApp(app, names.map((n) => tarballs.get(n)));
    const installed = join(app, 'node_modules', ...p.name.split('/'));
    const readmeFile = join(installed, 'README.md');
    if (!existsSync(readmeFile)) throw new Error('the installed package has no README.md');
    const readme = readFileSync(readmeFile, 'utf8');
    const example = readmeExample(readme);
    if (!example) throw new Error('its README has no ```js example');
    const install = /^npm install (.+)$/m.exec(readme);
    if (!install || !install[1].split(/\s+/).includes(p.name)) throw new Error(`its README has no \`npm install ${p.name}\` line`);
    const imported = [...example.matchAll(/from '(@deepwell\/[\w-]+)'/g)].map((m) => m[1]);
    const unlisted = imported.filter((n) => !install[1].split(/\s+/).includes(n));
    if (unlisted.length) throw new Error(`the example imports ${unlisted.join(', ')}, which its install line does not name`);
    const prebuilds = join(app, 'node_modules', '@deepwell', 'kernels-native', 'prebuilds');
    if (existsSync(prebuilds)) {
      row.addonBytes = bytesUnder(prebuilds);
      if (options.withoutAddon) rmSync(prebuilds, { recursive: true });
    }
    row.installedBytes = bytesUnder(join(app, 'node_modules'));
    writeFileSync(join(app, 'index.mjs'), example);
    const run = spawnSync(process.execPath, ['index.mjs'], { cwd: app, encoding: 'utf8', timeout: 600_000, env: { ...process.env, FORCE_COLOR: '0' } });
    row.output = `${run.stdout}${run.stderr}`.trim();
    if (run.status !== 0) throw new Error(`node index.mjs ${run.signal ? `was killed (${run.signal})` : `exited with ${run.status}`}`);
    row.ok = true;
  } catch (e) {
    row.why = e.message;
  }
  row.seconds = (Date.now() - t0) / 1000;
  return row;
}

function main() {
  const argv = process.argv.slice(2);
  const value = (flag) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const options = { withoutAddon: argv.includes('--without-addon'), keep: argv.includes('--keep') };
  const packages = workspacePackages();
  const only = value('--only')?.split(',').map((s) => (s.startsWith(SCOPE) ? s : SCOPE + s));
  for (const n of only ?? []) if (!packages.has(n)) throw new Error(`--only: ${n} is not a published package here (${[...packages.keys()].join(', ')})`);
  const chosen = only ?? [...packages.keys()];
  for (const p of packages.values()) if (!existsSync(join(p.dir, 'dist'))) throw new Error(`${p.name} has no dist/: run pnpm build first`);

  const work = mkdtempSync(join(tmpdir(), 'deepwell-package-check-'));
  const needed = new Set(chosen.flatMap((n) => closure(packages, n)));
  console.log(`packing ${needed.size} packages into ${work}/tarballs`);
  const tarballs = packAll([...needed].map((n) => packages.get(n)), join(work, 'tarballs'));
  const rows = [];
  for (const name of chosen) {
    const row = checkPackage(packages.get(name), packages, tarballs, work, options);
    rows.push(row);
    const mb = (b) => `${(b / MB).toFixed(2)} MB`;
    const sizes = `tarball ${mb(row.tarballBytes)}, with its @deepwell dependencies ${mb(row.closureTarballBytes)}; installed ${mb(row.installedBytes)}${row.addonBytes ? ` (the addon's prebuilds ${mb(row.addonBytes)}${options.withoutAddon ? ', deleted before the run' : ''})` : ''}`;
    console.log(`${row.ok ? 'PASS' : 'FAIL'} ${name} (${row.seconds.toFixed(0)} s): ${sizes}`);
    if (!row.ok) console.log(`  ${row.why}${row.output ? `\n  output:\n    ${row.output.split('\n').slice(-25).join('\n    ')}` : ''}`);
  }
  const jsonFile = value('--json');
  if (jsonFile) writeFileSync(jsonFile, JSON.stringify({ date: new Date().toISOString(), withoutAddon: options.withoutAddon, node: process.version, rows }, null, 2));
  if (options.keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
  const failed = rows.filter((r) => !r.ok).length;
  console.log(`package-check${options.withoutAddon ? ' (without the addon)' : ''}: ${rows.length - failed} passed, ${failed} failed of ${rows.length} packages`);
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
