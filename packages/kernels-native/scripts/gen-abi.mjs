#!/usr/bin/env node
// Generates both sides of the native ABI from abi/table.mjs (see its header):
//   native/common/abi/<family>.gen.h        the checked C++ readers (one header per family) and
//                                           codes.gen.h, the codes
//   packages/kernels-native/src/abi.gen.ts  typed TS signatures, the binding, the codes, the table
//
//   node scripts/gen-abi.mjs           write the files
//   node scripts/gen-abi.mjs --check   exit 1 when a generated file differs from what the table gives
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(pkg, '..', '..');
export const CPP_DIR = join(repo, 'native', 'common', 'abi');
export const TS_OUT = join(pkg, 'src', 'abi.gen.ts');

/** One parsed argument: { name, kind, max?, len?, optional?, group? }. */
export function parseArg(spec, where) {
  if (typeof spec === 'object') return { name: spec.name, kind: 'group', len: spec.len, args: spec.args.map((a) => parseArg(a, `${where}.${spec.name}`)) };
  // A bare name is a u64, except the names of kinds that need no other name ('stream').
  const [name, kindRaw = name === 'stream' ? 'stream' : 'u64'] = spec.split(':');
  let kind = kindRaw;
  const out = { name };
  let m;
  if ((m = /^u64<=(\d+)$/.exec(kind))) return { ...out, kind: 'u64', max: Number(m[1]) };
  if ((m = /^(u64|tensor)\[(\w+)\]$/.exec(kind))) return { ...out, kind: `${m[1]}[]`, len: m[2] };
  if ((m = /^enum\.(\w+)$/.exec(kind))) return { ...out, kind: 'enum', enum: m[1] };
  if (kind === 'tensor?') return { ...out, kind: 'tensor', optional: true };
  const known = ['u64', 'i32', 'f64', 'flag', 'bool', 'stream', 'dtype', 'fdtype', 'tensor', 'workspace', 'view', 'string', 'string[]'];
  if (!known.includes(kind)) throw new Error(`${where}: unknown kind '${kind}' of argument '${name}'`);
  return { ...out, kind };
}

export async function loadTable() {
  const t = await import(pathToFileURL(join(pkg, 'abi', 'table.mjs')).href);
  const entries = Object.entries(t.entries).map(([name, e]) => {
    const args = e.args.map((a) => parseArg(a, name));
    const seen = new Set();
    for (const a of args) {
      if (seen.has(a.name)) throw new Error(`${name}: argument '${a.name}' twice`);
      if (a.len && !seen.has(a.len)) throw new Error(`${name}: '${a.name}' takes its length from '${a.len}', which must come before it`);
      if (a.kind === 'enum' && !t.codes[a.enum]) throw new Error(`${name}: no codes '${a.enum}'`);
      seen.add(a.name);
    }
    return { name, file: e.file, returns: e.returns ?? 'void', args };
  });
  return { codes: t.codes, flags: t.flags, entries };
}

/** Arguments whose value is only an array's or group's length: TS derives them from the array. */
const lengthArgs = (args) => new Set(args.filter((a) => a.len).map((a) => a.len));
/** Numbers a kind takes on the wire. */
const wire = (a) => (a.kind === 'tensor' ? 2 : a.kind === 'workspace' ? 3 : 1);
const fixedCount = (args) => (args.some((a) => a.len) ? null : args.reduce((n, a) => n + wire(a), 0));
const pascal = (s) => s[0].toUpperCase() + s.slice(1);
const cppIdent = (s) => s.replace(/[^A-Za-z0-9]/g, '_');

// ---- C++ ------------------------------------------------------------------------------------------
const CPP_TYPE = {
  u64: 'uint64_t', i32: 'int32_t', f64: 'double', flag: 'bool', bool: 'bool', stream: 'cudaStream_t', dtype: 'int', fdtype: 'int', enum: 'int',
  tensor: 'TensorArg', workspace: 'WorkspaceArg', view: 'HostView', string: 'std::string', 'string[]': 'std::vector<std::string>',
  'u64[]': 'std::vector<uint64_t>', 'tensor[]': 'std::vector<TensorArg>',
};

