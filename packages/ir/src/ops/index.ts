// Every op of the standard set, one folder per family (ops/<family>/<op>.ts, each family's
// index.ts re-exporting its files). Importing this module defines them all (and registers their CPU
// references in core's kernel registry).
export * from './basic/index.js';
export * from './tensor/index.js';
export * from './nn/index.js';
export * from './moe/index.js';
export * from './optim/index.js';
export * from './collective/index.js';
export { AMAX_ATTR, storedAmax, withAmax, writeAmax } from './amax.js';
