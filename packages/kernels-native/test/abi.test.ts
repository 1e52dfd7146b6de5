// The native ABI: the generated files are current, and every entry point in the table rejects a bad
// call (wrong count, wrong kinds, out-of-range values and pointers) with a typed DeepwellError from
// the one checked reader, never a crash. The raw addon is called here, below the typed bindings,
// with fresh random values each run.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DeepwellError } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { ENTRY_POINTS, PACKAGE_ROOT, fromNative, nativePath, tryLoadNative, type EntryArg } from '../src/index.js';

const addon = tryLoadNative();
const raw = addon ? (createRequire(import.meta.url)(nativePath()!) as Record<string, (...a: unknown[]) => unknown>) : null;

/** A pointer no allocation holds: above any address the allocator hands out here, 256-aligned. */
const bogusPtr = () => 0x7e00_0000_0000 + Math.floor(Math.random() * 1e6) * 256;
const small = () => 1 + Math.floor(Math.random() * 3);

/** A call's arguments with every kind right and every length 1: (value, what it stands for)[]. */
function wellKinded(args: readonly EntryArg[]): { values: unknown[]; kinds: string[] } {
  const values: unknown[] = [];
  const kinds: string[] = [];
  const lengths = new Set(args.filter((a) => a.len).map((a) => a.len!));
  const push = (a: EntryArg) => {
    if (lengths.has(a.name)) return (values.push(1), kinds.push('u64'));
    switch (a.kind) {
      case 'tensor':
        values.push(bogusPtr(), 0);
        kinds.push('u64', 'u64');
        return;
      case 'workspace':
        values.push(0, 0, 0);
        kinds.push('u64', 'u64', 'u64');
        return;
      case 'u64[]':
        values.push(small());
        kinds.push('u64');
        return;
      case 'tensor[]':
        values.push(bogusPtr(), 0);
        kinds.push('u64', 'u64');
        return;
      case 'group':
        for (const x of a.args!) push(x);
        return;
      case 'view':
        values.push(new Uint8Array(8));
        kinds.push('view');
        return;
      case 'string':
        values.push('libdoesnotexist.so');
        kinds.push('string');
        return;
      case 'string[]':
        values.push(['libdoesnotexist.so']);
        kinds.push('string[]');
        return;
      case 'bool':
        values.push(true);
        kinds.push('bool');
        return;
      case 'stream':
      case 'dtype':
      case 'fdtype':
      case 'enum':
      case 'flag':
        values.push(0);
        kinds.push('u64');
        return;
      case 'f64':
        values.push(Math.random());
        kinds.push('f64');
        return;
      default:
        values.push(small());
        kinds.push(a.kind);
    }
  };
  for (const a of args) push(a);
  return { values, kinds };
}

/** A value of the wrong kind for a wire slot of kind `kind`. */
const wrongKind = (kind: string): unknown => (kind === 'string' || kind === 'string[]' || kind === 'view' || kind === 'bool' ? 12345 : 'not a number');

const CODES = new Set(['INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH', 'DOUBLE_FREE', 'CUDA_UNAVAILABLE', 'CUDA_ERROR', 'LIBRARY_UNAVAILABLE']);

/** The call throws a typed error (a DeepwellError with a known code), and the process goes on. */
function rejects(fn: string, args: unknown[]): DeepwellError {
  let thrown: unknown = null;
  try {
    raw![fn]!(...args);
  } catch (e) {
    thrown = e;
  }
  if (thrown === null) throw new Error(`${fn}(${args.map(String).join(', ')}) did not throw`);
  const e = fromNative(thrown);
  if (!CODES.has(e.code)) throw new Error(`${fn}: untyped failure ${e.code}: ${e.message}`);
  return e;
}

describe('the ABI table', () => {
  it('generated files are current (node scripts/gen-abi.mjs --check)', () => {
    const out = execFileSync(process.execPath, [join(PACKAGE_ROOT, 'scripts', 'gen-abi.mjs'), '--check'], { encoding: 'utf8' });
    expect(out).toMatch(/current/);
  });

  it.skipIf(!raw)('the addon exports exactly the table\'s entry points', () => {
    const exported = Object.keys(raw!).filter((k) => typeof raw![k] === 'function').sort();
    expect(exported).toEqual(ENTRY_POINTS.map((e) => e.name).sort());
  });
});

describe.skipIf(!raw)('every entry point rejects a bad call with a typed error (no GPU needed)', () => {
  const withArgs = ENTRY_POINTS.filter((e) => e.args.length > 0);

  it('entry points that take no arguments reject one', () => {
    for (const e of ENTRY_POINTS.filter((x) => x.args.length === 0)) {
      expect(rejects(e.name, [Math.random()]).message).toMatch(new RegExp(`Expected 0 arguments for ${e.name}`));
    }
  });

  it.each(withArgs.map((e) => [e.name, e] as const))('%s: wrong counts', (_name, e) => {
    const { values } = wellKinded(e.args);
    expect(rejects(e.name, []).message).toMatch(/Expected|argument/);
    expect(rejects(e.name, values.slice(0, -1)).code).toBe('INVALID_ARGUMENT');
    expect(rejects(e.name, [...values, 0]).message).toMatch(new RegExp(`arguments for ${e.name}`));
  });

  it.each(withArgs.map((e) => [e.name, e] as const))('%s: a wrong kind in each position', (_name, e) => {
    const { values, kinds } = wellKinded(e.args);
    for (let i = 0; i < values.length; i++) {
      const bad = [...values];
      bad[i] = wrongKind(kinds[i]!);
      const err = rejects(e.name, bad);
      expect(err.code).toBe('INVALID_ARGUMENT');
    }
  });

  it.each(withArgs.filter((e) => e.args.some((a) => a.kind === 'u64' && !e.args.some((b) => b.len === a.name))).map((e) => [e.name, e] as const))(
    '%s: sizes out of range',
    (_name, e) => {
      const { values, kinds } = wellKinded(e.args);
      for (let i = 0; i < values.length; i++) {
        if (kinds[i] !== 'u64') continue;
        for (const v of [-1, 0.5, 2 ** 60, Number.NaN]) {
          const bad = [...values];
          bad[i] = v;
          expect(CODES.has(rejects(e.name, bad).code)).toBe(true);
        }
      }
    },
  );

  it.each(withArgs.filter((e) => e.args.some((a) => a.kind === 'tensor' || a.kind === 'tensor[]')).map((e) => [e.name, e] as const))(
    '%s: pointers no allocation holds',
    (_name, e) => {
      // Every kind right and every size small, every tensor at a pointer never handed out: the call
      // must fail before any device work.
      const { values } = wellKinded(e.args);
      expect(CODES.has(rejects(e.name, values).code)).toBe(true);
    },
  );
});
