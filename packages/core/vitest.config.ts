import { defineConfig } from 'vitest/config';

// --expose-gc lets the backstop test force a collection.
export default defineConfig({ test: { include: ['test/**/*.test.ts'], execArgv: ['--expose-gc'] } });
