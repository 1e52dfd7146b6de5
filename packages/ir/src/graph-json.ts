/**
 * The check of a deepwell.ir document before Graph.fromJSON builds anything from it: every field
 * of every value, node and table, with errors naming the path in the document ("nodes[3].inputs[1]").
 * After it, the graph's own verify() checks types and order against the ops' rules. A document
 * that passes both can be compiled, interpreted and planned without meeting a missing or
 * wrong-kind value later.
 */
import { DTYPE_NAMES, DeepwellError, checkInteger, checkOneOf, checkShape, describe, invalid } from '@deepwell/core';
import { checkInitSpec } from './init.js';
import { getOp } from './op.js';

const KINDS = ['input', 'param', 'state', 'node'] as const;
const PHASE_NAMES = ['forward', 'backward', 'optimizer'] as const;
const TABLES = { inputs: 'input', params: 'param', state: 'state' } as const;

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** How errors name a place in the document: "graph document nodes[3].inputs[1]". */
function at(path: string): string {
  return `graph document ${path}`;
}

function object(v: unknown, path: string): Obj {
  if (!isObject(v)) invalid('an object', at(path), v);
  return v;
}

/** An array of value ids, each in [0, count). */
function ids(v: unknown, path: string, count: number): number[] {
  if (!Array.isArray(v)) invalid('an array of value ids', at(path), v);
  v.forEach((id, j) => checkInteger(id, at(`${path}[${j}]`), 0, Math.max(0, count - 1)));
  if (count === 0 && v.length) invalid('no value ids (the document has no values)', at(path), v);
  return v as number[];
}

function isAttrValue(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return true;
  return Array.isArray(v) && v.every((x) => typeof x === 'number');
}

