// A fuzz worker: a child process that rebuilds the case lists and runs the cases the parent sends,
// one at a time, answering each with its outcome. A hang is the parent's to see (it kills this
// process); so is a crash (this process dies mid-case).
import { mkdirSync } from 'node:fs';
import { DeepwellError } from '@deepwell/core';
import { buildSuite } from './suite.mjs';

const { names, seed, dir } = JSON.parse(process.env.DEEPWELL_FUZZ_WORKER);
mkdirSync(dir, { recursive: true });
process.chdir(dir); // a junk string taken as a path lands in the scratch folder, never the repository

let current = null;
const report = (msg) => process.send(msg);
// A library that throws from a timer or leaves a rejected promise behind has crashed the process as
// far as a user is concerned: say so for the case in flight, then go on.
process.on('uncaughtException', (e) => report({ id: current, outcome: 'crash', detail: `uncaught exception: ${String(e?.stack ?? e).slice(0, 400)}` }));
process.on('unhandledRejection', (e) => report({ id: current, outcome: 'crash', detail: `unhandled rejection: ${String(e?.stack ?? e).slice(0, 400)}` }));
// process.exit from library code would end the worker: a crash, and reported as one.
const realExit = process.exit.bind(process);
process.exit = (code) => {
  report({ id: current, outcome: 'crash', detail: `process.exit(${code}) called` });
  realExit(70);
};

const suite = await buildSuite(names, seed, { dir });

function classify(c, threw, value) {
  if (threw) {
    if (DeepwellError.is(value)) return c.expect === 'ok' ? { outcome: 'refused', detail: `${value.code}: ${value.message}` } : { outcome: 'typed', code: value.code };
    const what = value instanceof Error ? `${value.name}: ${value.message}` : `a thrown ${typeof value}: ${String(value)}`;
    return { outcome: 'untyped', detail: `${what}\n${String(value?.stack ?? '').split('\n').slice(1, 5).join('\n')}` };
  }
  if (c.expect === 'error') return { outcome: 'silent', detail: 'invalid input accepted' };
  if (c.check) {
    let problem;
    try {
      problem = c.check(value);
    } catch (e) {
      problem = `check threw ${String(e)}`;
    }
    if (problem) return { outcome: 'silent', detail: `accepted, but ${problem}` };
  }
  return { outcome: 'accepted' };
}

process.on('message', async ({ module, index, id }) => {
  current = id;
  const c = suite[module][index];
  let threw = false;
  let value;
  const t0 = performance.now();
  try {
    value = c.run();
    if (value && typeof value.then === 'function') value = await value;
  } catch (e) {
    threw = true;
    value = e;
  }
  report({ id, ms: performance.now() - t0, ...classify(c, threw, value) });
  current = null;
});
report({ ready: true });