function cppRead(a, codes, fn, lhs, lenOf) {
  const n = JSON.stringify(a.name);
  switch (a.kind) {
    case 'u64': return `${lhs} = r.u64(${n}${a.max !== undefined ? `, ${a.max}.0` : ''});`;
    case 'i32': return `${lhs} = r.i32(${n});`;
    case 'f64': return `${lhs} = r.f64(${n});`;
    case 'flag': return `${lhs} = r.u64(${n}, 1.0) != 0;`;
    case 'bool': return `${lhs} = r.boolean(${n});`;
    case 'stream': return `${lhs} = r.stream(${n});`;
    case 'dtype': return `${lhs} = r.dtype(${n}, ${Object.keys(codes.dtype).length - 1}, "a dtype code (${Object.entries(codes.dtype).map(([k, v]) => `${v} ${k}`).join(', ')})");`;
    case 'fdtype': return `${lhs} = r.dtype(${n}, ${codes.dtype.f16}, "a float dtype code (0 f32, 1 bf16, 2 f16)");`;
    case 'enum': return `${lhs} = r.code(${n}, ${Object.keys(codes[a.enum]).length - 1}, "${/^[aeiou]/.test(a.enum) ? 'an' : 'a'} ${a.enum} code (${Object.entries(codes[a.enum]).map(([k, v]) => `${v} ${k}`).join(', ')})");`;
    case 'tensor': return `${lhs} = r.tensor(${n}, ${a.optional ? 'true' : 'false'});`;
    case 'workspace': return `${lhs} = r.workspace(${n});`;
    case 'view': return `${lhs} = r.view(${n});`;
    case 'string': return `${lhs} = r.string(${n});`;
    case 'string[]': return `${lhs} = r.strings(${n});`;
    case 'u64[]': return `${lhs} = r.u64s(${n}, ${lenOf});`;
    case 'tensor[]': return `${lhs} = r.tensors(${n}, ${lenOf});`;
    default: throw new Error(`${fn}: no C++ reader for ${a.kind}`);
  }
}

const HEADER = [
  '// GENERATED by packages/kernels-native/scripts/gen-abi.mjs from packages/kernels-native/abi/table.mjs.',
  '// Do not edit: change the table and run `node packages/kernels-native/scripts/gen-abi.mjs`.',
];

/** The family folder an entry point's file belongs to: runtime, gemm, tensor, nn, moe, quant, common. */
const familyOf = (file) => (file.startsWith('ops/') ? file.split('/')[1] : file.split('/')[0]);

function genCodes({ codes, flags }) {
  const L = [...HEADER, '//', '// The codes both sides of the ABI share (dtype, format, ...), as constants.', '#pragma once', '', 'namespace dw {', 'namespace abi {', ''];
  for (const [group, table] of Object.entries(codes)) {
    L.push(`namespace ${group} {`);
    for (const [k, v] of Object.entries(table)) L.push(`constexpr int ${cppIdent(k)} = ${v};`);
    L.push(`constexpr int kCount = ${Object.keys(table).length};`);
    L.push(`}  // namespace ${group}`);
  }
  for (const [group, table] of Object.entries(flags)) {
    L.push(`namespace ${group}_flags {`);
    for (const [k, v] of Object.entries(table)) L.push(`constexpr int ${cppIdent(k)} = ${v};`);
    L.push(`}  // namespace ${group}_flags`);
  }
  L.push('', '}  // namespace abi', '}  // namespace dw');
  return L.join('\n') + '\n';
}