/** Throws a DeepwellError naming the first thing wrong with `json` as a deepwell.ir document (version 1 or 2). */
export function checkGraphJSON(json: unknown): void {
  const j = json as Obj | null;
  if (!isObject(j) || j.format !== 'deepwell.ir' || (j.version !== 1 && j.version !== 2)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a deepwell.ir version 1 or 2 document for Graph.fromJSON but received ${isObject(j) ? `format ${describe(j.format)}, version ${describe(j.version)}` : describe(j)}`);
  }
  if (!Array.isArray(j.values)) invalid('an array', at('values'), j.values);
  if (!Array.isArray(j.nodes)) invalid('an array', at('nodes'), j.nodes);
  const values = j.values as unknown[];
  const count = values.length;
  const kinds: string[] = [];
  const names: (string | undefined)[] = [];
  const producers: (number | undefined)[] = [];
  values.forEach((raw, i) => {
    const p = `values[${i}]`;
    const v = object(raw, p);
    if (v.id !== i) invalid(`the id ${i} (its position)`, at(`${p}.id`), v.id);
    const type = object(v.type, `${p}.type`);
    checkShape(type.shape, at(`${p}.type.shape`));
    if (typeof type.dtype !== 'string' || !(DTYPE_NAMES as readonly string[]).includes(type.dtype)) {
      invalid(`a dtype name (${DTYPE_NAMES.join(', ')})`, at(`${p}.type.dtype`), type.dtype, 'INVALID_DTYPE');
    }
    const kind = checkOneOf(v.kind, KINDS, at(`${p}.kind`));
    if (v.name !== undefined && (typeof v.name !== 'string' || v.name === '')) invalid('a non-empty string', at(`${p}.name`), v.name);
    if (kind !== 'node' && v.name === undefined) invalid(`a name (every ${kind} has one)`, at(`${p}.name`), v.name);
    if (kind === 'node') checkInteger(v.producer, at(`${p}.producer`));
    else if (v.producer !== undefined) invalid(`no producer (value ${i} is ${kind === 'input' ? 'an' : 'a'} ${kind})`, at(`${p}.producer`), v.producer);
    kinds.push(kind);
    names.push(v.name as string | undefined);
    producers.push(v.producer as number | undefined);
  });

  const nodeIds = new Set<number>();
  (j.nodes as unknown[]).forEach((raw, k) => {
    const p = `nodes[${k}]`;
    const n = object(raw, p);
    const id = checkInteger(n.id, at(`${p}.id`));
    if (nodeIds.has(id)) invalid('a node id used once', at(`${p}.id`), id);
    nodeIds.add(id);
    if (typeof n.op !== 'string') invalid('an op name', at(`${p}.op`), n.op);
    try {
      getOp(n.op);
    } catch (e) {
      throw new DeepwellError('INVALID_ARGUMENT', `${at(`${p}.op`)}: ${(e as Error).message}`, { cause: e });
    }
    ids(n.inputs, `${p}.inputs`, count);
    ids(n.outputs, `${p}.outputs`, count).forEach((o, m) => {
      if (kinds[o] !== 'node' || producers[o] !== id) invalid(`a value node ${id} produces (kind 'node', producer ${id})`, at(`${p}.outputs[${m}]`), o);
    });
    const attrs = object(n.attrs, `${p}.attrs`);
    for (const [key, value] of Object.entries(attrs)) {
      if (!isAttrValue(value)) invalid('a number, string, boolean or array of numbers', at(`${p}.attrs.${key}`), value);
    }
    if (typeof n.scope !== 'string') invalid('a string', at(`${p}.scope`), n.scope);
    if (j.version === 2 && !(PHASE_NAMES as readonly unknown[]).includes(n.phase)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${PHASE_NAMES.join(', ')} for the phase of node #${id} but received ${describe(n.phase)}`);
    }
    if (n.fusionGroup !== undefined) checkInteger(n.fusionGroup, at(`${p}.fusionGroup`));
  });

  const tables: Record<string, Obj> = {};
  for (const t of ['inputs', 'params', 'state', 'outputs', 'updates', 'init'] as const) tables[t] = object(j[t], t);
  tables.gradients = j.gradients === undefined ? {} : object(j.gradients, 'gradients');
  const entry = (table: string, name: string) => checkInteger(tables[table]![name], at(`${table}.${name}`), 0, Math.max(0, count - 1));
  const owner = new Map<string, string>();
  for (const [table, kind] of Object.entries(TABLES)) {
    for (const name of Object.keys(tables[table]!)) {
      const id = entry(table, name);
      if (kinds[id] !== kind || names[id] !== name) {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected ${kind === 'input' ? 'an' : 'a'} ${kind} named '${name}' for ${at(`${table}.${name}`)} but received value ${id}, ${kinds[id] === 'input' ? 'an' : 'a'} ${kinds[id]}${names[id] !== undefined ? ` named '${names[id]}'` : ''}`);
      }
      if (owner.has(name)) invalid(`a name used by one table (it is in ${owner.get(name)} too)`, at(`${table}.${name}`), name);
      owner.set(name, table);
    }
  }
  values.forEach((_, i) => {
    const kind = kinds[i]!;
    if (kind === 'node') return;
    const table = kind === 'input' ? 'inputs' : kind === 'param' ? 'params' : 'state';
    if (tables[table]![names[i]!] !== i) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected ${i} (values[${i}] is the ${kind} '${names[i]}') for ${at(`${table}.${names[i]}`)} but received ${describe(tables[table]![names[i]!])}`);
    }
  });
  for (const name of Object.keys(tables.outputs!)) entry('outputs', name);
  for (const name of Object.keys(tables.updates!)) {
    entry('updates', name);
    const target = owner.get(name);
    if (target !== 'params' && target !== 'state') invalid('the name of a parameter or state value', at(`updates.${name}`), name);
  }
  for (const name of Object.keys(tables.gradients!)) {
    entry('gradients', name);
    if (owner.get(name) !== 'params') invalid('the name of a parameter', at(`gradients.${name}`), name);
  }
  for (const [name, spec] of Object.entries(tables.init!)) {
    const target = owner.get(name);
    if (target !== 'params' && target !== 'state') invalid('the name of a parameter or state value', at(`init.${name}`), name);
    checkInitSpec(spec, at(`init.${name}`));
  }
}
