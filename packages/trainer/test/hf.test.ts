// Hugging Face GPT-2 export and import, checked against a fixture written from the published layout.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capture, compile } from '@deepwell/ir';
import { GPT, type GPTConfig } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { exportHuggingFace, importHuggingFace, readSafetensors, writeSafetensors } from '../src/index.js';
import { CHECKSUM_KEY } from '../src/safetensors.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-hf-'));
let n = 0;
const fresh = () => join(dir, `hf${n++}`);
const fixture = JSON.parse(readFileSync(new URL('./fixtures/hf-gpt2-tiny.json', import.meta.url), 'utf8'));
const tiny: GPTConfig = { vocabSize: 16, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8 };

/** A GPT's parameters as its executable initialises them (random per run: the seed is). */
function paramsOf(config: GPTConfig): Map<string, Float32Array> {
  const exe = compile(capture(new GPT(config), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: 1 + Math.floor(Math.random() * 1e6) });
  const p = new Map(exe.parameterNames().map((name) => [name, exe.get(name).slice()] as const));
  exe.dispose();
  // Nonzero biases and norms too, so a misplaced one shows.
  for (const [name, v] of p) if (/bias|ln/.test(name)) for (let i = 0; i < v.length; i++) v[i] = Math.random() - 0.5;
  return p;
}

/** The safetensors header, read from the format's definition (8-byte length, JSON). */
function header(path: string): Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>> {
  const b = readFileSync(path);
  const len = Number(b.readBigUInt64LE(0));
  return JSON.parse(b.subarray(8, 8 + len).toString('utf8'));
}

