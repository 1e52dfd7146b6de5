// Junk into every public function and class of every package: each export called (and each class
// constructed, each static method called) with 0 to 3 junk arguments. Junk may be refused or, where a
// function is total (describe, DeepwellError.is), accepted; what it must never do is crash, hang or
// throw something other than a DeepwellError. The targeted modules judge what is accepted.
import * as attention from '@deepwell/attention-sparsek';
import * as cli from '@deepwell/cli';
import * as core from '@deepwell/core';
import * as ir from '@deepwell/ir';
import * as native from '@deepwell/kernels-native';
import * as nn from '@deepwell/nn';
import * as precision from '@deepwell/precision';
import * as probe from '@deepwell/probe';
import * as trainer from '@deepwell/trainer';
import { junk, show } from '../lib.mjs';

const PACKAGES = { core, probe, 'kernels-native': native, ir, nn, precision, 'attention-sparsek': attention, trainer, cli };
const isClass = (f) => /^class[\s{]/.test(Function.prototype.toString.call(f));

export function cases(rng) {
  const out = [];
  for (const [pkg, mod] of Object.entries(PACKAGES)) {
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value !== 'function') continue;
      const entry = `${pkg}.${name}`;
      const calls = isClass(value) ? 3 : 6;
      for (let i = 0; i < calls; i++) {
        const args = Array.from({ length: i % 4 }, () => junk(rng));
        const label = args.map(show).join(', ');
        if (isClass(value)) out.push({ name: `${entry}: new (${label})`, entry, expect: 'either', run: () => new value(...args) });
        else out.push({ name: `${entry}(${label})`, entry, expect: 'either', run: () => value(...args) });
      }
      if (isClass(value)) {
        for (const key of Object.getOwnPropertyNames(value)) {
          if (['length', 'name', 'prototype'].includes(key) || typeof value[key] !== 'function') continue;
          for (let i = 0; i < 3; i++) {
            const args = Array.from({ length: i + 1 }, () => junk(rng));
            out.push({ name: `${entry}.${key}(${args.map(show).join(', ')})`, entry: `${entry}.${key}`, expect: 'either', run: () => value[key](...args) });
          }
        }
      }
    }
  }
  return out;
}
