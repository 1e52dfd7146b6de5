/**
 * Checkpoints: every parameter and optimizer-state value of a compiled step (f32, by the names the
 * graph gives them: `blocks.0.attn.qkv.weight`, `adamw.m.blocks.0.attn.qkv.weight`, ...) in one
 * safetensors file, with the trainer's position as string metadata: format and version, step, the
 * data loader's position, the seed and the config. Written atomically (safetensors.ts), so a
 * crash mid-write leaves the previous checkpoint intact. Loading checks every tensor's presence,
 * dtype and shape against the executable before it writes any of them.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError } from '@deepwell/core';
import type { Executable } from '@deepwell/ir';
import { numel } from '@deepwell/ir';
import { asFloat32, readSafetensors, writeSafetensors, type SafeTensor } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'deepwell-checkpoint';
export const CHECKPOINT_VERSION = '1';

export interface CheckpointMeta {
  step: number;
  loader: unknown;
  seed: number;
  config: unknown;
  /** Anything else the trainer keeps (JSON). */
  extra?: unknown;
}

/** Every persistent value of the executable: parameters, then optimizer state, by name. */
function persistentNames(exe: Executable): string[] {
  return [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)];
}

export function saveCheckpoint(path: string, exe: Executable, meta: CheckpointMeta): void {
  const tensors = new Map<string, SafeTensor>();
  for (const name of persistentNames(exe)) {
    const id = exe.graph.params[name] ?? exe.graph.state[name]!;
    tensors.set(name, { dtype: 'F32', shape: [...exe.graph.values[id]!.type.shape], data: exe.get(name) });
  }
  writeSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: String(meta.step),
    loader: JSON.stringify(meta.loader),
    seed: String(meta.seed),
    config: JSON.stringify(meta.config),
    extra: JSON.stringify(meta.extra ?? null),
  });
}

export function loadCheckpoint(path: string, exe: Executable): CheckpointMeta {
  const file = readSafetensors(path);
  const md = file.metadata;
  if (md.format !== CHECKPOINT_FORMAT) {
    throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a Deepwell checkpoint (metadata format ${JSON.stringify(md.format ?? null)}, expected '${CHECKPOINT_FORMAT}')`);
  }
  if (md.version !== CHECKPOINT_VERSION) throw new DeepwellError('INVALID_ARGUMENT', `${path} is checkpoint version ${md.version}; this Deepwell reads version ${CHECKPOINT_VERSION}`);
  const names = persistentNames(exe);
  const missing = names.filter((n) => !file.tensors.has(n));
  const extra = [...file.tensors.keys()].filter((n) => !names.includes(n));
  if (missing.length || extra.length) {
    const list = (xs: string[]) => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? `, … (${xs.length} in all)` : ''}`;
    throw new DeepwellError(
      'SHAPE_MISMATCH',
      `Checkpoint ${path} does not match the model:${missing.length ? ` missing ${list(missing)};` : ''}${extra.length ? ` not in the model ${list(extra)};` : ''} nothing was loaded`,
    );
  }
  const values = names.map((name) => {
    const t = file.tensors.get(name)!;
    const id = exe.graph.params[name] ?? exe.graph.state[name]!;
    const shape = exe.graph.values[id]!.type.shape;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || numel(t.shape) !== numel(shape)) {
      throw new DeepwellError('SHAPE_MISMATCH', `Checkpoint tensor '${name}' is ${t.dtype}[${t.shape.join(', ')}] but the model's is f32[${shape.join(', ')}]; nothing was loaded`);
    }
    return [name, asFloat32(name, t)] as const;
  });
  for (const [name, data] of values) exe.set(name, data);
  const parse = (k: string) => {
    try {
      return JSON.parse(md[k] ?? 'null');
    } catch {
      throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has unreadable metadata '${k}'`);
    }
  };
  const step = Number(md.step);
  if (!Number.isInteger(step) || step < 0) throw new DeepwellError('INVALID_ARGUMENT', `Checkpoint ${path} has an invalid step ${JSON.stringify(md.step)}`);
  return { step, loader: parse('loader'), seed: Number(md.seed), config: parse('config'), extra: parse('extra') };
}

/** Checkpoint files of a directory: `step-00000100.safetensors`, oldest first. */
export function checkpointsIn(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^step-(\d+)\.safetensors$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

export function checkpointPath(dir: string, step: number): string {
  mkdirSync(dir, { recursive: true });
  return join(dir, `step-${String(step).padStart(8, '0')}.safetensors`);
}

/**
 * Keep the newest `keep` checkpoints of a directory, and remove temporary files a killed writer
 * left behind (never read: checkpointsIn lists complete, renamed files only).
 */
export function pruneCheckpoints(dir: string, keep: number): void {
  const all = checkpointsIn(dir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.path, { force: true });
  const mine = `.tmp-${process.pid}`;
  for (const f of readdirSync(dir)) if (/^\.step-\d+\.safetensors\.tmp-\d+$/.test(f) && !f.endsWith(mine)) rmSync(join(dir, f), { force: true });
}
