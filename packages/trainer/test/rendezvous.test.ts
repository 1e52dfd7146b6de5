// The distributed job's environment and its TCP rendezvous (src/distributed/), on the CPU over
// loopback: torchrun's and SLURM's variables read and checked; ranks meeting in one process and in
// several, in either start order; a wrong token refused while the job completes; a peer that never
// comes, a peer killed mid-handshake and a rank 0 that goes away, each a typed error within the
// timeout, never a hang. Fresh random payloads every run.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { distributedEnv, firstSlurmHost, rendezvous, type RendezvousOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const asyncError = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a rejection');
};

/** Rank 0 listening on a free port: its promise and the port. */
async function startRank0(worldSize: number, token: string, payload: Uint8Array, timeoutMs = 20_000): Promise<{ done: Promise<Uint8Array>; port: number }> {
  let resolvePort: (p: number) => void = () => {};
  const listening = new Promise<number>((ok) => (resolvePort = ok));
  const done = rendezvous({ rank: 0, worldSize, masterAddr: '127.0.0.1', masterPort: 0, token, payload, timeoutMs, onListening: (p) => resolvePort(p) });
  done.catch(() => {}); // the test awaits it; keep an early failure from being reported as unhandled
  return { done, port: await listening };
}
const peer = (rank: number, worldSize: number, port: number, token: string, timeoutMs = 20_000) => rendezvous({ rank, worldSize, masterAddr: '127.0.0.1', masterPort: port, token, timeoutMs });

describe('distributedEnv', () => {
  it('reads torchrun, SLURM and deepwell launch variables, and is a job of one with none', () => {
    expect(distributedEnv({})).toEqual({ launcher: 'none', rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: 29500, token: '' });
    expect(distributedEnv({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '3', MASTER_ADDR: 'host-a', MASTER_PORT: '29400', TORCHELASTIC_RUN_ID: 'run7' })).toEqual({
      launcher: 'torchrun', rank: 3, worldSize: 8, localRank: 3, masterAddr: 'host-a', masterPort: 29400, token: 'run7',
    });
    const slurm = distributedEnv({ SLURM_PROCID: '5', SLURM_NTASKS: '16', SLURM_LOCALID: '1', SLURM_JOB_NODELIST: 'gpu[007-010,12],login1', SLURM_JOB_ID: '123456' });
    expect(slurm).toEqual({ launcher: 'slurm', rank: 5, worldSize: 16, localRank: 1, masterAddr: 'gpu007', masterPort: 20000 + (123456 % 20000), token: '123456' });
    // MASTER_ADDR / MASTER_PORT and DEEPWELL_JOB_TOKEN win over what SLURM implies.
    expect(distributedEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'n1', MASTER_ADDR: 'head', MASTER_PORT: '4000', DEEPWELL_JOB_TOKEN: 'tok', SLURM_JOB_ID: '9' })).toMatchObject({ masterAddr: 'head', masterPort: 4000, token: 'tok' });
    expect(['node01', 'a-b', 'x12', 'n7'].map((l, i) => firstSlurmHost(['node[01-04]', 'a-b', 'x[12]', 'n7,n8'][i]!))).toEqual(['node01', 'a-b', 'x12', 'n7']);
  });

  it('refuses bad values, naming the variable', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ RANK: '4', WORLD_SIZE: '4', MASTER_ADDR: 'h', MASTER_PORT: '1' }, /\[0, 3\] for the environment variable RANK but received "4"/],
      [{ RANK: '0', WORLD_SIZE: '2.5' }, /WORLD_SIZE but received "2.5"/],
      [{ RANK: '-1', WORLD_SIZE: '2' }, /RANK but received "-1"/],
      [{ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' }, /MASTER_ADDR/],
      [{ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h' }, /MASTER_PORT/],
      [{ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '70000' }, /MASTER_PORT but received "70000"/],
      [{ SLURM_PROCID: '0', SLURM_NTASKS: '4' }, /SLURM_JOB_NODELIST or MASTER_ADDR/],
      [{ SLURM_PROCID: '0', SLURM_NTASKS: '4', SLURM_JOB_NODELIST: 'n[a-b]' }, /SLURM node list/],
      [{ WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }, /RANK but received nothing \(unset\)/],
    ];
    for (const [env, msg] of bad) {
      const e = errorOf(() => distributedEnv(env));
      expect(e.code, JSON.stringify(env)).toBe('INVALID_ARGUMENT');
      expect(e.message, JSON.stringify(env)).toMatch(msg);
    }
  });
});

