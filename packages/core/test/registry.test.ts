import { describe, expect, it } from 'vitest';
import { DeepwellError, KernelRegistry, registry } from '../src/index.js';

interface P { n: number; dtype: string }

function make() {
  const r = new KernelRegistry();
  const calls: string[] = [];
  r.register<P, string>({
    op: 'scale', backend: 'cuda', name: 'scale_bf16_sm90', priority: 100,
    supports: (p) => (p.dtype === 'bf16' ? true : `needs bf16, got ${p.dtype}`),
    run: () => (calls.push('fast'), 'fast'),
  });
  r.register<P, string>({
    op: 'scale', backend: 'cuda', name: 'scale_generic', priority: 50,
    supports: (p) => (p.n % 4 === 0 ? true : `n=${p.n} is not a multiple of 4`),
    run: () => (calls.push('generic'), 'generic'),
  });
  r.register<P, string>({
    op: 'scale', backend: 'cpu', name: 'scale_reference', priority: 0,
    supports: (p) => (p.n < 1e6 ? true : 'too large for the reference'),
    run: () => (calls.push('ref'), 'ref'),
  });
  return { r, calls };
}

describe('KernelRegistry', () => {
  it('selects the highest-priority candidate that supports the call', () => {
    const { r } = make();
    const n = 4 * (1 + Math.floor(Math.random() * 100));
    expect(r.select<P>('scale', { n, dtype: 'bf16' }).name).toBe('scale_bf16_sm90');
    expect(r.select<P>('scale', { n, dtype: 'f32' }).name).toBe('scale_generic');
    expect(r.select<P>('scale', { n: n + 1, dtype: 'f32' }).name).toBe('scale_reference');
  });

  it('explains every candidate with its verdict', () => {
    const { r } = make();
    const e = r.explain<P>('scale', { n: 6, dtype: 'f32' });
    expect(e.selected).toBe('scale_reference');
    expect(e.rows.map((x) => x.verdict)).toEqual(['needs bf16, got f32', 'n=6 is not a multiple of 4', 'selected']);
    expect(e.text).toContain('-> scale_reference');
    const two = r.explain<P>('scale', { n: 8, dtype: 'f32' });
    expect(two.rows.map((x) => x.verdict)).toEqual(['needs bf16, got f32', 'selected', 'supported']);
  });

  it('lists every candidate and reason when none fits', () => {
    const { r } = make();
    let err: unknown;
    try {
      r.select<P>('scale', { n: 2e6 + 1, dtype: 'f32' });
    } catch (e) {
      err = e;
    }
    expect(DeepwellError.is(err)).toBe(true);
    const e = err as DeepwellError;
    expect(e.code).toBe('NO_KERNEL');
    for (const s of ['scale_bf16_sm90', 'needs bf16', 'scale_generic', 'not a multiple of 4', 'scale_reference', 'too large']) {
      expect(e.message).toContain(s);
    }
    expect(() => r.select('nope', {})).toThrow(/registered ops: scale/);
  });

  it('counts which kernel served each call', () => {
    const { r, calls } = make();
    const k = 1 + Math.floor(Math.random() * 5);
    for (let i = 0; i < k; i++) r.dispatch<P>('scale', { n: 8, dtype: 'bf16' });
    r.dispatch<P>('scale', { n: 3, dtype: 'f32' });
    expect(calls.length).toBe(k + 1);
    expect(r.summary()).toEqual([
      { op: 'scale', kernel: 'scale_bf16_sm90', backend: 'cuda', calls: k },
      { op: 'scale', kernel: 'scale_reference', backend: 'cpu', calls: 1 },
    ]);
    r.resetSummary();
    expect(r.summary()).toEqual([]);
  });

  it('treats a supports() that throws as a reason, not a crash', () => {
    const r = new KernelRegistry();
    r.register({ op: 'x', backend: 'cpu', name: 'bad', priority: 1, supports: () => { throw new Error('oops'); }, run: () => 1 });
    r.register({ op: 'x', backend: 'cpu', name: 'ok', priority: 0, supports: () => true, run: () => 2 });
    expect(r.dispatch('x', {})).toBe(2);
    expect(r.explain('x', {}).rows[0]!.verdict).toBe('supports() threw: oops');
  });

  it('rejects malformed and duplicate candidates', () => {
    const r = new KernelRegistry();
    const good = { op: 'x', backend: 'cpu', name: 'k', priority: 0, supports: () => true as const, run: () => 0 };
    r.register(good);
    expect(() => r.register(good)).toThrow(/already registered/);
    expect(() => r.register({ ...good, name: '' })).toThrow(/non-empty string for kernel name/);
    expect(() => r.register({ ...good, name: 'k2', priority: 0.5 })).toThrow(/priority/);
    expect(() => r.register({ ...good, name: 'k3', run: 5 as never })).toThrow(/Expected a function for run/);
    expect(r.unregister('x', 'k')).toBe(true);
    expect(r.unregister('x', 'k')).toBe(false);
  });

  it('shares one default registry per process', () => {
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('deepwell.registry')]).toBe(registry);
  });
});

describe('DeepwellError', () => {
  it('carries a code, a cause and details, and is recognised across copies', () => {
    const cause = new Error('cudaErrorMemoryAllocation');
    const e = new DeepwellError('OUT_OF_MEMORY', 'no room', { cause, details: { bytes: 5 } });
    expect([e.code, e.cause, e.details.bytes, e.name]).toEqual(['OUT_OF_MEMORY', cause, 5, 'DeepwellError']);
    expect(e).toBeInstanceOf(Error);
    const foreign = Object.assign(new Error('x'), { [Symbol.for('deepwell.error')]: true });
    expect(DeepwellError.is(foreign)).toBe(true);
    expect(DeepwellError.is(new Error('x'))).toBe(false);
  });
});
