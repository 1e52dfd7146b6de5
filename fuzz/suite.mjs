// What the parent and the workers share: finding the case modules and building their lists.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeRng } from './lib.mjs';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_TIMEOUT_MS = 10_000;

/** The case modules' names (cases/<name>.mjs), sorted; `only` filters them. */
export function moduleNames(only) {
  const all = readdirSync(join(HERE, 'cases'))
    .filter((f) => f.endsWith('.mjs'))
    .map((f) => f.slice(0, -4))
    .sort();
  if (!only?.length) return all;
  const unknown = only.filter((o) => !all.includes(o));
  if (unknown.length) throw new Error(`fuzz: no case module ${unknown.join(', ')} (have ${all.join(', ')})`);
  return all.filter((n) => only.includes(n));
}

/** A module's own seed from the run's seed, so `--only` reproduces the same cases. */
export function moduleSeed(seed, name) {
  let h = 2166136261 ^ seed;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** Imports the modules and builds their case lists: { name → Case[] }. */
export async function buildSuite(names, seed, ctx) {
  const suite = {};
  for (const name of names) {
    const mod = await import(pathToFileURL(join(HERE, 'cases', `${name}.mjs`)).href);
    if (typeof mod.cases !== 'function') throw new Error(`fuzz: cases/${name}.mjs exports no cases(rng, ctx)`);
    const list = mod.cases(makeRng(moduleSeed(seed, name)), ctx);
    const seen = new Set();
    for (const [i, c] of list.entries()) {
      if (typeof c?.run !== 'function' || !['error', 'ok', 'either'].includes(c.expect)) throw new Error(`fuzz: cases/${name}.mjs case ${i} (${c?.name}) has no run() or a bad expect`);
      if (seen.has(c.name)) c.name = `${c.name} #${i}`;
      seen.add(c.name);
    }
    suite[name] = list;
  }
  return suite;
}
