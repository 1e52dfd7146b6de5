// Ops of the 'collective' family (data parallelism across ranks); each op in its own file, re-exported here.
export * from './all_reduce.js';
export * from './reduce_scatter.js';
export * from './all_gather.js';
export * from './cpu_group.js';
export * from './cpu_shared.js';
