// The native build leaves nothing git would pick up: its objects live in the package's ignored
// build/ folder. (Under pnpm's lifecycle scripts os.tmpdir() is the package folder itself, so a
// fresh clone's install once left 25 MB of objects in packages/kernels-native/deepwell-native-*/.)
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/index.js';

const repo = join(PACKAGE_ROOT, '..', '..');
const git = existsSync(join(repo, '.git')) && (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, 'git')));

describe.skipIf(!git)('the native build', () => {
  it('leaves no build output (objects, libraries, addons) that git would pick up in the package', () => {
    const out = execFileSync('git', ['status', '--porcelain', '--untracked-files=all', '--', '.'], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
    const untracked = out.split('\n').filter((l) => l.startsWith('??') && /\.(o|obj|a|so|node|tmp)$/.test(l));
    expect(untracked).toEqual([]);
  });

  it('keeps its objects under build/, which git ignores', () => {
    const script = readFileSync(join(PACKAGE_ROOT, 'scripts', 'build-native.mjs'), 'utf8');
    expect(script).toMatch(/objDir = join\(pkg, 'build', 'objects'\)/);
    expect(execFileSync('git', ['check-ignore', 'build/objects/x.o'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).trim()).toBe('build/objects/x.o');
  });
});