function genFamily(family, { codes }, entries) {
  const L = [...HEADER];
  L.push('//');
  L.push(`// The entry points of native/${family === 'tensor' || family === 'nn' || family === 'moe' ? `ops/${family}` : family}: for each, a struct of its arguments and`);
  L.push('// read<Name>(info), which reads them through the one checked reader (common/abi_reader.h): the');
  L.push("// argument count, each argument's kind and range. A bad call fails there with a typed error");
  L.push('// (INVALID_ARGUMENT / INVALID_DTYPE) before any device work. Tensor ranges are checked when the');
  L.push('// entry point asks for a pointer with the size it will touch (TensorArg::ptr).');
  L.push('#pragma once');
  L.push('#include "common/abi_reader.h"');
  L.push('#include "common/abi/codes.gen.h"');
  L.push('');
  L.push('namespace dw {');
  L.push('namespace abi {');
  L.push('');
  for (const e of entries) {
    const S = `${pascal(e.name)}Args`;
    for (const g of e.args.filter((a) => a.kind === 'group')) {
      L.push(`struct ${S}_${pascal(g.name)} {`);
      for (const a of g.args) L.push(`  ${CPP_TYPE[a.kind]} ${a.name}{};`);
      L.push('};');
    }
    L.push(`// ${e.name}(${e.args.map((a) => a.name).join(', ')})  [native/${e.file}]`);
    L.push(`struct ${S} {`);
    for (const a of e.args) L.push(`  ${a.kind === 'group' ? `std::vector<${S}_${pascal(a.name)}>` : CPP_TYPE[a.kind]} ${a.name}{};`);
    L.push('};');
    L.push(`inline ${S} read${pascal(e.name)}(const Napi::CallbackInfo& info) {`);
    L.push(`  Reader r(info, ${JSON.stringify(e.name)}, ${fixedCount(e.args) ?? -1});`);
    L.push(`  ${S} a;`);
    for (const a of e.args) {
      if (a.kind === 'group') {
        L.push(`  r.expectAtLeast(a.${a.len} * ${a.args.reduce((n, x) => n + wire(x), 0)});`);
        L.push(`  a.${a.name}.resize(a.${a.len});`);
        L.push(`  for (auto& g : a.${a.name}) {`);
        for (const x of a.args) L.push(`    ${cppRead({ ...x, name: `${a.name}.${x.name}` }, codes, e.name, `g.${x.name}`)}`);
        L.push('  }');
      } else {
        L.push(`  ${cppRead(a, codes, e.name, `a.${a.name}`, a.len ? `a.${a.len}` : undefined)}`);
      }
    }
    L.push('  r.end();');
    L.push('  return a;');
    L.push('}');
    L.push('');
  }
  L.push('}  // namespace abi');
  L.push('}  // namespace dw');
  L.push('');
  L.push(`// The family's entry points as X(exported name, function) in table order, for the family's`);
  L.push('// registration (DW_DEF_ENTRY) and declarations (DW_DECLARE_ENTRY): the names are written here only.');
  const macro = `DW_ABI_${family.toUpperCase()}_ENTRIES`;
  const width = Math.max(...entries.map((e) => `  X("${e.name}", ${pascal(e.name)})`.length)) + 1;
  L.push(`#define ${macro}(X)`.padEnd(width) + ' \\');
  entries.forEach((e, i) => {
    const line = `  X("${e.name}", ${pascal(e.name)})`;
    L.push(i === entries.length - 1 ? line : `${line.padEnd(width)} \\`);
  });
  return L.join('\n') + '\n';
}

/** [path, text] of every generated C++ header. */
function genCpp(table) {
  const families = new Map();
  for (const e of table.entries) families.set(familyOf(e.file), [...(families.get(familyOf(e.file)) ?? []), e]);
  return [[join(CPP_DIR, 'codes.gen.h'), genCodes(table)], ...[...families].map(([f, es]) => [join(CPP_DIR, `${f}.gen.h`), genFamily(f, table, es)])];
}

// ---- TypeScript ------------------------------------------------------------------------------------
const TS_TYPE = {
  u64: 'number', i32: 'number', f64: 'number', flag: 'number', bool: 'boolean', stream: 'number', dtype: 'number', fdtype: 'number', enum: 'number',
  workspace: 'DevArg | null', view: 'ArrayBufferView | ArrayBuffer', string: 'string', 'string[]': 'readonly string[]', 'u64[]': 'readonly number[]', 'tensor[]': 'readonly DevArg[]',
};
const tsType = (a) => (a.kind === 'tensor' ? (a.optional ? 'DevArg | null' : 'DevArg') : TS_TYPE[a.kind]);

/** TS expressions that put argument `a` (a TS expression `v`) on the wire. */
function tsWire(a, v) {
  switch (a.kind) {
    case 'tensor': return a.optional ? [`${v}?.base ?? 0`, `${v}?.offset ?? 0`] : [`${v}.base`, `${v}.offset`];
    case 'workspace': return [`${v}?.base ?? 0`, `${v}?.offset ?? 0`, `${v}?.bytes ?? 0`];
    case 'u64[]': return [`...${v}`];
    case 'tensor[]': return [`...${v}.flatMap((t) => [t.base, t.offset])`];
    default: return [v];
  }
}

