// Ops of the 'optim' family (the optimizer and gradient clipping); each op in its own file,
// re-exported here.
export * from './adamw.js';
export * from './adamw_multi.js';
export * from './clip_coef.js';
export * from './sum_squares.js';
