// Ops of the 'tensor' family; each op in its own file, re-exported here.
export {};