function genTs({ codes, flags, entries }) {
  const L = [];
  L.push('// GENERATED by scripts/gen-abi.mjs from abi/table.mjs. Do not edit: change the table and run');
  L.push('// `node packages/kernels-native/scripts/gen-abi.mjs` (a test checks this file is current).');
  L.push('/* eslint-disable */');
  L.push("import type { DevArg, GraphNodeKinds, NativeDeviceProperties, NativeLibraryResult, NativeMemoryStats, NativeStatus, NvmlStats } from './abi-types.js';");
  L.push('');
  const constName = (g) => g.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
  for (const [group, table] of Object.entries(codes)) {
    L.push(`/** The ${group} codes of the native ABI. */`);
    L.push(`export const ${constName(group)}_CODE = Object.freeze(${JSON.stringify(table)} as const);`);
  }
  for (const [group, table] of Object.entries(flags)) {
    L.push(`/** The ${group} flag bits of the native ABI. */`);
    L.push(`export const ${constName(group)}_FLAGS = Object.freeze(${JSON.stringify(table)} as const);`);
  }
  L.push('');
  L.push('/** An argument of an entry point, as the table declares it. */');
  L.push('export interface EntryArg {');
  L.push('  name: string;');
  L.push("  kind: 'u64' | 'i32' | 'f64' | 'flag' | 'bool' | 'stream' | 'dtype' | 'fdtype' | 'enum' | 'tensor' | 'workspace' | 'view' | 'string' | 'string[]' | 'u64[]' | 'tensor[]' | 'group';");
  L.push('  max?: number;');
  L.push('  len?: string;');
  L.push('  optional?: boolean;');
  L.push('  enum?: string;');
  L.push('  args?: readonly EntryArg[];');
  L.push('}');
  L.push('');
  L.push('/** Every entry point of the addon with its arguments (the table, as data: for tests and tools). */');
  L.push('export const ENTRY_POINTS: readonly { name: string; file: string; returns: string; args: readonly EntryArg[] }[] = [');
  for (const e of entries) L.push(`  ${JSON.stringify(e)},`);
  L.push('];');
  L.push('');
  L.push('/** The addon\'s entry points, typed. A tensor is a DevArg; lengths of arrays are taken from the arrays. */');
  L.push('export interface NativeEntries {');
  for (const e of entries) {
    const lens = lengthArgs(e.args);
    const params = e.args.filter((a) => !lens.has(a.name)).map((a) => {
      if (a.kind === 'group') return `${a.name}: readonly { ${a.args.map((x) => `${x.name}: ${tsType(x)}`).join('; ')} }[]`;
      return `${a.name}: ${tsType(a)}`;
    });
    L.push(`  /** native/${e.file} */`);
    L.push(`  ${e.name}(${params.join(', ')}): ${e.returns};`);
  }
  L.push('}');
  L.push('');
  L.push('type Raw = Record<string, (...args: any[]) => any>;');
  L.push('');
  L.push('/** The typed entry points over the raw addon: flattens tensors to (base, offset) on the wire. */');
  L.push('export function bindEntries(raw: Raw): NativeEntries {');
  L.push('  return {');
  for (const e of entries) {
    const lens = lengthArgs(e.args);
    const params = e.args.filter((a) => !lens.has(a.name)).map((a) => a.name);
    const lenSource = (name) => {
      const user = e.args.find((a) => a.len === name);
      return `${user.name}.length`;
    };
    const wireArgs = e.args.flatMap((a) => {
      if (lens.has(a.name)) return [lenSource(a.name)];
      if (a.kind === 'group') return [`...${a.name}.flatMap((g) => [${a.args.flatMap((x) => tsWire(x, `g.${x.name}`)).join(', ')}])`];
      return tsWire(a, a.name);
    });
    L.push(`    ${e.name}: (${params.join(', ')}) => raw.${e.name}!(${wireArgs.join(', ')}),`);
  }
  L.push('  };');
  L.push('}');
  return L.join('\n') + '\n';
}

async function main() {
  const table = await loadTable();
  const outs = [...genCpp(table), [TS_OUT, genTs(table)]];
  if (process.argv.includes('--check')) {
    const stale = outs.filter(([f, text]) => !existsSync(f) || readFileSync(f, 'utf8') !== text).map(([f]) => relative(repo, f));
    const extra = existsSync(CPP_DIR) ? readdirSync(CPP_DIR).filter((f) => f.endsWith('.gen.h') && !outs.some(([p]) => p === join(CPP_DIR, f))) : [];
    stale.push(...extra.map((f) => `${relative(repo, join(CPP_DIR, f))} (no longer generated)`));
    if (stale.length) {
      console.error(`[gen-abi] stale generated files: ${stale.join(', ')}; run node packages/kernels-native/scripts/gen-abi.mjs`);
      process.exit(1);
    }
    console.log('[gen-abi] generated files are current');
    return;
  }
  mkdirSync(CPP_DIR, { recursive: true });
  // A family that left the table leaves no header behind.
  for (const f of readdirSync(CPP_DIR)) if (f.endsWith('.gen.h') && !outs.some(([p]) => p === join(CPP_DIR, f))) rmSync(join(CPP_DIR, f));
  for (const [f, text] of outs) writeFileSync(f, text);
  console.log(`[gen-abi] wrote ${outs.map(([f]) => relative(repo, f)).join(', ')} (${table.entries.length} entry points)`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`[gen-abi] ${e.message}`);
    process.exit(1);
  });
}
