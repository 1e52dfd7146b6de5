#!/usr/bin/env node
// Packs @deepwell/core, /kernels-native and /probe with `pnpm pack` and installs the tarballs into an
// empty project with npm, on a PATH without nvcc and with CUDA_HOME unset: the install a user gets,
// which must load the prebuilt binary and build nothing. Prints the project's path as JSON.
//
//   node scripts/pack-install.mjs [--dest DIR]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--dest');
const dest = i > 0 ? process.argv[i + 1] : mkdtempSync(join(tmpdir(), 'deepwell-install-'));
const tarballs = join(dest, 'tarballs');
const project = join(dest, 'project');
rmSync(dest, { recursive: true, force: true });
mkdirSync(tarballs, { recursive: true });
mkdirSync(project, { recursive: true });

for (const p of ['core', 'kernels-native', 'probe']) {
  execFileSync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(root, 'packages', p), stdio: ['ignore', 'ignore', 'inherit'] });
}
const files = readdirSync(tarballs).filter((f) => f.endsWith('.tgz')).map((f) => join(tarballs, f));
if (files.length !== 3) throw new Error(`expected 3 tarballs, found ${files.join(', ')}`);

writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'deepwell-install-check', private: true, type: 'module' }, null, 2));
// A PATH with no nvcc on it, and no CUDA_HOME: the install must not build anything.
const PATH = (process.env.PATH ?? '').split(':').filter((d) => d && !existsSync(join(d, 'nvcc'))).join(':');
const env = { ...process.env, PATH, CUDA_HOME: '', npm_config_loglevel: 'error' };
delete env.CUDA_HOME;
const log = execFileSync('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', ...files], { cwd: project, env, encoding: 'utf8' });
console.log(JSON.stringify({ project, tarballs: files, npmLog: log.trim().split('\n') }));
