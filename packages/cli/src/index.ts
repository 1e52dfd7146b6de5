export { main } from './main.js';
export type { Io } from './commands.js';
export { loadRunConfig } from './config.js';
export type { RunConfig } from './config.js';
