import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findLibrary, findVendorLibraries, libraryCandidates } from '../src/index.js';

afterEach(() => {
  delete process.env.DEEPWELL_NVML_PATH;
});

describe('vendor libraries found at run time', () => {
  it('looks at the environment override first, then the soname', () => {
    const fake = join(mkdtempSync(join(tmpdir(), 'dw-lib-')), `libnvidia-ml-${Math.random().toString(36).slice(2)}.so.1`);
    writeFileSync(fake, 'not a shared object');
    process.env.DEEPWELL_NVML_PATH = fake;
    const c = libraryCandidates('nvml');
    expect(c[0]).toBe(fake);
    expect(c[1]).toBe('libnvidia-ml.so.1');
    const r = findLibrary('nvml', { refresh: true });
    const mine = r.tried.find((t) => t.candidate === fake);
    expect(mine?.error).toMatch(/\S/); // the loader's own reason
    expect(r.path).not.toBe(fake);
  });

  it('reports each library as found with a version, or not found with every reason', () => {
    for (const r of findVendorLibraries({ refresh: true })) {
      if (r.found) {
        expect(r.version).toMatch(/^\d+\.\d+\.\d+/);
        expect(r.path).toMatch(/\//);
      } else {
        expect(r.tried.length).toBeGreaterThan(0);
        for (const t of r.tried) expect(t.error).toMatch(/\S/);
      }
    }
    expect(libraryCandidates('cublasLt').slice(0, 2)).toEqual(['libcublasLt.so.13', 'libcublasLt.so.12']);
  });
});