/** Tensor `name`'s f32 values from the file. */
function values(path: string, name: string): Float32Array {
  const b = readFileSync(path);
  const len = Number(b.readBigUInt64LE(0));
  const t = header(path)[name] as { data_offsets: [number, number] };
  const bytes = b.subarray(8 + len + t.data_offsets[0], 8 + len + t.data_offsets[1]);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

describe('Hugging Face GPT-2', () => {
  it('exports the published layout: names, shapes, metadata, config; Conv1D weights transposed', () => {
    const params = paramsOf(tiny);
    const out = fresh();
    exportHuggingFace(out, params, tiny, { vocabSize: 11 });
    const path = join(out, 'model.safetensors');
    const h = header(path);
    const { __metadata__: metadata, ...tensors } = h;
    // The published layout's metadata, and the checksums every Deepwell file carries (one per tensor and one for the metadata).
    const { [CHECKSUM_KEY]: sums, 'deepwell.gpt2': shape, ...published } = metadata as Record<string, string>;
    expect(published).toEqual(fixture.metadata);
    expect(JSON.parse(shape!)).toEqual({ vocab_size: 11, n_positions: 6, n_embd: 8, n_layer: 2, n_head: 2, n_inner: null, tie_word_embeddings: true });
    expect(Object.keys(JSON.parse(sums!)).sort()).toEqual(['__metadata__', ...Object.keys(tensors)].sort());
    expect(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, (t as { shape: number[] }).shape]))).toEqual(fixture.tensors);
    expect(Object.values(tensors).every((t) => (t as { dtype: string }).dtype === 'F32')).toBe(true);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject(fixture.config);
    // c_attn.weight[i][j] = qkv.weight[j][i]; the embedding keeps its first 11 rows.
    const qkv = params.get('blocks.1.attn.qkv.weight')!;
    const cAttn = values(path, 'transformer.h.1.attn.c_attn.weight');
    for (let k = 0; k < 20; k++) {
      const [i, j] = [Math.floor(Math.random() * 8), Math.floor(Math.random() * 24)];
      expect(cAttn[i * 24 + j]).toBe(qkv[j * 8 + i]);
    }
    expect(Array.from(values(path, 'transformer.wte.weight'))).toEqual(Array.from(params.get('wte.weight')!.subarray(0, 88)));
    expect(Array.from(values(path, 'transformer.h.0.mlp.c_fc.bias'))).toEqual(Array.from(params.get('blocks.0.mlp.fc.bias')!));
  });

  it('round-trips exactly, padding the vocabulary on import when asked', () => {
    for (const config of [tiny, { ...tiny, vocabSize: 11, tiedEmbeddings: false, mlpHidden: 12 }]) {
      const params = paramsOf(config);
      const out = fresh();
      exportHuggingFace(out, params, config);
      const back = importHuggingFace(out);
      expect(back.config).toEqual({ ...config, tiedEmbeddings: config.tiedEmbeddings ?? true });
      expect([...back.params.keys()].sort()).toEqual([...params.keys()].sort());
      for (const [name, v] of params) expect(back.params.get(name), name).toEqual(v);
    }
    const params = paramsOf(tiny);
    const out = fresh();
    exportHuggingFace(out, params, tiny, { vocabSize: 11 });
    const padded = importHuggingFace(out, { padVocabTo: 8 });
    expect(padded.config.vocabSize).toBe(16);
    const wte = padded.params.get('wte.weight')!;
    expect(Array.from(wte.subarray(0, 88))).toEqual(Array.from(params.get('wte.weight')!.subarray(0, 88)));
    expect(wte.subarray(88).every((x) => x === 0)).toBe(true);
  });

  it('imports the hub’s names (no transformer. prefix), BF16 values and mask buffers', () => {
    const params = paramsOf({ ...tiny, vocabSize: 11 });
    const src = fresh();
    exportHuggingFace(src, params, { ...tiny, vocabSize: 11 });
    const path = join(src, 'model.safetensors');
    const hub = fresh();
    mkdirSync(hub);
    const tensors: Record<string, { dtype: 'BF16' | 'F32'; shape: number[]; data: ArrayBufferView }> = {};
    for (const [name, t] of Object.entries(header(path))) {
      if (name === '__metadata__') continue;
      const f = values(path, name);
      // Round to BF16 (truncate): the import must widen it back to exactly these values.
      const bits = Uint16Array.from(new Uint32Array(f.buffer), (u) => u >>> 16);
      tensors[name.replace(/^transformer\./, '')] = { dtype: 'BF16', shape: (t as { shape: number[] }).shape, data: bits };
    }
    tensors['h.0.attn.bias'] = { dtype: 'F32', shape: [1, 1, 6, 6], data: new Float32Array(36).fill(1) };
    writeSafetensors(join(hub, 'model.safetensors'), tensors, { format: 'pt' });
    copyFileSync(join(src, 'config.json'), join(hub, 'config.json'));
    const back = importHuggingFace(hub);
    for (const [name, v] of params) {
      const want = Float32Array.from(v, (x) => {
        const u = new Uint32Array(Float32Array.of(x).buffer)[0]!;
        return new Float32Array(Uint32Array.of(u & 0xffff0000).buffer)[0]!;
      });
      expect(back.params.get(name), name).toEqual(want);
    }
  });

  it('says what is wrong: shapes the layout lacks, a changed tensor, files it would overwrite', () => {
    const params = paramsOf(tiny);
    expect(errorOf(() => exportHuggingFace(fresh(), params, { ...tiny, nKvHead: 1 })).message).toMatch(/GPT-2-shaped model .* nKvHead is 1/);
    expect(errorOf(() => exportHuggingFace(fresh(), params, { ...tiny, activation: 'swiglu' })).message).toMatch(/activation is "swiglu"/);
    expect(errorOf(() => exportHuggingFace(fresh(), params, { ...tiny, nEmbd: 16 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => exportHuggingFace(fresh(), params, tiny, { vocabSize: 17 })).message).toMatch(/vocabSize in \[1, 16\]/);
    const less = new Map(params);
    less.delete('blocks.1.ln2.bias');
    expect(errorOf(() => exportHuggingFace(fresh(), less, tiny)).message).toMatch(/Expected parameter 'blocks.1.ln2.bias'/);
    const out = fresh();
    exportHuggingFace(out, params, tiny);
    expect(errorOf(() => exportHuggingFace(out, params, tiny)).message).toMatch(/without model.safetensors .*nothing was overwritten/);
    expect(errorOf(() => importHuggingFace(join(dir, 'none'))).message).toMatch(/Could not read the Hugging Face config .*none\/config.json/);
    // A config that does not match the tensors: the error names the tensor and both shapes.
    const other = fresh();
    exportHuggingFace(other, paramsOf({ ...tiny, nLayer: 1 }), { ...tiny, nLayer: 1 });
    copyFileSync(join(out, 'config.json'), join(other, 'config.json'));
    expect(errorOf(() => importHuggingFace(other)).message).toMatch(/Expected tensor 'transformer.h.1.ln_1.weight' .* for a 2-layer GPT-2/);
    // GPT2Config options this model does not have are refused, each naming the key.
    for (const [key, value] of [['layer_norm_epsilon', 1e-6], ['scale_attn_weights', false], ['scale_attn_by_inverse_layer_idx', true], ['n_inner', 2.5]] as const) {
      const d = fresh();
      exportHuggingFace(d, params, tiny);
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, [key]: value }));
      expect(errorOf(() => importHuggingFace(d)).message).toMatch(new RegExp(`Expected ${key} .* but received ${JSON.stringify(value)}`));
    }
    const wide = fresh();
    exportHuggingFace(wide, paramsOf({ ...tiny, mlpHidden: 12 }), { ...tiny, mlpHidden: 12 });
    copyFileSync(join(out, 'config.json'), join(wide, 'config.json'));
    expect(errorOf(() => importHuggingFace(wide)).message).toMatch(/Expected \[8, 32\] for 'transformer.h.0.mlp.c_fc.weight' .* the file has \[8, 12\]/);
  });

  it('refuses damaged directories and bad arguments with DeepwellErrors, before sizing anything (issue 20)', () => {
    const params = paramsOf(tiny);
    const d = fresh();
    exportHuggingFace(d, params, tiny);
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    const withConfig = (c: unknown) => {
      const e = fresh();
      mkdirSync(e);
      copyFileSync(join(d, 'model.safetensors'), join(e, 'model.safetensors'));
      writeFileSync(join(e, 'config.json'), JSON.stringify(c));
      return e;
    };
    // A config.json that is JSON but not an object.
    for (const c of [null, [1], 5, 'gpt2']) expect(errorOf(() => importHuggingFace(withConfig(c))).message).toMatch(/Expected a JSON object in .*config.json/);
    // A layer count far beyond the file is refused at once (the name list is not built).
    const t0 = performance.now();
    expect(errorOf(() => importHuggingFace(withConfig({ ...cfg, n_layer: 2 ** 31 - 1 }))).message).toMatch(/2147483647-layer GPT-2 but it has none/);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(errorOf(() => importHuggingFace(withConfig({ ...cfg, n_head: 3 }))).message).toMatch(/n_embd divisible by n_head/);
    // A config.json that disagrees with the shape model.safetensors records: the same weights would be another model.
    expect(errorOf(() => importHuggingFace(withConfig({ ...cfg, n_head: 4 }))).message).toMatch(/agree with the shape .* n_head is 4 there and 2 in the record/);
    // NaN weights in the file (checksums intact: written so) are refused, naming the tensor.
    const file = readSafetensors(join(d, 'model.safetensors'));
    const ln = file.tensors.get('transformer.h.1.ln_2.bias')!;
    const nan = new Float32Array(new Uint8Array(ln.data.buffer, ln.data.byteOffset, ln.data.byteLength).slice().buffer);
    nan[Math.floor(Math.random() * nan.length)] = Number.NaN;
    const poisoned = withConfig(cfg);
    writeSafetensors(join(poisoned, 'model.safetensors'), new Map([...file.tensors, ['transformer.h.1.ln_2.bias', { ...ln, data: nan }]]), file.metadata);
    expect(errorOf(() => importHuggingFace(poisoned)).message).toMatch(/finite values for 'transformer.h.1.ln_2.bias'.* element \d+ is NaN/);
    // A flipped bit in the weights fails the checksum.
    const flipped = withConfig(cfg);
    const bytes = readFileSync(join(flipped, 'model.safetensors'));
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x04;
    writeFileSync(join(flipped, 'model.safetensors'), bytes);
    expect(errorOf(() => importHuggingFace(flipped)).message).toMatch(/fails its checksum/);
    // Arguments: paths are strings, options known, padVocabTo bounded; export takes a Map of Float32Arrays of finite values.
    expect(errorOf(() => importHuggingFace(3 as never)).message).toMatch(/Expected a file path .* received 3/);
    expect(errorOf(() => importHuggingFace(d, { padVocab: 64 } as never)).message).toMatch(/padVocab.*did you mean padVocabTo/);
    expect(errorOf(() => importHuggingFace(d, { padVocabTo: 2 ** 40 })).message).toMatch(/padVocabTo/);
    expect(errorOf(() => exportHuggingFace(fresh(), {} as never, tiny)).message).toMatch(/a Map of the model's parameters/);
    expect(errorOf(() => exportHuggingFace(fresh(), params, null as never)).message).toMatch(/GPT config/);
    expect(errorOf(() => exportHuggingFace(fresh(), params, { ...tiny, nLayer: 1e9 })).message).toMatch(/nLayer/);
    expect(errorOf(() => exportHuggingFace(fresh(), params, tiny, { vocab: 3 } as never)).message).toMatch(/vocab/);
    const bad = new Map(params);
    const w = params.get('wpe.weight')!.slice();
    w[0] = Number.POSITIVE_INFINITY;
    bad.set('wpe.weight', w);
    const out = fresh();
    expect(errorOf(() => exportHuggingFace(out, bad, tiny)).message).toMatch(/finite values for 'wpe.weight'/);
    expect(existsSync(out)).toBe(false);
  });
});
