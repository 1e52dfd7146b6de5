// Every op is tested against an independent computation, and every gradient rule by finite
// differences: this test fails when an op or a rule is added without its test.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { differentiableOps, gradientRule, listOps } from '../src/index.js';

const dir = import.meta.dirname;
const text = readdirSync(dir)
  .filter((f) => f.endsWith('.test.ts') && f !== 'coverage.test.ts')
  .map((f) => readFileSync(join(dir, f), 'utf8'))
  .join('\n');

/** Ops checked as `gradcheck('op', …)`, or in a loop `for (const op of ['a', 'b']) { … gradcheck(op, …) }`. */
const gradchecked = new Set<string>();
for (const m of text.matchAll(/gradcheck\(\s*['"]([a-z_]+)['"]/g)) gradchecked.add(m[1]!);
for (const m of text.matchAll(/for \(const op of \[([^\]]*)\]\)\s*\{[^}]*?gradcheck\(op,/g)) {
  for (const name of m[1]!.matchAll(/['"]([a-z_]+)['"]/g)) gradchecked.add(name[1]!);
}

/** Ops whose rule passes no gradient at all (no differentiable input). */
const NO_GRADIENT = new Set(['fill', 'one_hot']);

it('tests every op directly', () => {
  const untested = listOps().filter((op) => !new RegExp(`['"]${op}['"]`).test(text));
  expect(untested).toEqual([]);
  expect(listOps().length).toBeGreaterThan(30);
});

it('checks every gradient rule against finite differences', () => {
  const unchecked = differentiableOps().filter((op) => !NO_GRADIENT.has(op) && !gradchecked.has(op));
  expect(unchecked).toEqual([]);
  for (const op of NO_GRADIENT) expect(gradientRule(op)).toBeDefined();
});
