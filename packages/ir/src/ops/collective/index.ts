// Ops of the 'collective' family (data parallelism across ranks); each op in its own file, re-exported here.
export * from './all_reduce.js';
