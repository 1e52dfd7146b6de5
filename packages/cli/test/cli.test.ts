// The deepwell command on the CPU, from a real text to a sample: Genesis 1:1–13 (King James Version,
// public domain) is prepared into shards, read back here by a reader of its own, a small GPT trains on
// them, deepwell sample writes text, and export/import round-trip the weights. Then bad input.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '@deepwell/trainer';
import { main } from '../src/index.js';

const text = readFileSync(new URL('./fixtures/genesis-1.txt', import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'deepwell-cli-'));
const textPath = join(dir, 'genesis.txt');
writeFileSync(textPath, text);

/** Run `deepwell …` in-process; its printed lines and exit code. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** llm.c shards from the format's definition: 256 int32 (magic 20240520, version 1, count), then uint16 tokens. */
function readShards(d: string, split: string): number[] {
  const files = readdirSync(d).filter((f) => f.startsWith(`${split}_`)).sort();
  return files.flatMap((f) => {
    const b = readFileSync(join(d, f));
    expect([b.readInt32LE(0), b.readInt32LE(4)]).toEqual([20240520, 1]);
    const n = b.readInt32LE(8);
    expect(b.length).toBe(1024 + 2 * n);
    return Array.from({ length: n }, (_, i) => b.readUInt16LE(1024 + 2 * i));
  });
}

