// deepwell launch on the CPU: N processes with torchrun's variables and one job token, each line
// prefixed by its rank; arguments after the script passed through untouched; one failing rank stops
// the others at once (not after their own 30 s) and its exit code is the launch's; the ranks meet
// through distributedEnv and rendezvous as a real job would; bad usage is exit code 2.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-launch-'));
const script = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
};

async function run(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out, err };
}

describe('deepwell launch', () => {
  it('starts one process per GPU with torchrun\'s variables and one token, lines prefixed by rank, arguments passed through', async () => {
    const env = script('env.cjs', "const e=process.env;console.log(JSON.stringify({r:e.RANK,w:e.WORLD_SIZE,l:e.LOCAL_RANK,a:e.MASTER_ADDR,p:e.MASTER_PORT,t:e.DEEPWELL_JOB_TOKEN,argv:process.argv.slice(2)}));");
    const r = await run('launch', '--gpus', '3', env, '--lr', '0.1', 'x');
    expect(r.code).toBe(0);
    const seen = r.out.map((line) => {
      const m = /^\[(\d)\] (.*)$/.exec(line)!;
      return { rank: Number(m[1]), ...JSON.parse(m[2]!) };
    });
    expect(seen.map((s) => s.rank).sort()).toEqual([0, 1, 2]);
    for (const s of seen) {
      expect([s.r, s.l, s.w, s.a]).toEqual([String(s.rank), String(s.rank), '3', '127.0.0.1']);
      expect(s.argv).toEqual(['--lr', '0.1', 'x']);
    }
    expect(new Set(seen.map((s) => s.t)).size).toBe(1);
    expect(seen[0]!.t).toMatch(/^[0-9a-f]{32}$/);
    expect(Number(seen[0]!.p)).toBeGreaterThan(0);
  });

  it('one failing rank stops the others, and its exit code is the launch\'s', async () => {
    const s = script('fail.cjs', "if (process.env.RANK === '1') setTimeout(() => process.exit(7), 200); else setTimeout(() => {}, 30000);");
    const t0 = Date.now();
    const r = await run('launch', '--gpus', '3', s);
    expect(r.code).toBe(7);
    expect(r.err.join('\n')).toMatch(/rank 1 of 3 exited with code 7; the other ranks were stopped/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 30_000);

  it('the ranks meet through distributedEnv and rendezvous, as a job does', async () => {
    const dist = fileURLToPath(new URL('../../trainer/dist/index.js', import.meta.url));
    const s = script(
      'meet.mjs',
      `const { distributedEnv, rendezvous } = await import(${JSON.stringify(dist)});
const e = distributedEnv();
const payload = e.rank === 0 ? new TextEncoder().encode('id-' + e.token.slice(0, 8)) : undefined;
const got = await rendezvous({ rank: e.rank, worldSize: e.worldSize, masterAddr: e.masterAddr, masterPort: e.masterPort, token: e.token, payload, timeoutMs: 20000 });
console.log(e.launcher + ' ' + new TextDecoder().decode(got));`,
    );
    const r = await run('launch', '--gpus', '4', s);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out).toHaveLength(4);
    const payloads = new Set(r.out.map((l) => l.replace(/^\[\d\] /, '')));
    expect(payloads.size).toBe(1);
    expect([...payloads][0]).toMatch(/^torchrun id-[0-9a-f]{8}$/);
  }, 30_000);

  it('bad usage is exit code 2, naming what is wrong', async () => {
    expect((await run('launch', 'x.js')).err.join('\n')).toMatch(/expected --gpus/);
    expect((await run('launch', '--gpus', '2')).err.join('\n')).toMatch(/expected a script/);
    const bad = await run('launch', '--gpus', '0', 'x.js');
    expect(bad.code).toBe(2);
    expect(bad.err.join('\n')).toMatch(/integer from 1 to 64/);
    expect((await run('launch', '--gpu', '2', 'x.js')).err.join('\n')).toMatch(/unknown option --gpu \(did you mean --gpus\?\)/);
  });
});
