// Issue 20, bad input into the deepwell command (in-process): unknown flags are refused with a
// "did you mean", number flags are decimal numbers in range (Number('') is 0, Number('0x10') 16),
// a config key never reaches Object's prototype, damaged shards and configs give typed errors and a
// non-zero exit, and nothing ends in a stack trace from a TypeError.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, loadRunConfig } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-cli-hostile-'));
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const words = ['In', 'the', 'beginning', 'light', 'water', 'earth', 'and', 'was', 'good'];
const text = Array.from({ length: int(300, 600) }, () => words[int(0, words.length - 1)]).join(' ');
const textPath = join(dir, 'text.txt');
writeFileSync(textPath, text);

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
/** A refusal: the exit code, the command named, no internal error, no stack. */
function refused(r: { code: number; err: string }, code: number, re: RegExp): void {
  expect(r.code, r.err).toBe(code);
  expect(r.err).toMatch(re);
  expect(r.err).not.toMatch(/internal error|TypeError|RangeError|\n\s+at /);
}

describe('deepwell on bad arguments', () => {
  it('refuses unknown flags with a suggestion, and flags without their value', async () => {
    refused(await run('prepare', textPath, '--tokenizr', 'char'), 2, /^deepwell prepare: unknown option --tokenizr \(did you mean --tokenizer\?\)/);
    refused(await run('sample', 'x.safetensors', '--temprature', '1'), 2, /unknown option --temprature \(did you mean --temperature\?\)/);
    refused(await run('sample', 'x.safetensors', '--prompt'), 2, /expected a value after --prompt/);
    refused(await run('probe', '--json=1'), 2, /--json takes no value/);
    refused(await run('smaple'), 2, /unknown command 'smaple' \(did you mean sample\?\)/);
  });

  it('refuses number flags that are not decimal numbers in range', async () => {
    const out = join(dir, `p${int(0, 1e9)}`);
    for (const v of ['', ' ', '0x10', 'Infinity', 'NaN', '1e999', 'abc', '0.9', '-0.1']) {
      refused(await run('prepare', textPath, '--tokenizer', 'char', '--out', out, '--val-fraction', v), 1, /Expected a number >= 0 and <= 0.5 for --val-fraction but received/);
    }
    for (const v of ['0', '1.5', '2147483648', '-3', '1e3']) {
      refused(await run('prepare', textPath, '--tokenizer', 'char', '--out', out, '--shard-tokens', v), 1, /Expected an integer >= 1 and <= 2147483647 for --shard-tokens but received/);
    }
  });

  it('refuses bad config keys and values, and never writes Object.prototype', async () => {
    const config = join(dir, 'run.json');
    writeFileSync(config, JSON.stringify({ model: 'tiny', data: 'nowhere', batchSize: 2, seqLen: 8, steps: 2 }));
    refused(await run('train', config, '--__proto__.polluted', '1'), 2, /unknown option --__proto__.polluted/);
    expect(errorOf(() => loadRunConfig(config, [['__proto__.polluted', '1']])).message).toMatch(/--__proto__.polluted: expected a config key/);
    refused(await run('train', config, '--constructor.prototype', '1'), 1, /unknown key 'constructor'/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    refused(await run('train', config, '--batchSize', '1.5'), 1, /expected an integer in \[1, 1048576\] for 'batchSize' but received 1.5/);
    refused(await run('train', config, '--steps', '1e999'), 1, /expected an integer in \[1, 2147483647\] for 'steps'/);
    refused(await run('train', config, '--precision', 'fp16'), 1, /expected one of "bf16", "f32" for 'precision' but received "fp16"/);
    refused(await run('train', config, '--lr', '1e-3'), 1, /unknown key 'lr' .*\(did you mean optimizer\.lr\?\)/);
    refused(await run('dryrun', config, '--model', 'toString'), 1, /Expected one of .* for the model preset but received 'toString'/);
    refused(await run('dryrun', config, '--device', 'gpu0'), 1, /device/);
    writeFileSync(join(dir, 'proto.json'), '{"__proto__": {"x": 1}, "model": "tiny"}');
    expect(errorOf(() => loadRunConfig(join(dir, 'proto.json'))).message).toMatch(/unknown key '__proto__'/);
    expect(errorOf(() => loadRunConfig(5 as never)).message).toMatch(/loadRunConfig path/);
    expect(errorOf(() => loadRunConfig(config, [['steps']] as never)).message).toMatch(/loadRunConfig overrides/);
  });

  it('refuses damaged shards, configs and a data path that is a file, with exit code 1', async () => {
    const data = join(dir, `data${int(0, 1e9)}`);
    expect((await run('prepare', textPath, '--tokenizer', 'char', '--out', data, '--val-fraction', '0')).code).toBe(0);
    const shard = join(data, 'train_000000.bin');
    const bytes = readFileSync(shard);
    bytes[1024 + int(0, bytes.length - 1025)]! ^= 1 << int(0, 7);
    writeFileSync(shard, bytes);
    const config = join(dir, `c${int(0, 1e9)}.json`);
    writeFileSync(config, JSON.stringify({ model: { vocabSize: 64, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 16 }, data, batchSize: 2, seqLen: 8, steps: 2, device: 'cpu', checkpoint: { dir: join(dir, `ck${int(0, 1e9)}`), every: 1 } }));
    refused(await run('train', config), 1, /is not a valid token shard: the tokens' CRC-32 .* \(damaged tokens\) \[INVALID_ARGUMENT\]/);
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, '{"model": "tiny", "data": ');
    refused(await run('train', notJson), 1, /Could not read the run config .*bad\.json/);
    writeFileSync(config, JSON.stringify({ model: 'tiny', data: textPath, batchSize: 2, seqLen: 8, steps: 2 }));
    refused(await run('train', config), 1, /Expected a directory made by deepwell prepare for data but could not list/);
    refused(await run('sample', textPath), 1, /\[INVALID_ARGUMENT\]$/);
  });

  it('refuses argv and io that are not what main takes, with typed errors', async () => {
    for (const argv of [5, null, [1], ['train', null]]) {
      await expect(main(argv as never)).rejects.toMatchObject({ name: 'DeepwellError', code: 'INVALID_ARGUMENT' });
    }
    await expect(main(['probe'], {} as never)).rejects.toMatchObject({ name: 'DeepwellError' });
  });
});
