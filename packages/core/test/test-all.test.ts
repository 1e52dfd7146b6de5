// The repository's test runner (scripts/test-all.mjs, what `pnpm test` and CI run): into a log (a
// pipe) it writes plain text — no terminal escape codes — and ends on the totalling line. It once set
// FORCE_COLOR=0 for its runners, which turns colours on (the variable is tested for presence).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('scripts/test-all.mjs', () => {
  it('writes a log without escape codes and ends on "N passed, N failed, N skipped"', () => {
    const env = { ...process.env };
    delete env.NO_COLOR;
    delete env.FORCE_COLOR;
    const out = execFileSync(process.execPath, [join(repo, 'scripts', 'test-all.mjs'), 'packages/probe'], { cwd: repo, env, encoding: 'utf8' });
    expect(out).not.toMatch(/\u001b\[/);
    expect(out.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed, \d+ skipped$/);
  }, 120_000);
});
