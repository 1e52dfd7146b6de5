// The one tsup set-up every package builds with: ESM + CJS + types for Node 20, from src/index.ts.
import { defineConfig, type Options } from 'tsup';

export function library(extra: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...extra,
  });
}
