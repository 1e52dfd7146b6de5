/**
 * `deepwell <command> …`: argument parsing (node:util's parseArgs, strict), help for every command,
 * and errors that name the command and the option. Exit codes: 0 done, 1 failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { DeepwellError, editDistance, invalid } from '@deepwell/core';
import { main as probeMain } from '@deepwell/probe';
import { launch } from '@deepwell/trainer';
import { dryrunConfig, exportHf, importHf, prepare, sample, train, type Io } from './commands.js';

interface Command {
  summary: string;
  usage: string;
  help: string;
  options: Record<string, { type: 'string' | 'boolean' }>;
  /** Whether unknown --key value pairs are config overrides (train, dryrun). */
  overrides?: boolean;
  /** Whether everything from the first positional on is passed through untouched (launch: the script and its arguments). */
  passThrough?: boolean;
  run: (positionals: string[], values: Record<string, string | boolean | undefined>, overrides: [string, string][], io: Io) => void | Promise<number>;
}

const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : undefined);

function need(positionals: string[], n: number, what: string): void {
  if (positionals.length < n) throw new UsageError(`expected ${what}`);
  if (positionals.length > n) throw new UsageError(`unexpected argument '${positionals[n]}'`);
}

class UsageError extends Error {}

const COMMANDS: Record<string, Command> = {
  prepare: {
    summary: 'text files into token shards',
    usage: 'deepwell prepare <text…> --tokenizer gpt2|char --out <dir> [--val-fraction 0.1] [--shard-tokens 100000000]',
    help: 'Tokenizes UTF-8 text files into llm.c token shards (train_*.bin, val_*.bin) with tokenizer.json beside them, streaming: the last --val-fraction of the input is validation.',
    options: { tokenizer: { type: 'string' }, out: { type: 'string' }, 'val-fraction': { type: 'string' }, 'shard-tokens': { type: 'string' } },
    run: (p, v, _o, io) => prepare(p, { tokenizer: str(v.tokenizer), out: str(v.out), valFraction: str(v['val-fraction']), shardTokens: str(v['shard-tokens']) }, io),
  },
  train: {
    summary: 'train a GPT on prepared shards',
    usage: 'deepwell train <config.json> [--resume] [--extend] [--<key> <value> …]',
    help: 'Trains a GPT on prepared shards with the Trainer. The config holds model, data, batchSize, seqLen, steps and the Trainer\'s options (optimizer, schedule, clipGradNorm, accumulate, evalEvery, evalBatches, seed, device, precision, checkpoint, log); --key value overrides any of them, dotted for nested keys (--optimizer.lr 1e-3). A new run refuses a checkpoint directory that holds checkpoints. --resume continues the newest checkpoint ("resume": "auto" in the config: only when there is one); --extend, with --resume, keeps the checkpoint\'s learning-rate schedule when the config\'s differs (e.g. more steps).',
    options: { resume: { type: 'boolean' }, extend: { type: 'boolean' } },
    overrides: true,
    run: (p, v, o, io) => {
      need(p, 1, 'a run config (config.json)');
      train(p[0]!, [...o, ...(v.resume ? [['resume', 'true'] as [string, string]] : []), ...(v.extend ? [['extend', 'true'] as [string, string]] : [])], io);
    },
  },
  sample: {
    summary: 'generate text from a checkpoint',
    usage: 'deepwell sample <checkpoint> [--prompt <text>] [--max-tokens 100] [--temperature 1] [--top-k <k>] [--top-p <p>] [--seed 0] [--device cpu] [--precision f32|bf16] [--no-cache]',
    help: 'Generates text from a checkpoint of deepwell train or deepwell import, with the tokenizer it records. Decodes over a key/value cache (one step a token; on a GPU one CUDA graph a step) unless --no-cache; --precision defaults to f32 on the CPU and bf16 on a GPU.',
    options: { prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, device: { type: 'string' }, precision: { type: 'string' }, 'no-cache': { type: 'boolean' } },
    run: (p, v, _o, io) => {
      need(p, 1, 'a checkpoint');
      sample(p[0]!, { prompt: str(v.prompt), maxTokens: str(v['max-tokens']), temperature: str(v.temperature), topK: str(v['top-k']), topP: str(v['top-p']), seed: str(v.seed), device: str(v.device), precision: str(v.precision), cache: v['no-cache'] ? false : undefined }, io);
    },
  },
  export: {
    summary: 'a checkpoint as a Hugging Face GPT-2 directory',
    usage: 'deepwell export --hf <checkpoint> <dir> [--vocab-size <n>]',
    help: "Writes a GPT-2-shaped checkpoint as the Hugging Face layout transformers loads (model.safetensors, config.json); the vocabulary defaults to the tokenizer's (50257 for GPT-2's).",
    options: { hf: { type: 'boolean' }, 'vocab-size': { type: 'string' } },
    run: (p, v, _o, io) => {
      if (!v.hf) throw new UsageError('expected --hf (the one export format)');
      need(p, 2, 'a checkpoint and an output directory');
      exportHf(p[0]!, p[1]!, { vocabSize: str(v['vocab-size']) }, io);
    },
  },
  import: {
    summary: 'a Hugging Face GPT-2 directory as a checkpoint',
    usage: 'deepwell import --hf <dir> <checkpoint> [--pad-vocab 64]',
    help: "Reads a Hugging Face GPT-2 directory (config.json, model.safetensors) into a Deepwell checkpoint of its weights, the vocabulary padded to a multiple of --pad-vocab, for deepwell sample and export.",
    options: { hf: { type: 'boolean' }, 'pad-vocab': { type: 'string' } },
    run: (p, v, _o, io) => {
      if (!v.hf) throw new UsageError('expected --hf (the one import format)');
      need(p, 2, 'a Hugging Face directory and a checkpoint path');
      importHf(p[0]!, p[1]!, { padVocab: str(v['pad-vocab']) }, io);
    },
  },
  probe: {
    summary: 'the GPUs and what they can do',
    usage: 'deepwell probe [--json]',
    help: 'Prints the GPUs, their capabilities and the vendor libraries found.',
    options: { json: { type: 'boolean' } },
    run: (p, v) => {
      need(p, 0, 'no arguments');
      return probeMain(v.json ? ['--json'] : []);
    },
  },
  launch: {
    summary: 'one process per GPU, the way torchrun starts them',
    usage: 'deepwell launch --gpus <n> <script.js> [script arguments…]',
    help: 'Starts <script.js> with Node once per GPU on this machine, each with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT: a free port) and a job token (DEEPWELL_JOB_TOKEN); output lines are prefixed with the rank. When one rank fails, the others are stopped (SIGTERM, then SIGKILL after 5 s) and the exit code is the failed rank\'s. `torchrun --no-python node script.js` and `srun node script.js` start the same script unchanged.',
    options: { gpus: { type: 'string' } },
    passThrough: true,
    run: async (p, v, _o, io) => {
      if (v.gpus === undefined) throw new UsageError('expected --gpus <n>');
      if (p.length === 0) throw new UsageError('expected a script to run');
      const gpus = Number(v.gpus);
      if (!Number.isInteger(gpus) || gpus < 1 || gpus > 64) throw new UsageError(`expected an integer from 1 to 64 after --gpus but received '${String(v.gpus)}'`);
      const r = await launch({ gpus, script: p[0]!, args: p.slice(1), out: io.out, err: io.err });
      if (r.code !== 0) io.err(`deepwell launch: ${r.message}`);
      return r.code;
    },
  },
  dryrun: {
    summary: "a run config's memory, FLOPs and time per step",
    usage: 'deepwell dryrun <config.json> [--<key> <value> …]',
    help: "Memory, FLOPs and estimated time of a run config's training step without running it, and the largest batch that fits.",
    options: {},
    overrides: true,
    run: (p, _v, o, io) => {
      need(p, 1, 'a run config (config.json)');
      dryrunConfig(p[0]!, o, io);
    },
  },
};