describe('rendezvous on loopback', () => {
  it('every rank receives rank 0\'s payload, peers started before or after rank 0', async () => {
    for (const worldSize of [2, 5]) {
      const token = randomBytes(8).toString('hex');
      const payload = new Uint8Array(randomBytes(128)); // an NCCL unique id's size
      const { done, port } = await startRank0(worldSize, token, payload);
      const peers = Array.from({ length: worldSize - 1 }, (_, i) => peer(i + 1, worldSize, port, token));
      for (const got of await Promise.all([done, ...peers])) expect(Buffer.from(got).equals(Buffer.from(payload))).toBe(true);
    }
    // Peers first: they retry until rank 0 listens (on a port picked free beforehand).
    const free = await new Promise<number>((ok) => {
      const s: Server = createServer().listen(0, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => ok(p));
      });
    });
    const payload = new Uint8Array(randomBytes(32));
    const early = [1, 2].map((r) => peer(r, 3, free, 'job'));
    await new Promise((ok) => setTimeout(ok, 300));
    const rank0 = rendezvous({ rank: 0, worldSize: 3, masterAddr: '127.0.0.1', masterPort: free, token: 'job', payload, timeoutMs: 20_000 });
    for (const got of await Promise.all([rank0, ...early])) expect(Array.from(got)).toEqual(Array.from(payload));
    // A job of one needs no network.
    expect(Array.from(await rendezvous({ rank: 0, worldSize: 1, masterAddr: 'nowhere', masterPort: 1, token: '', payload: Uint8Array.of(7) }))).toEqual([7]);
  });

  it('refuses a process with another job\'s token, a taken rank or another world size, and completes with the right ones', async () => {
    const payload = new Uint8Array(randomBytes(16));
    const { done, port } = await startRank0(3, 'right', payload);
    const impostor = await asyncError(peer(1, 3, port, 'wrong'));
    expect(impostor.code).toBe('INVALID_ARGUMENT');
    expect(impostor.message).toMatch(/refused rank 1: its job token differs/);
    const otherWorld = await asyncError(peer(1, 4, port, 'right'));
    expect(otherWorld.message).toMatch(/world size 4 differs from rank 0's 3/);
    const first = peer(1, 3, port, 'right');
    await new Promise((ok) => setTimeout(ok, 200));
    const twice = await asyncError(peer(1, 3, port, 'right'));
    expect(twice.message).toMatch(/rank 1 has already joined/);
    const results = await Promise.all([done, first, peer(2, 3, port, 'right')]);
    for (const got of results) expect(Array.from(got)).toEqual(Array.from(payload));
  });

  it('a peer that never comes: rank 0 fails with TIMEOUT naming it, and the waiting peer hears of it', async () => {
    const { done, port } = await startRank0(3, 't', new Uint8Array(4), 600);
    const waiting = peer(1, 3, port, 't', 20_000);
    const [e0, e1] = await Promise.all([asyncError(done), asyncError(waiting)]);
    expect(e0.code).toBe('TIMEOUT');
    expect(e0.message).toMatch(/ranks 2 of 3 did not arrive within 600 ms/);
    expect(e1.code).toBe('PEER_FAILED');
    // Nobody listening: a peer fails with TIMEOUT at its deadline.
    const alone = await asyncError(peer(1, 2, port, 't', 400));
    expect(alone.code).toBe('TIMEOUT');
    expect(alone.message).toMatch(/could not reach it/);
  });

  it('a peer killed mid-handshake (kill -9): rank 0 fails with PEER_FAILED naming it', async () => {
    const { done, port } = await startRank0(3, 'k', new Uint8Array(4));
    // A separate process says hello as rank 2, then dies before the payload comes (rank 1 never joins).
    const script = `const s=require('net').connect(${port},'127.0.0.1',()=>{s.write(JSON.stringify({rank:2,worldSize:3,token:'k'})+'\\n');setTimeout(()=>process.kill(process.pid,'SIGKILL'),150);});`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const e = await asyncError(done);
    expect(e.code).toBe('PEER_FAILED');
    expect(e.message).toMatch(/rank 2 went away before acknowledging the payload/);
    await new Promise((ok) => child.once('exit', ok));
  });

  it('rank 0 going away: the peers fail with PEER_FAILED', async () => {
    // A stand-in rank 0 that accepts and then closes.
    const server = createServer((s) => s.destroy());
    const port = await new Promise<number>((ok) => server.listen(0, () => ok((server.address() as { port: number }).port)));
    const e = await asyncError(peer(1, 2, port, 'x', 5000));
    expect(e.code).toBe('PEER_FAILED');
    expect(e.message).toMatch(/closed the connection before handing out the payload/);
    // And one that sends garbage.
    const garbage = createServer((s) => s.write('not json\n'));
    const gport = await new Promise<number>((ok) => garbage.listen(0, () => ok((garbage.address() as { port: number }).port)));
    const g = await asyncError(peer(1, 2, gport, 'x', 5000));
    expect(g.message).toMatch(/a message that is not JSON/);
    server.close();
    garbage.close();
    void connect;
  });

  it('several processes meet through the built package', async () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const payload = randomBytes(64).toString('hex');
    const worldSize = 4;
    const { done, port } = await startRank0(worldSize, 'procs', new Uint8Array(Buffer.from(payload, 'hex')));
    const script = (rank: number) =>
      `import(${JSON.stringify(dist)}).then(({rendezvous})=>rendezvous({rank:${rank},worldSize:${worldSize},masterAddr:'127.0.0.1',masterPort:${port},token:'procs',timeoutMs:20000})).then((p)=>{process.stdout.write(Buffer.from(p).toString('hex'))},(e)=>{process.stdout.write('ERR '+e.code+' '+e.message);process.exitCode=1})`;
    const outs = await Promise.all(
      Array.from({ length: worldSize - 1 }, (_, i) =>
        new Promise<string>((ok) => {
          const c = spawn(process.execPath, ['--input-type=module', '-e', script(i + 1)], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          c.stdout.on('data', (d) => (out += d));
          c.on('exit', () => ok(out));
        }),
      ),
    );
    await done;
    expect(outs).toEqual(Array(worldSize - 1).fill(payload));
  }, 30_000);

  it('refuses bad options before touching the network', () => {
    const base: RendezvousOptions = { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 0, token: 't' };
    const cases: [Partial<RendezvousOptions> & Record<string, unknown>, RegExp][] = [
      [{ rank: 2 }, /rank of rendezvous/],
      [{ worldSize: 0 }, /worldSize of rendezvous/],
      [{ rank: 1, masterPort: 0 }, /masterPort of rendezvous/],
      [{ masterAddr: '' }, /masterAddr of rendezvous/],
      [{ payload: new Uint8Array(65537) }, /at most 65536 bytes/],
      [{ timeoutMs: 0 }, /timeoutMs of rendezvous/],
      [{ tokn: 'x' } as never, /tokn/],
    ];
    for (const [over, msg] of cases) {
      const e = errorOf(() => rendezvous({ ...base, ...over } as RendezvousOptions));
      expect(e.code, JSON.stringify(Object.keys(over))).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(msg);
    }
  });
});
