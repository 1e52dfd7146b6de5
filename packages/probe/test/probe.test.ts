import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registry } from '@deepwell/core';
import { cudaStatus, memGetInfo, registerCudaBackends } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { featuresOf, formatHardwareInfo, kernelImageFor, peakRatesFor, probe, smokeTest } from '../src/index.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'deepwell-probe.mjs');
const gpu = cudaStatus().available;

describe('features from the compute capability', () => {
  it('knows what each generation can do', () => {
    const on = (major: number, minor: number) => Object.entries(featuresOf(major, minor)).filter(([, v]) => v).map(([k]) => k).sort();
    expect(on(7, 5)).toEqual([]);
    expect(on(8, 0)).toEqual(['bf16', 'tf32']);
    expect(on(8, 9)).toEqual(['bf16', 'fp8', 'tf32']);
    expect(on(9, 0)).toEqual(['bf16', 'clusters', 'fp8', 'tf32', 'tma', 'wgmma']);
    expect(on(10, 0)).toEqual(['bf16', 'clusters', 'fp8', 'mxfp4', 'mxfp6', 'mxfp8', 'nvfp4', 'tcgen05', 'tf32', 'tma', 'tmem']);
    expect(on(12, 0)).toEqual(['bf16', 'clusters', 'fp8', 'mxfp4', 'mxfp6', 'mxfp8', 'nvfp4', 'tf32', 'tma']);
  });

  it('says which code of the addon runs on a GPU', () => {
    const built = 'sm_90a,sm_100f,compute_90 (PTX)';
    expect(kernelImageFor(9, 0, built)).toBe('sm_90a');
    expect(kernelImageFor(10, 0, built)).toBe('sm_100f');
    expect(kernelImageFor(10, 3, built)).toBe('sm_100f');
    expect(kernelImageFor(8, 0, built)).toMatch(/PTX/);
    expect(kernelImageFor(8, 0, 'sm_90a')).toBe('none');
  });

  it('knows datasheet peaks only for GPUs it knows by name', () => {
    expect(peakRatesFor('NVIDIA H200')).toMatchObject({ bf16Tflops: 989.4, fp8Tflops: 1978.9, memoryGBps: 4800 });
    expect(peakRatesFor('Some Future GPU')).toBeNull();
  });
});

describe('probe()', () => {
  it('reports the host, the addon, CUDA and every GPU', () => {
    const r = probe();
    expect(r.host.cpuCount).toBeGreaterThan(0);
    expect(r.native.loaded).toBe(true);
    expect(r.native.cudaArchs).toMatch(/sm_90a/);
    expect(r.libraries.map((l) => l.library)).toEqual(['cublasLt', 'nccl', 'nvml']);
    if (!gpu) {
      expect(r.gpus).toEqual([]);
      expect(r.cuda.available).toBe(false);
      expect(r.cuda.reason).toMatch(/\w/);
      return;
    }
    expect(r.gpus.length).toBe(cudaStatus().deviceCount);
    for (const g of r.gpus) {
      expect(g.name).toMatch(/\w/);
      expect(g.computeCapability).toBe(`${g.major}.${g.minor}`);
      expect(g.smCount).toBeGreaterThan(0);
      expect(g.memoryCudaTotalBytes).toBe(memGetInfo(g.index).total);
      // The board's memory (NVML, as nvidia-smi) when NVML is there; never less than what CUDA can use.
      expect(g.memoryBytes).toBe(g.live?.memoryTotalBytes ?? g.memoryCudaTotalBytes);
      expect(g.memoryBytes).toBeGreaterThanOrEqual(g.memoryCudaTotalBytes);
      expect(g.l2CacheBytes).toBeGreaterThan(0);
      expect(g.memoryBandwidthGBps).toBeGreaterThan(100);
    }
  });

  it('prints a report a person can read', () => {
    const text = formatHardwareInfo();
    expect(text).toMatch(/^Deepwell hardware report/);
    expect(text).toMatch(gpu ? /gpu 0 / : /gpus +none/);
  });
});

describe('deepwell-probe', () => {
  it('prints JSON with a gpus array and exits 0', () => {
    const r = JSON.parse(execFileSync(process.execPath, [bin, '--json'], { encoding: 'utf8' }));
    expect(Array.isArray(r.gpus)).toBe(true);
    expect(r.gpus.length).toBe(gpu ? cudaStatus().deviceCount : 0);
  });

  it('refuses unknown arguments with usage and exit code 2', () => {
    const r = spawnSync(process.execPath, [bin, '--jsn'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown argument '--jsn'/);
    expect(r.stderr).toMatch(/Usage: deepwell-probe/);
  });
});

describe('smokeTest', () => {
  it('runs on the CPU reference through the registry and checks every element', () => {
    const n = 1000 + Math.floor(Math.random() * 5000);
    const r = smokeTest('cpu', n);
    expect(r).toMatchObject({ device: 'cpu', kernel: 'smoke_fill_u32_reference', elements: n, mismatches: 0 });
    const why = registry.explain('probe.smoke_fill', { out: { device: 'cpu' } });
    expect(why.rows.find((x) => x.name === 'smoke_fill_u32_cuda')?.verdict).toBe('output is on cpu');
  });

  it('refuses a device with no backend', () => {
    expect(() => smokeTest('cuda:9')).toThrow(/No backend for cuda:9/);
  });

  it.skipIf(!gpu)('runs the CUDA kernel on the GPU', () => {
    registerCudaBackends();
    const r = smokeTest('cuda:0', (1 << 20) + 17);
    expect(r).toMatchObject({ device: 'cuda:0', kernel: 'smoke_fill_u32_cuda', mismatches: 0 });
  });
});