const TOP = `Usage: deepwell <command> [options]   (deepwell <command> --help for one)

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`).join('\n')}`;

/** " (did you mean --x?)" for the command's options near `flag` (with or without its dashes), or ''. */
function nearFlag(flag: string, options: Record<string, unknown>): string {
  const name = flag.replace(/^-+/, '').split('=')[0]!.toLowerCase();
  const near = Object.keys(options).filter((k) => editDistance(k, name) <= (name.length <= 3 ? 1 : 2) || (name.length >= 3 && k.startsWith(name)));
  return near.length ? ` (did you mean ${near.map((k) => `--${k}`).join(' or ')}?)` : '';
}

/** parseArgs's error as a usage error: which option, and what is wrong with it. */
function usageOf(e: unknown, options: Record<string, { type: string }>): UsageError {
  const code = (e as { code?: string }).code;
  const message = (e as Error).message ?? String(e);
  const flag = /'(--?[^'\s]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) {
    const known = Object.keys(options).map((k) => `--${k}`).join(', ');
    return new UsageError(`unknown option ${flag}${nearFlag(flag, options)}${known ? ` (options: ${known})` : ' (this command takes none)'}`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) {
    const name = flag.replace(/^-+/, '').split('=')[0]!;
    return new UsageError(options[name]?.type === 'boolean' ? `${flag.split('=')[0]} takes no value` : `expected a value after ${flag}`);
  }
  return new UsageError(message);
}

/** Split `--key value` pairs that are not the command's own options (config overrides). */
function splitOverrides(args: string[], own: Record<string, unknown>): { rest: string[]; overrides: [string, string][] } {
  const rest: string[] = [];
  const overrides: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--([A-Za-z][\w.]*)(?:=(.*))?$/.exec(a);
    if (m && !(m[1]! in own) && m[1] !== 'help') {
      if (m[2] !== undefined) overrides.push([m[1]!, m[2]]);
      else if (i + 1 < args.length) overrides.push([m[1]!, args[++i]!]);
      else throw new UsageError(`expected a value after ${a}`);
    } else rest.push(a);
  }
  return { rest, overrides };
}

/**
 * Run `deepwell <argv…>`: 0 done, 1 failed (a DeepwellError, printed with its code), 2 bad usage.
 * Bad input never ends in a stack trace: an error that is not a DeepwellError (a bug) is printed as
 * one, asking for a report, with exit code 1 (its stack with DEEPWELL_DEBUG=1).
 */
export async function main(argv: string[], io: Io = { out: (s) => console.log(s), err: (s) => console.error(s) }): Promise<number> {
  if (!Array.isArray(argv) || argv.some((a) => typeof a !== 'string')) invalid('an array of argument strings', 'deepwell main(argv)', argv);
  if (typeof io !== 'object' || io === null || typeof io.out !== 'function' || typeof io.err !== 'function') invalid('{ out, err } functions of a line', 'deepwell main(io)', io);
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(TOP);
    return name === undefined ? 2 : 0;
  }
  const cmd = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    const near = Object.keys(COMMANDS).filter((c) => editDistance(c, name.toLowerCase()) <= 2);
    io.err(`deepwell: unknown command '${name}'${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''} (expected one of ${Object.keys(COMMANDS).join(', ')})\n\n${TOP}`);
    return 2;
  }
  try {
    // launch: its own options first, then the script and the script's arguments, untouched.
    let passed: string[] = [];
    if (cmd.passThrough) {
      let i = 0;
      while (i < args.length && args[i]!.startsWith('-')) i += args[i]!.includes('=') || cmd.options[args[i]!.replace(/^-+/, '')]?.type !== 'string' ? 1 : 2;
      passed = args.slice(i);
      args.length = Math.min(i, args.length);
    }
    const { rest, overrides } = cmd.overrides ? splitOverrides(args, cmd.options) : { rest: args, overrides: [] };
    // A negative number after a string option is its value, not an option ('--seed -1' as '--seed=-1').
    for (let i = 0; i + 1 < rest.length; i++) {
      const m = /^--([\w-]+)$/.exec(rest[i]!);
      if (m && cmd.options[m[1]!]?.type === 'string' && /^-(\d|\.\d)/.test(rest[i + 1]!)) rest.splice(i, 2, `${rest[i]}=${rest[i + 1]}`);
    }
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    } catch (e) {
      throw usageOf(e, cmd.options);
    }
    if (parsed.values.help) {
      io.out(`Usage: ${cmd.usage}\n\n${cmd.help}`);
      return 0;
    }
    const r = await cmd.run([...parsed.positionals, ...passed], parsed.values as Record<string, string | boolean | undefined>, overrides, io);
    return typeof r === 'number' ? r : 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`deepwell ${name}: ${e.message}\nUsage: ${cmd.usage}`);
      return 2;
    }
    if (DeepwellError.is(e)) {
      io.err(`deepwell ${name}: ${e.message} [${e.code}]`);
      return 1;
    }
    const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    io.err(`deepwell ${name}: internal error (a bug in Deepwell: please report it with the command line): ${what}${process.env.DEEPWELL_DEBUG ? `\n${(e as Error)?.stack ?? ''}` : ''}`);
    return 1;
  }
}
