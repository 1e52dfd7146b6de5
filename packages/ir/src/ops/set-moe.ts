// Ops of the 'moe' family; each op in its own file, re-exported here.
export {};
