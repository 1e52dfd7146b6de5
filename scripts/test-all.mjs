#!/usr/bin/env node
// Runs every package's tests with its own vitest run, shows each run's summary, and ends with one
// line totalling all packages: `N passed, N failed, N skipped`. Exits non-zero when any test fails or
// a runner dies. GPU tests skip themselves where no GPU is present.
//
//   node scripts/test-all.mjs [package-dir ...]   (default: every package under packages/, then the fuzz suite)
//
// The fuzz suite (fuzz/run.mjs) runs last and shows its own line, "fuzz: N cases, N typed errors, N
// accepted, 0 crashes, 0 hangs, 0 untyped, 0 silent"; in the total its cases count as passed when
// typed or accepted and failed otherwise. Ask for it alone with `node scripts/test-all.mjs fuzz`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const requested = process.argv.slice(2).filter((d) => d !== 'fuzz');
const fuzz = process.argv.slice(2).includes('fuzz') || process.argv.length === 2;
const dirs = (requested.length ? requested.map((d) => join(root, d)) : fuzz && process.argv.length > 2 ? [] : readdirSync(join(root, 'packages')).map((d) => join(root, 'packages', d)))
  .filter((d) => existsSync(join(d, 'vitest.config.ts')))
  .sort();
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const out = mkdtempSync(join(tmpdir(), 'deepwell-tests-'));
const totals = { passed: 0, failed: 0, skipped: 0 };
const rows = [];
let broken = false;

// Colour only on a terminal. (FORCE_COLOR set to anything, '0' included, turns the runner's colours
// on: it is tested for presence. A log gets plain text.)
const runnerEnv = { ...process.env };
if (!process.stdout.isTTY) {
  delete runnerEnv.FORCE_COLOR;
  runnerEnv.NO_COLOR = '1';
}

for (const dir of dirs) {
  const name = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name;
  const json = join(out, `${name.replace(/[@/]/g, '_')}.json`);
  console.log(`\n=== ${name} ===`);
  const r = spawnSync(process.execPath, [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${json}`], {
    cwd: dir,
    stdio: 'inherit',
    env: runnerEnv,
  });
  if (!existsSync(json)) {
    console.log(`${name}: the test runner exited with ${r.status ?? r.signal} and wrote no results`);
    broken = true;
    rows.push([name, 0, 0, 0, 'runner failed']);
    continue;
  }
  const j = JSON.parse(readFileSync(json, 'utf8'));
  const skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  totals.passed += j.numPassedTests;
  totals.failed += j.numFailedTests;
  totals.skipped += skipped;
  // A suite that failed to load counts as a failure even when no test in it ran.
  const suiteFailures = (j.testResults ?? []).filter((t) => t.status === 'failed' && (t.assertionResults ?? []).length === 0).length;
  if (suiteFailures) {
    totals.failed += suiteFailures;
    broken = true;
  }
  if (r.status !== 0) broken = true;
  rows.push([name, j.numPassedTests, j.numFailedTests + suiteFailures, skipped, r.status === 0 ? 'ok' : 'FAILED']);
}

if (fuzz) {
  console.log('\n=== fuzz (fuzz/run.mjs) ===');
  const r = spawnSync(process.execPath, [join(root, 'fuzz', 'run.mjs')], { cwd: root, env: runnerEnv, encoding: 'utf8', maxBuffer: 64 << 20 });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  const m = /^fuzz: (\d+) cases, (\d+) typed errors, (\d+) accepted, (\d+) crashes, (\d+) hangs, (\d+) untyped, (\d+) silent$/m.exec(r.stdout ?? '');
  if (!m) {
    console.log(`fuzz: the suite exited with ${r.status ?? r.signal} and printed no summary`);
    broken = true;
    totals.failed += 1;
    rows.push(['fuzz', 0, 1, 0, 'runner failed']);
  } else {
    const [cases, typed, accepted] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const failed = cases - typed - accepted + (r.status !== 0 && cases === typed + accepted ? 1 : 0);
    totals.passed += typed + accepted;
    totals.failed += failed;
    if (r.status !== 0) broken = true;
    rows.push(['fuzz (cases)', typed + accepted, failed, 0, r.status === 0 ? 'ok' : 'FAILED']);
  }
}

console.log('\n=== summary ===');
for (const [name, p, f, s, st] of rows) console.log(`${String(name).padEnd(28)} ${String(p).padStart(4)} passed ${String(f).padStart(3)} failed ${String(s).padStart(3)} skipped  ${st}`);
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = broken || totals.failed > 0 ? 1 : 0;
