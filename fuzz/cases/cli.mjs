// The deepwell command, in-process (main(argv, io) and loadRunConfig), on hostile input (issue 20):
// unknown commands and flags (refused with "did you mean"), missing and extra arguments, number
// flags that are not decimal numbers in range, run configs with wrong types, out-of-range values,
// unknown and prototype keys, damaged JSON, damaged shards and checkpoints; a few valid runs.
//
// How a command's outcome maps onto the suite's: main answers bad input with an exit code and a
// message, not a throw. Exit 1 with a message ending in a DeepwellError's [CODE], or exit 2 (bad
// usage) with 'deepwell <command>: …', is the typed refusal it printed: the case rethrows it as that
// DeepwellError. An "internal error" (main's backstop for an error that is not a DeepwellError), a
// stack, or another exit code is rethrown as a plain Error (untyped). Exit 0 is acceptance.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError } from '@deepwell/core';
import { loadRunConfig, main } from '@deepwell/cli';
import { GPT } from '@deepwell/nn';
import { charTokenizer, writeSafetensors } from '@deepwell/trainer';
import { BAD_INTEGERS, WRONG_TYPES, damage, junk, show } from '../lib.mjs';

const COMMANDS = ['prepare', 'train', 'sample', 'export', 'import', 'probe', 'dryrun'];
const FLAGS = {
  prepare: ['tokenizer', 'out', 'val-fraction', 'shard-tokens'],
  train: ['resume', 'extend'],
  sample: ['prompt', 'max-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'device', 'precision', 'no-cache'],
  export: ['hf', 'vocab-size'],
  import: ['hf', 'pad-vocab'],
  probe: ['json'],
  dryrun: [],
};
const TINY = { vocabSize: 32, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 8 };
const WORDS = ['In', 'the', 'beginning', 'light', 'water', 'earth', 'and', 'was', 'good', 'day'];
const textOf = (r, n) => Array.from({ length: n }, () => WORDS[r.int(0, WORDS.length - 1)]).join(' ');

async function cli(argv) {
  const out = [];
  const err = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
/** A refusal as the suite's outcome (see the header); an accepted run is returned. */
function outcome(r) {
  if (r.code === 0) return r;
  if (/internal error|\n\s+at |TypeError|RangeError|ReferenceError|SyntaxError: Unexpected/.test(r.err)) throw new Error(`deepwell printed: ${r.err.slice(0, 400)}`);
  const typed = /\[([A-Z_]+)\]$/.exec(r.err.trim());
  if (r.code === 1 && typed && /^deepwell \w+: /.test(r.err)) throw new DeepwellError(typed[1], r.err);
  if (r.code === 2 && /^deepwell( \w+)?: /.test(r.err)) throw new DeepwellError('INVALID_ARGUMENT', r.err);
  throw new Error(`deepwell exited ${r.code}: ${r.err.slice(0, 400)}`);
}
const run = async (argv) => outcome(await cli(argv));

let n = 0;
const fresh = (ctx, name) => {
  const d = join(ctx.dir, 'cli');
  mkdirSync(d, { recursive: true });
  return join(d, `${n++}-${name}`);
};
/** A text file and (optionally) a prepared data folder. */
async function prepared(ctx, r) {
  const text = fresh(ctx, 'text.txt');
  writeFileSync(text, textOf(r, r.int(200, 400)));
  const data = fresh(ctx, 'data');
  const p = await cli(['prepare', text, '--tokenizer', 'char', '--out', data, '--val-fraction', '0.1']);
  if (p.code !== 0) throw new Error(`prepare failed: ${p.err}`);
  return { text, data };
}
/** A run config (a data folder that is not there unless given: the run is refused before any model is built). */
function config(ctx, over = {}, data = join(ctx.dir, 'no-data-here')) {
  const path = fresh(ctx, 'run.json');
  writeFileSync(path, JSON.stringify({ model: TINY, data, batchSize: 2, seqLen: 8, steps: 2, device: 'cpu', checkpoint: { dir: fresh(ctx, 'ckpt'), every: 1 }, log: { every: 1 }, ...over }));
  return path;
}
/** A Deepwell checkpoint of TINY's weights (random) with a char tokenizer, as deepwell import writes one. */
function checkpoint(ctx, r) {
  const tok = charTokenizer('abcdefghij klmnopqrstuvwxyz.\n');
  const tensors = new Map(new GPT(TINY).namedParameters().map(([name, p]) => [name, { dtype: 'F32', shape: [...p.shape], data: r.f32(p.shape.reduce((a, b) => a * b, 1), 0.05) }]));
  const path = fresh(ctx, 'ckpt.safetensors');
  writeSafetensors(path, tensors, { format: 'deepwell-checkpoint', version: '1', step: '0', loader: 'null', seed: '0', config: JSON.stringify({ model: TINY, tokenizer: tok.record() }), extra: 'null' });
  return path;
}
/** A flag near `f`: a letter dropped, doubled or swapped, another case, a typo. */
function nearFlag(r, f) {
  const i = r.int(0, f.length - 1);
  const kind = r.int(0, 3);
  if (kind === 0 && f.length > 2) return f.slice(0, i) + f.slice(i + 1);
  if (kind === 1) return f.slice(0, i) + f[i] + f.slice(i);
  if (kind === 2 && i + 1 < f.length) return f.slice(0, i) + f[i + 1] + f[i] + f.slice(i + 2);
  return f.toUpperCase();
}

export function cases(rng, ctx) {
  const out = [];
  const push = (c) => out.push(c);

  // ---- main's own arguments ----
  for (let i = 0; i < 16; i++) {
    const bad = i < 8 ? rng.pick([5, null, undefined, 'train', {}, [1], ['train', null], [Symbol('x')], new Uint8Array(2)]) : junk(rng);
    if (Array.isArray(bad) && bad.every((a) => typeof a === 'string')) continue;
    push({ name: `cli.main: argv ${show(bad)} #${i}`, entry: 'cli.main', expect: bad === undefined ? 'either' : 'error', run: () => main(bad, { out: () => {}, err: () => {} }) });
  }
  for (let i = 0; i < 6; i++) {
    const io = rng.pick([null, 5, {}, { out: () => {} }, { out: 5, err: () => {} }, 'io']);
    push({ name: `cli.main: io ${show(io)} #${i}`, entry: 'cli.main', expect: 'error', run: () => main(['probe'], io) });
  }

  // ---- commands: unknown, help, usage ----
  for (let i = 0; i < 30; i++) {
    const r = rng.fork();
    const name = i < 15 ? nearFlag(r, rng.pick(COMMANDS)) : rng.pick(['frob', 'TRAIN', 'run', 'fit', '-x', '--version', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '']);
    if (COMMANDS.includes(name)) continue;
    push({ name: `cli.main: command '${name}' #${i}`, entry: 'cli.main', expect: 'error', run: () => run([name]) });
  }
  for (const c of [...COMMANDS, null]) {
    push({
      name: `cli.main: ${c ?? ''} --help`,
      entry: 'cli.main',
      expect: 'ok',
      run: () => run(c ? [c, '--help'] : ['--help']),
      check: (r) => (/^Usage: deepwell/.test(r.out) ? undefined : `no usage printed: ${r.out.slice(0, 80)}`),
    });
  }
  push({ name: 'cli.main: no arguments', entry: 'cli.main', expect: 'either', run: async () => { const r = await cli([]); if (r.code !== 2) throw new Error(`exit ${r.code}`); return r; }, check: () => undefined });
  for (let i = 0; i < 60; i++) {
    const r = rng.fork();
    const c = rng.pick(COMMANDS.filter((x) => FLAGS[x].length));
    const flag = nearFlag(r, rng.pick(FLAGS[c]));
    if (FLAGS[c].includes(flag)) continue;
    push({
      name: `cli.main: ${c} --${flag} #${i}`,
      entry: 'cli.main',
      expect: 'error',
      run: async () => {
        const pos = c === 'train' ? [config(ctx)] : c === 'sample' ? [checkpoint(ctx, r)] : c === 'export' ? ['--hf', checkpoint(ctx, r), fresh(ctx, 'hf')] : c === 'import' ? ['--hf', ctx.dir, fresh(ctx, 'x.safetensors')] : c === 'prepare' ? [fresh(ctx, 'missing.txt')] : [];
        const res = await cli([c, ...pos, `--${flag}`, '1']);
        // A flag near one of the command's own is named in a "did you mean" (train's unknown flags are config keys, named by the config check).
        if (res.code === 2 && !/did you mean|unknown option/.test(res.err)) throw new Error(`no suggestion: ${res.err}`);
        return outcome(res);
      },
    });
  }
  const ARGS = [
    ['prepare'], ['prepare', '--tokenizer', 'char'], ['train'], ['train', 'a.json', 'b.json'], ['sample'], ['sample', 'a', 'b'], ['export', '--hf'], ['export', 'a', 'b'],
    ['export', '--hf', 'a'], ['import', '--hf'], ['import', 'a', 'b'], ['import', '--hf', 'a', 'b', 'c'], ['probe', 'extra'], ['dryrun'], ['dryrun', 'a', 'b'],
    ['sample', 'x', '--prompt'], ['prepare', 'x', '--out'], ['probe', '--json=yes'], ['sample', 'x', '--no-cache=1'], ['train', '--resume'],
  ];
  for (const [i, argv] of ARGS.entries()) push({ name: `cli.main: ${argv.join(' ')} #${i}`, entry: 'cli.main', expect: 'error', run: () => run(argv) });

  // ---- prepare ----
  const NUMS = ['', ' ', '0x10', 'Infinity', '-Infinity', 'NaN', '1e999', 'abc', '1,5', '١', '1_000', '--1'];
  for (let i = 0; i < 36; i++) {
    const r = rng.fork();
    const flag = rng.pick(['val-fraction', 'shard-tokens']);
    const v = rng.bool(0.5) ? rng.pick(NUMS) : flag === 'val-fraction' ? rng.pick(['0.51', '-0.1', '1', '2']) : rng.pick(['0', '-5', '1.5', '2147483648', '1e3', '9007199254740993']);
    push({
      name: `cli.main: prepare --${flag} '${v}' #${i}`,
      entry: 'cli.main',
      expect: 'error',
      run: () => {
        const text = fresh(ctx, 'text.txt');
        writeFileSync(text, textOf(r, 50));
        return run(['prepare', text, '--tokenizer', 'char', '--out', fresh(ctx, 'out'), `--${flag}=${v}`]);
      },
    });
  }
  const PREP_FILES = ['empty', 'missing', 'directory', 'not utf-8', 'out is a file', 'out holds shards', 'tokenizer gpt3', 'tokenizer ""'];
  for (let i = 0; i < 24; i++) {
    const r = rng.fork();
    const what = rng.pick(PREP_FILES);
    push({
      name: `cli.main: prepare, ${what} #${i}`,
      entry: 'cli.main',
      expect: 'error',
      run: async () => {
        const text = fresh(ctx, 'text.txt');
        writeFileSync(text, what === 'empty' ? '' : what === 'not utf-8' ? Uint8Array.of(0x61, 0xc3, 0x28, 0x62) : textOf(r, 50));
        let outDir = fresh(ctx, 'out');
        if (what === 'out holds shards') await cli(['prepare', text, '--tokenizer', 'char', '--out', outDir]);
        if (what === 'out is a file') outDir = text;
        const input = what === 'missing' ? `${text}.missing` : what === 'directory' ? ctx.dir : text;
        const tokenizer = what === 'tokenizer gpt3' ? 'gpt3' : what === 'tokenizer ""' ? '' : 'char';
        return run(['prepare', input, '--tokenizer', tokenizer, '--out', outDir]);
      },
    });
  }
  for (let i = 0; i < 6; i++) {
    const r = rng.fork();
    const tokenizer = i < 2 ? 'gpt2' : 'char';
    push({
      name: `cli.main: prepare --tokenizer ${tokenizer} (valid) #${i}`,
      entry: 'cli.main',
      expect: 'ok',
      run: async () => {
        const text = fresh(ctx, 'text.txt');
        writeFileSync(text, textOf(r, r.int(20, 300)));
        const outDir = fresh(ctx, 'out');
        return { r: await run(['prepare', text, '--tokenizer', tokenizer, '--out', outDir, '--val-fraction', String(r.pick([0, 0.1, 0.5])), '--shard-tokens', String(r.int(1, 1000))]), outDir };
      },
      check: ({ outDir }) => (JSON.parse(readFileSync(join(outDir, 'tokenizer.json'), 'utf8')).name === tokenizer ? undefined : 'no tokenizer.json'),
    });
  }

  // ---- train: configs ----
  const CONFIG_BAD = {
    model: () => rng.pick(['gpt9', 'toString', 'constructor', '__proto__', 5, null, [], { vocabSize: -1 }, { nLayr: 2 }]),
    data: () => rng.pick([5, null, '', {}, true]),
    batchSize: () => rng.pick([0, -1, 1.5, '2', null, 1e300, true]),
    seqLen: () => rng.pick([0, -1, 2.5, '8', null]),
    steps: () => rng.pick([0, -3, 0.5, '2', null, []]),
    optimizer: () => rng.pick([5, 'adam', [], { lr: -1 }, { lr: '1e-3' }, { learningRate: 1e-3 }, { beta1: null }]),
    schedule: () => rng.pick([5, { warmup: -1 }, { warmup: 1.5 }, { minLr: -1 }, { warmup_steps: 2 }]),
    clipGradNorm: () => rng.pick([-1, '1', null, {}]),
    accumulate: () => rng.pick([0, 1.5, '2', -1]),
    evalEvery: () => rng.pick([0, -1, 1.5, 'often']),
    evalBatches: () => rng.pick([0, -1, 0.5, '3']),
    seed: () => rng.pick([-1, 0.5, '1', null]),
    device: () => rng.pick([5, null, '', true]),
    precision: () => rng.pick(['fp16', 'f16', 'BF16', '', 5, null]),
    checkpoint: () => rng.pick([5, 'dir', { every: 1 }, { dir: 5, every: 1 }, { dir: 'x', every: 0 }, { dir: 'x', every: 1, kep: 2 }, { dir: '', every: 1 }]),
    resume: () => rng.pick(['yes', 1, null, 'Auto']),
    extend: () => rng.pick(['yes', 1, null]),
    log: () => rng.pick([5, { every: 0 }, { jsonl: 5 }, { josnl: 'x' }]),
    sample: () => rng.pick([5, { prompt: 5 }, { maxTokens: 0 }, { temperature: -1 }, { topK: 0.5 }, { max_tokens: 8 }]),
    key: () => rng.pick(['lr', 'learningRate', 'epochs', 'batch_size', 'warmup', '__proto__', 'constructor', 'toString']),
  };
  for (let i = 0; i < 70; i++) {
    const r = rng.fork();
    const what = rng.pick(Object.keys(CONFIG_BAD));
    const bad = CONFIG_BAD[what]();
    const command = rng.pick(['train', 'dryrun']);
    push({
      name: `cli.main: ${command} with config ${what} ${show(bad)} #${i}`,
      entry: ['cli.main', 'cli.loadRunConfig'],
      expect: 'error',
      run: () => {
        const path = fresh(ctx, 'run.json');
        const c = { model: TINY, data: join(ctx.dir, 'no-data-here'), batchSize: 2, seqLen: 8, steps: 2 };
        // An own "__proto__" key exists only in JSON text (assigning it to an object sets the prototype).
        const proto = what === 'key' && bad === '__proto__';
        if (what === 'key' && !proto) c[bad] = 1;
        else if (what !== 'key') c[what] = bad;
        writeFileSync(path, proto ? JSON.stringify(c).replace(/^\{/, '{"__proto__":1,') : JSON.stringify(c));
        void r;
        return run([command, path]);
      },
    });
  }
  const OVERRIDES = [
    ['steps', 'abc'], ['steps', '-1'], ['steps', '1e999'], ['batchSize', '0'], ['batchSize', '2.5'], ['seqLen', 'null'], ['optimizer.lr', 'NaN'], ['optimizer.lr', '-1'],
    ['optimizer.learningRate', '1'], ['precision', 'fp16'], ['model', 'gpt9'], ['model.nLayer', '2'], ['__proto__.polluted', '1'], ['constructor.prototype', '1'],
    ['a..b', '1'], ['steps.x', '1'], ['checkpoint.every', '0'], ['log.every', '-1'], ['resume', 'maybe'], ['extend', '2'], ['sample.topK', '1.5'], ['schedule.warmup', '-2'],
    ['seed', '1.5'], ['device', ''], ['lr', '1e-3'], ['optimizer.lr.x', '1'], ['evalBatches', '0'], ['accumulate', 'true'],
  ];
  for (let i = 0; i < 40; i++) {
    const [key, value] = rng.pick(OVERRIDES);
    const command = rng.pick(['train', 'dryrun']);
    push({
      name: `cli.main: ${command} --${key} '${value}' #${i}`,
      entry: 'cli.main',
      expect: 'error',
      run: async () => {
        const res = await run([command, config(ctx, { model: 'tiny' }), `--${key}`, value]);
        if (Object.prototype.polluted !== undefined) throw new Error('Object.prototype was written');
        return res;
      },
    });
  }
  for (let i = 0; i < 24; i++) {
    const r = rng.fork();
    push({
      name: `cli.main: train with a damaged config file #${i}`,
      entry: ['cli.main', 'cli.loadRunConfig'],
      expect: 'error', // its data folder is not there: even a config the damage leaves valid is refused
      run: () => {
        const path = config(ctx);
        const d = damage(readFileSync(path), r);
        writeFileSync(path, d.bytes);
        return run(['train', path]);
      },
    });
  }
  for (let i = 0; i < 6; i++) {
    const r = rng.fork();
    push({
      name: `cli.main: train on a damaged shard #${i}`,
      entry: 'cli.main',
      expect: 'either',
      timeoutMs: 20_000,
      run: async () => {
        const { data } = await prepared(ctx, r);
        const shard = join(data, 'train_000000.bin');
        const bytes = readFileSync(shard);
        const d = damage(bytes, r);
        writeFileSync(shard, d.bytes);
        const same = Buffer.from(d.bytes).equals(bytes);
        const res = outcome(await cli(['train', config(ctx, {}, data)]));
        // Trained: only where the damage left the shard's bytes as they were (zeros over zeros, a shuffle of equal bytes).
        return { same, kind: d.kind, res };
      },
      check: ({ same, kind }) => (same ? undefined : `trained on a ${kind} shard`),
    });
  }
  push({
    name: 'cli.main: train a tiny valid run',
    entry: 'cli.main',
    expect: 'ok',
    timeoutMs: 30_000,
    run: async () => {
      const { data } = await prepared(ctx, rng.fork());
      return run(['train', config(ctx, { evalEvery: 1, evalBatches: 1, sample: { prompt: 'the', maxTokens: 4 } }, data)]);
    },
    check: (r) => (/trained 2 steps: final loss \d/.test(r.out) ? undefined : `no result line: ${r.out.slice(0, 120)}`),
  });
  for (let i = 0; i < 3; i++) {
    const r = rng.fork();
    push({
      name: `cli.main: dryrun a valid config #${i}`,
      entry: 'cli.main',
      expect: 'ok',
      timeoutMs: 20_000,
      run: () => run(['dryrun', config(ctx, { batchSize: r.int(1, 4) }), ...(r.bool() ? ['--seqLen', String(r.int(1, 16))] : [])]),
      check: (res) => (/memory per step: [\d.]+ GiB/.test(res.out) ? undefined : `no memory line: ${res.out.slice(0, 120)}`),
    });
  }

  // ---- sample, export, import ----
  const SAMPLE_BAD = [
    ['--max-tokens', '0'], ['--max-tokens', '1.5'], ['--max-tokens', '1e9'], ['--max-tokens', ''], ['--max-tokens', 'Infinity'], ['--temperature', '-1'], ['--temperature', 'NaN'],
    ['--temperature', '0x1'], ['--top-k', '0'], ['--top-k', '2.5'], ['--top-p', '0'], ['--top-p', '1.5'], ['--top-p', 'abc'], ['--seed', '-1'], ['--seed', '4294967296'], ['--seed', '1e3'],
    ['--device', 'gpu'], ['--device', 'cuda:x'], ['--device', ''], ['--precision', 'fp16'], ['--precision', ''], ['--prompt', '\u{1F600} not in the vocabulary'],
  ];
  for (let i = 0; i < 36; i++) {
    const r = rng.fork();
    const [flag, value] = rng.pick(SAMPLE_BAD);
    push({ name: `cli.main: sample ${flag} '${value}' #${i}`, entry: 'cli.main', expect: 'error', run: () => run(['sample', checkpoint(ctx, r), `${flag}=${value}`]) });
  }
  for (let i = 0; i < 4; i++) {
    const r = rng.fork();
    push({
      name: `cli.main: sample a valid checkpoint #${i}`,
      entry: 'cli.main',
      expect: 'ok',
      timeoutMs: 20_000,
      run: () => run(['sample', checkpoint(ctx, r), '--prompt', 'the', '--max-tokens', String(r.int(1, 8)), '--seed', String(r.int(0, 100)), ...(r.bool() ? ['--temperature', '0'] : []), ...(r.bool() ? ['--no-cache'] : [])]),
      check: (res) => (res.out.startsWith('the') ? undefined : `not a continuation of the prompt: ${JSON.stringify(res.out)}`),
    });
  }
  for (let i = 0; i < 30; i++) {
    const r = rng.fork();
    const command = rng.pick(['sample', 'export']);
    push({
      name: `cli.main: ${command} a damaged checkpoint #${i}`,
      entry: 'cli.main',
      expect: 'either', // refused with a typed error, or (a flipped weight) run: never an internal error
      timeoutMs: 20_000,
      run: async () => {
        const path = checkpoint(ctx, r);
        writeFileSync(path, damage(readFileSync(path), r).bytes);
        return run(command === 'sample' ? ['sample', path, '--max-tokens', '3'] : ['export', '--hf', path, fresh(ctx, 'hf')]);
      },
      check: (res) => (res.code === 0 ? undefined : `exit ${res.code}`),
    });
  }
  const EXPORT_BAD = [
    () => ['export', '--hf', 'x'], (c) => ['export', '--hf', c, fresh(ctx, 'hf'), '--vocab-size=0'], (c) => ['export', '--hf', c, fresh(ctx, 'hf'), '--vocab-size=abc'],
    (c) => ['export', '--hf', c, fresh(ctx, 'hf'), '--vocab-size=99999'], (c) => ['export', '--hf', c, fresh(ctx, 'hf'), '--vocab-size=1.5'], () => ['export', '--hf', fresh(ctx, 'missing.safetensors'), fresh(ctx, 'hf')],
    (c) => ['export', '--hf', c, c], () => ['import', '--hf', fresh(ctx, 'no-hf'), fresh(ctx, 'x.safetensors')], (c) => ['import', '--hf', ctx.dir, c],
    () => ['import', '--hf', ctx.dir, fresh(ctx, 'x.safetensors'), '--pad-vocab=0'], () => ['import', '--hf', ctx.dir, fresh(ctx, 'x.safetensors'), '--pad-vocab=-64'],
    () => ['import', '--hf', ctx.dir, fresh(ctx, 'x.safetensors'), '--pad-vocab=ab'], (c) => ['sample', `${c}.missing`], () => ['sample', ctx.dir],
  ];
  for (let i = 0; i < 28; i++) {
    const r = rng.fork();
    const make = rng.pick(EXPORT_BAD);
    push({ name: `cli.main: ${make('C').join(' ').replace(ctx.dir, '<dir>').slice(0, 60)} #${i}`, entry: 'cli.main', expect: 'error', run: () => run(make(checkpoint(ctx, r))) });
  }
  push({
    name: 'cli.main: export then import a valid checkpoint',
    entry: 'cli.main',
    expect: 'ok',
    timeoutMs: 20_000,
    run: async () => {
      const hf = fresh(ctx, 'hf');
      await run(['export', '--hf', checkpoint(ctx, rng.fork()), hf]);
      return run(['import', '--hf', hf, fresh(ctx, 'back.safetensors')]);
    },
    check: (r) => (/wrote .*back\.safetensors/.test(r.out) ? undefined : r.out),
  });
  push({ name: 'cli.main: probe --json', entry: 'cli.main', expect: 'ok', run: () => run(['probe', '--json']) });

  // ---- loadRunConfig ----
  for (let i = 0; i < 20; i++) {
    const which = rng.pick(['path', 'overrides', 'pair']);
    const bad = which === 'path' ? rng.pick([5, null, '', {}, Buffer.from('x'), ...WRONG_TYPES.slice(0, 4)]) : which === 'overrides' ? rng.pick([5, 'steps=2', {}, [['steps']], [[1, '2']], [['steps', 2]], [null]]) : rng.pick([['__proto__.x', '1'], ['a..b', '1'], ['x.y.z', '1'], ['', '1'], ['steps', 'abc'], ['steps', '0']]);
    push({
      name: `cli.loadRunConfig: bad ${which} ${show(bad)} #${i}`,
      entry: 'cli.loadRunConfig',
      expect: 'error',
      run: () => {
        const path = config(ctx);
        if (which === 'path') return loadRunConfig(bad);
        if (which === 'overrides') return loadRunConfig(path, bad);
        return loadRunConfig(path, [bad]);
      },
    });
  }
  for (let i = 0; i < 10; i++) {
    const r = rng.fork();
    const steps = rng.int(1, 1e6);
    const lr = rng.float(1e-5, 1e-2);
    push({
      name: `cli.loadRunConfig: a valid config with overrides #${i}`,
      entry: 'cli.loadRunConfig',
      expect: 'ok',
      run: () => loadRunConfig(config(ctx, { resume: r.pick([true, false, 'auto']), precision: r.pick(['f32', 'bf16']) }), [['steps', String(steps)], ['optimizer.lr', String(lr)], ['checkpoint.dir', '2024'], ['model', 'tiny']]),
      check: (c) => (c.steps === steps && c.optimizer.lr === lr && c.checkpoint.dir.endsWith('2024') && c.model === 'tiny' ? undefined : `overrides not applied: ${JSON.stringify(c).slice(0, 120)}`),
    });
  }
  for (let i = 0; i < 6; i++) {
    const v = rng.pick(BAD_INTEGERS);
    push({ name: `cli.loadRunConfig: steps ${show(v)} in the file #${i}`, entry: 'cli.loadRunConfig', expect: 'error', run: () => loadRunConfig(config(ctx, { steps: v })) });
  }
  return out;
}