describe('deepwell, from text to a sample', () => {
  const data = join(dir, 'data-char');
  const ckptDir = join(dir, 'run');

  it('prepares shards a reader of their own decodes back to the text', async () => {
    const r = await run('prepare', textPath, '--tokenizer', 'char', '--out', data, '--val-fraction', '0.1');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/char tokenizer \(\d+ tokens\)/);
    const tok = JSON.parse(readFileSync(join(data, 'tokenizer.json'), 'utf8'));
    const ids = [...readShards(data, 'train'), ...readShards(data, 'val')];
    expect(ids.every((t) => t < tok.vocabSize)).toBe(true);
    expect(ids.map((t) => tok.chars[t]).join('')).toBe(text);
    expect(readShards(data, 'val').length).toBeGreaterThan(0);
    // GPT-2's BPE too: the ids GPT-2 gives the text's first words, and a whole decode.
    const bpe = join(dir, 'data-gpt2');
    expect((await run('prepare', textPath, '--tokenizer', 'gpt2', '--out', bpe)).code).toBe(0);
    const gptIds = [...readShards(bpe, 'train'), ...readShards(bpe, 'val')];
    expect(gptIds.slice(0, 3)).toEqual([50256, 818, 262]); // <|endoftext|>, "In", " the"
    expect(gptIds.every((t) => t < 50257)).toBe(true);
  });

  it('trains, samples, exports and imports', async () => {
    const tok = JSON.parse(readFileSync(join(data, 'tokenizer.json'), 'utf8'));
    const config = join(dir, 'run.json');
    writeFileSync(config, JSON.stringify({
      model: { vocabSize: 64, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32 },
      data: 'data-char', batchSize: 8, seqLen: 32, steps: 80, optimizer: { lr: 1e-2 }, evalEvery: 40, evalBatches: 2,
      seed: 3, device: 'cpu', checkpoint: { dir: 'run', every: 40 }, log: { jsonl: 'run/log.jsonl', every: 20 }, sample: { prompt: 'And', maxTokens: 8 },
    }));
    expect(tok.vocabSize).toBeLessThanOrEqual(64);
    const t = await run('train', config, '--steps', '80');
    expect(t.code, t.err).toBe(0);
    const log = readFileSync(join(ckptDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const losses = log.filter((l) => l.event === 'step').map((l) => l.loss);
    expect(losses.at(-1)).toBeLessThan(losses[0] - 1); // it learns the text's characters
    // Samples at the evaluations (steps 40 and 80): the prompt and 8 characters of the text's alphabet.
    const samples = log.filter((l) => l.event === 'sample');
    expect(samples.map((l) => l.step)).toEqual([40, 80]);
    for (const l of samples) expect(Array.from(l.text as string).length === 11 && (l.text as string).startsWith('And')).toBe(true);
    const ckpt = join(ckptDir, 'step-00000080.safetensors');
    expect(existsSync(ckpt)).toBe(true);
    // A second run into the same folder is refused unless it resumes (the Trainer's rule, asked before the model is built).
    const again = await run('train', config);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/holds checkpoints \(steps 40, 80\); resume that run \(resume: true\)/);
    // Resuming with more steps would reshape the learning-rate schedule: refused, naming what differs.
    const more = await run('train', config, '--resume', '--steps', '100');
    expect(more.code).toBe(1);
    expect(more.err).toMatch(/differs: warmup 8 → 10, total 80 → 100 \(steps\); at step 81 the lr would be .*extend: true/);
    expect(readdirSync(ckptDir).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(['step-00000040.safetensors', 'step-00000080.safetensors']);
    // --extend keeps the 80-step schedule: steps 81-100 at its minLr (1e-2 / 10).
    const extended = await run('train', config, '--resume', '--extend', '--steps', '100');
    expect(extended.code, extended.err).toBe(0);
    expect(extended.out).toMatch(/trained 100 steps/);
    const lrs = readFileSync(join(ckptDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.event === 'step' && l.step > 80).map((l) => l.lr);
    expect(lrs.length).toBe(20);
    expect(lrs.every((lr: number) => Math.abs(lr - 1e-3) < 1e-12)).toBe(true);
    // --resume on a folder with no checkpoints is an error naming it; "resume": "auto" starts a new run there, then resumes it.
    const empty = join(dir, 'run-auto');
    const none = await run('train', config, '--resume', '--checkpoint.dir', empty, '--log.jsonl', join(empty, 'log.jsonl'));
    expect([none.code, none.err]).toEqual([1, expect.stringMatching(/Expected checkpoints to resume from in .*run-auto but it does not exist; resume: 'auto'/)]);
    const autoConfig = join(dir, 'run-auto.json');
    writeFileSync(autoConfig, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), resume: 'auto', steps: 2, checkpoint: { dir: 'run-auto', every: 40 }, log: { jsonl: 'run-auto/log.jsonl' } }));
    for (let i = 0; i < 2; i++) {
      const auto = await run('train', autoConfig);
      expect(auto.code, auto.err).toBe(0);
      expect(auto.out).toMatch(/trained 2 steps/);
    }
    const autoLog = readFileSync(join(empty, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(autoLog.filter((l) => l.event === 'step').map((l) => l.step)).toEqual([1, 2]);
    expect(autoLog.filter((l) => l.event === 'resume').map((l) => l.step)).toEqual([2]);

    const s = await run('sample', ckpt, '--prompt', 'And God', '--max-tokens', '40', '--seed', '1');
    expect(s.code, s.err).toBe(0);
    expect(s.out.startsWith('And God')).toBe(true);
    expect(Array.from(s.out).length).toBe(7 + 40);
    expect(Array.from(s.out).every((c) => tok.chars.includes(c))).toBe(true);
    expect((await run('sample', ckpt, '--prompt', 'And God', '--max-tokens', '40', '--seed', '1')).out).toBe(s.out);
    // Greedy over the key/value cache and without it: the same text.
    const greedy = await run('sample', ckpt, '--prompt', 'And God', '--max-tokens', '30', '--temperature', '0');
    expect(greedy.code, greedy.err).toBe(0);
    expect((await run('sample', ckpt, '--prompt', 'And God', '--max-tokens', '30', '--temperature', '0', '--no-cache')).out).toBe(greedy.out);
    expect((await run('sample', ckpt, '--precision', 'fp8')).err).toMatch(/f32 or bf16 for --precision but received 'fp8'/);

    const hf = join(dir, 'hf');
    const e = await run('export', '--hf', ckpt, hf, '--vocab-size', '64');
    expect(e.code, e.err).toBe(0);
    expect(readSafetensors(join(hf, 'model.safetensors')).tensors.has('transformer.h.1.mlp.c_proj.weight')).toBe(true);
    const back = join(dir, 'imported.safetensors');
    const i = await run('import', '--hf', hf, back);
    expect(i.code, i.err).toBe(0);
    const a = readSafetensors(ckpt).tensors;
    const b = readSafetensors(back).tensors;
    for (const [name, v] of b) expect(Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength).equals(Buffer.from(a.get(name)!.data.buffer, a.get(name)!.data.byteOffset, a.get(name)!.data.byteLength)), name).toBe(true);
    // The import holds the model's weights: the checkpoint's less the optimizer state and the loss history.
    expect(b.size).toBe(new Set([...a.keys()].filter((k) => !k.startsWith('adamw.') && !k.startsWith('#loss.'))).size);

    const d = await run('dryrun', config, '--batchSize', '4');
    expect(d.code, d.err).toBe(0);
    expect(d.out).toMatch(/batch 4 × 32 on cpu/);
    expect(d.out).toMatch(/largest batch that fits/);
  }, 120_000);

  it('gives errors naming the file or option', async () => {
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '');
    let r = await run('prepare', empty, '--tokenizer', 'char', '--out', join(dir, 'x'));
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/deepwell prepare: Expected text in .*empty.txt but the file is empty/)]);
    r = await run('prepare', textPath, '--tokenizer', 'gpt5', '--out', join(dir, 'y'));
    expect(r.err).toMatch(/Expected one of 'gpt2', 'char' for prepare tokenizer but received "gpt5"/);
    r = await run('prepare', textPath, '--tokenizr', 'char');
    expect([r.code, r.err]).toEqual([2, expect.stringMatching(/unknown option --tokenizr \(did you mean --tokenizer\?\)/)]);
    const ckpt = join(dir, 'run', 'step-00000080.safetensors');
    r = await run('sample', ckpt, '--prompt', 'a'.repeat(33));
    expect(r.err).toMatch(/prompt of at most the model's context \(blockSize 32 tokens\) but received 33/);
    // A checkpoint whose shapes do not match the model config it records.
    const f = readSafetensors(ckpt);
    const cfg = JSON.parse(f.metadata.config!);
    cfg.model.nEmbd = 16;
    const bad = join(dir, 'bad.safetensors');
    writeSafetensors(bad, f.tensors, { ...f.metadata, config: JSON.stringify(cfg) });
    r = await run('sample', bad);
    expect(r.err).toMatch(/bad.safetensors: 'wte.weight' has 2048 values but its model config needs \[64, 16\]/);
    const config = join(dir, 'run.json');
    r = await run('train', config, '--learningRate', '1e-3');
    expect(r.err).toMatch(/run.json: unknown key 'learningRate'/);
    r = await run('train', config, '--optimizer.learningRate', '1e-3');
    expect(r.err).toMatch(/unknown key 'optimizer.learningRate' \(expected one of lr, beta1/);
    // Nested keys are typed too: a missing checkpoint.dir, a number where a count goes, and a
    // directory named like a number stays a string.
    writeFileSync(join(dir, 'nodir.json'), JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), checkpoint: { every: 1 } }));
    r = await run('train', join(dir, 'nodir.json'));
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/nodir.json: missing 'checkpoint.dir'/)]);
    r = await run('train', config, '--sample.maxTokens', 'many');
    expect(r.err).toMatch(/expected a number for 'sample.maxTokens' but received "many"/);
    r = await run('dryrun', config, '--checkpoint.dir', '2024', '--batchSize', '2');
    expect(r.code, r.err).toBe(0);
    r = await run('export', ckpt, join(dir, 'z'));
    expect(r.err).toMatch(/expected --hf/);
    expect((await run('frob')).code).toBe(2);
  }, 60_000);

  it('runs as the installed bin', () => {
    const bin = fileURLToPath(new URL('../bin/deepwell.mjs', import.meta.url));
    expect(execFileSync(process.execPath, [bin, 'sample', '--help'], { encoding: 'utf8' })).toMatch(/^Usage: deepwell sample <checkpoint>/);
  });
});
