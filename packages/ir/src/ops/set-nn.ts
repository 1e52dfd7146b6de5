// Ops of the 'nn' family; each op in its own file, re-exported here.
export {};
