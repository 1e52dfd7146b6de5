#!/usr/bin/env node
// Install step of @deepwell/kernels-native: use the prebuilt binary when it loads here; otherwise
// build from source when nvcc is present; otherwise say so and carry on (Deepwell runs on the CPU).
// It never fails the install: a missing GPU stack is a reason to run on the CPU, not an error.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(pkg, 'package.json'));
const log = (m) => console.log(`[kernels-native] ${m}`);

if (process.env.DEEPWELL_SKIP_NATIVE_BUILD === '1') process.exit(0);

let loadError = null;
try {
  const path = require('node-gyp-build').resolve(pkg);
  require(path);
  process.exit(0); // the prebuilt binary loads: nothing to do
} catch (e) {
  loadError = e.message.split('\n')[0];
}

const { findNvcc } = await import('./build-native.mjs');
const hasSources = existsSync(join(pkg, 'native-src')) || existsSync(join(pkg, '..', '..', 'native'));
if (findNvcc() && hasSources) {
  log(`no loadable prebuilt binary (${loadError}); building from source`);
  try {
    execFileSync(process.execPath, [join(pkg, 'scripts', 'build-native.mjs')], { stdio: 'inherit' });
  } catch {
    log('the source build failed; Deepwell will run on the CPU only. Run `npx deepwell-build-native` to see why.');
  }
} else {
  log(`no loadable prebuilt binary for ${process.platform}-${process.arch} (${loadError}) and no nvcc to build one: Deepwell will run on the CPU only`);
}
