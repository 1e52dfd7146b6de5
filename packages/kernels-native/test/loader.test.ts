import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, cudaStatus, loadNative, nativeLoadError, nativePath } from '../src/index.js';

const dist = join(PACKAGE_ROOT, 'dist', 'index.js');

function childLoad(env: Record<string, string>): { code: string; message: string } {
  const script = `import(${JSON.stringify(dist)}).then((k) => { try { k.loadNative(); console.log(JSON.stringify({ code: 'LOADED', message: '' })); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); } })`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' }));
}

describe('loading the addon', () => {
  it('loads the prebuilt binary from the prebuildify layout', () => {
    expect(nativeLoadError()).toBeNull();
    expect(nativePath()).toMatch(/prebuilds\/linux-x64\/@deepwell\+kernels-native\.napi\.node$/);
    const { build } = loadNative();
    expect(build.cudaArchs).toMatch(/sm_90a/);
    expect(build.cudaArchs).toMatch(/sm_100/);
    expect(build.cudartVersion).toBeGreaterThanOrEqual(12000);
  });

  it('says whether CUDA is usable, and why not', () => {
    const s = cudaStatus();
    expect(s.loaded).toBe(true);
    expect(s.runtimeVersion).toBeGreaterThanOrEqual(12000);
    if (s.available) {
      expect(s.deviceCount).toBeGreaterThan(0);
      expect(s.driverVersion).toBeGreaterThan(0);
      expect(s.reason).toBeUndefined();
    } else {
      expect(s.deviceCount).toBe(0);
      expect(s.reason).toMatch(/\w/);
    }
  });

  it('explains a missing binary: what was tried and how to fix it', () => {
    const r = childLoad({ DEEPWELL_NATIVE_PATH: '/nonexistent/deepwell.node' });
    expect(r.code).toBe('NATIVE_LOAD_FAILED');
    expect(r.message).toContain('DEEPWELL_NATIVE_PATH=/nonexistent/deepwell.node (no such file)');
    expect(r.message).toContain('Possible fixes');
    expect(r.message).toContain('nvcc');
  });

  it('explains a corrupt binary', () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'dw-bad-')), 'bad.node');
    writeFileSync(bad, `not an ELF file ${Math.random()}`);
    const r = childLoad({ DEEPWELL_NATIVE_PATH: bad });
    expect(r.code).toBe('NATIVE_LOAD_FAILED');
    expect(r.message).toMatch(/Could not load the Deepwell native addon: .*(invalid ELF|too short|ELF)/);
  });
});
