// The packed packages install into an empty project on a PATH without nvcc, and the prebuilt binary
// loads from there: what a user gets from `npm install @deepwell/kernels-native`.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/index.js';

const repo = join(PACKAGE_ROOT, '..', '..');

// Packing needs pnpm and npm; the GPU host has neither (its check installs the tarballs here and
// carries the installed project there instead: scripts/gpu-check.sh).
const tools = ['pnpm', 'npm'].every((t) => (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, t))));

describe.skipIf(!tools)('the packed tarballs', () => {
  it('install without nvcc and load the prebuilt binary, from CommonJS and ESM', () => {
    const out = execFileSync(process.execPath, [join(repo, 'scripts', 'pack-install.mjs')], { encoding: 'utf8' });
    const { project, npmLog } = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(npmLog.join('\n')).not.toMatch(/building|nvcc/i); // nothing was compiled
    const installed = join(project, 'node_modules', '@deepwell', 'kernels-native');
    expect(existsSync(join(installed, 'prebuilds', 'linux-x64', '@deepwell+kernels-native.napi.node'))).toBe(true);
    const env = { ...process.env, PATH: (process.env.PATH ?? '').split(':').filter((d) => !existsSync(join(d, 'nvcc'))).join(':') };
    const cjs = execFileSync(process.execPath, ['-e', "const k = require('@deepwell/kernels-native'); console.log(JSON.stringify({ path: k.nativePath(), status: k.cudaStatus() }))"], { cwd: project, env, encoding: 'utf8' });
    const c = JSON.parse(cjs);
    expect(c.path.startsWith(installed)).toBe(true);
    expect(c.status.loaded).toBe(true);
    const esm = execFileSync(process.execPath, ['--input-type=module', '-e', "import { nativePath } from '@deepwell/kernels-native'; console.log(nativePath())"], { cwd: project, env, encoding: 'utf8' });
    expect(esm.trim().startsWith(installed)).toBe(true);
    // The probe CLI and the probe example run from the installed packages.
    const report = JSON.parse(execFileSync(join(project, 'node_modules', '.bin', 'deepwell-probe'), ['--json'], { cwd: project, env, encoding: 'utf8' }));
    expect(Array.isArray(report.gpus)).toBe(true);
    expect(report.native.loaded).toBe(true);
    copyFileSync(join(repo, 'examples', 'probe', 'index.mjs'), join(project, 'probe.mjs'));
    expect(execFileSync(process.execPath, ['probe.mjs'], { cwd: project, env, encoding: 'utf8' })).toMatch(/Deepwell hardware report/);
  }, 240_000);
});
