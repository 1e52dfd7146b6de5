/**
 * The rendezvous of a distributed job over TCP, as llm.c's TCP mode and NCCL_COMM_ID do it: rank 0
 * listens at (masterAddr, masterPort); every other rank connects, says who it is and shows the job's
 * token; once all worldSize - 1 peers are in, rank 0 hands each the same payload (the NCCL unique id,
 * 128 bytes) and waits for every peer to acknowledge it. Every rank returns the payload.
 *
 * Failures end the wait with a typed error instead of hanging:
 *   - a peer that never comes: rank 0 fails with TIMEOUT naming the missing ranks; a peer that cannot
 *     reach rank 0 retries (rank 0 may start later) and fails with TIMEOUT at the same deadline;
 *   - a wrong token, a different world size, a rank out of range or taken: rank 0 refuses that
 *     connection (the refused process fails with INVALID_ARGUMENT saying why) and keeps waiting for
 *     the right one, so a stray process of another job cannot join;
 *   - a peer that goes away before acknowledging: rank 0 fails with PEER_FAILED naming it; rank 0
 *     going away: the peers fail with PEER_FAILED.
 * Messages are lines of JSON, at most 64 KiB each; the token is compared in constant time (as hashes).
 * The connection is closed once the payload is acknowledged: the collectives run over NCCL, not here.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { DeepwellError, checkInteger, checkKeys, describe } from '@deepwell/core';

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  /** Rank 0's host (it listens on every interface) and port (0 on rank 0: any free port, see onListening). */
  masterAddr: string;
  masterPort: number;
  /** The job's token: peers showing another are refused. */
  token: string;
  /** How long to wait for the whole rendezvous, in ms (default 300 000). */
  timeoutMs?: number;
  /** Rank 0: the bytes every rank receives (at most 65 536; default none). Others: ignored. */
  payload?: Uint8Array;
  /** Rank 0: called with the port it listens on, once it does. */
  onListening?: (port: number) => void;
}

const KEYS = ['rank', 'worldSize', 'masterAddr', 'masterPort', 'token', 'timeoutMs', 'payload', 'onListening'] as const;
const MAX_LINE = 64 * 1024;
const digest = (s: string) => createHash('sha256').update(s).digest();

function check(o: RendezvousOptions): Required<Omit<RendezvousOptions, 'onListening'>> & Pick<RendezvousOptions, 'onListening'> {
  if (typeof o !== 'object' || o === null) throw new DeepwellError('INVALID_ARGUMENT', `Expected rendezvous options ({ rank, worldSize, masterAddr, masterPort, token }) but received ${describe(o)}`);
  checkKeys(o, KEYS, 'rendezvous');
  const worldSize = checkInteger(o.worldSize, 'worldSize of rendezvous', 1, 65536);
  const rank = checkInteger(o.rank, 'rank of rendezvous', 0, worldSize - 1);
  const masterPort = checkInteger(o.masterPort, 'masterPort of rendezvous', rank === 0 ? 0 : 1, 65535);
  const timeoutMs = checkInteger(o.timeoutMs ?? 300_000, 'timeoutMs of rendezvous', 1, 86_400_000);
  if (typeof o.masterAddr !== 'string' || o.masterAddr.trim() === '') throw new DeepwellError('INVALID_ARGUMENT', `Expected a host name or address for masterAddr of rendezvous but received ${describe(o.masterAddr)}`);
  if (typeof o.token !== 'string' || o.token.length > 4096) throw new DeepwellError('INVALID_ARGUMENT', `Expected a string of at most 4096 characters for token of rendezvous but received ${typeof o.token === 'string' ? `${o.token.length} characters` : describe(o.token)}`);
  const payload = o.payload ?? new Uint8Array(0);
  if (!(payload instanceof Uint8Array) || payload.length > 65536) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Uint8Array of at most 65536 bytes for payload of rendezvous but received ${payload instanceof Uint8Array ? `${payload.length} bytes` : describe(payload)}`);
  if (o.onListening !== undefined && typeof o.onListening !== 'function') throw new DeepwellError('INVALID_ARGUMENT', 'Expected a function for onListening of rendezvous');
  return { rank, worldSize, masterAddr: o.masterAddr.trim(), masterPort, token: o.token, timeoutMs, payload, onListening: o.onListening };
}

/** Splits a socket's data into JSON lines; a line past MAX_LINE or not JSON calls onBad. */
function lines(socket: Socket, onLine: (msg: Record<string, unknown>) => void, onBad: (why: string) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        return onBad('a message that is not JSON');
      }
      if (typeof msg !== 'object' || msg === null) return onBad('a message that is not a JSON object');
      onLine(msg as Record<string, unknown>);
    }
    if (buf.length > MAX_LINE) onBad(`a message longer than ${MAX_LINE} bytes`);
  });
}

const send = (s: Socket, msg: Record<string, unknown>) => s.write(`${JSON.stringify(msg)}\n`);

/** Meets the job's other processes (see the file's comment); resolves with rank 0's payload. */
export function rendezvous(options: RendezvousOptions): Promise<Uint8Array> {
  const o = check(options);
  if (o.worldSize === 1) return Promise.resolve(Uint8Array.from(o.payload));
  return o.rank === 0 ? serve(o) : join(o);
}

function serve(o: ReturnType<typeof check>): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const want = digest(o.token);
    const peers = new Map<number, Socket>(); // rank -> its socket, once its hello was accepted
    const acked = new Set<number>();
    let done = false;
    const finish = (err: DeepwellError | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.close();
      for (const s of peers.values()) (err ? s.destroy() : s.end());
      if (err) reject(err);
      else resolve(Uint8Array.from(o.payload));
    };
    const where = () => `rank 0 at ${o.masterAddr}:${(server.address() as { port?: number } | null)?.port ?? o.masterPort}`;
    const timer = setTimeout(() => {
      const missing = Array.from({ length: o.worldSize - 1 }, (_, i) => i + 1).filter((r) => !peers.has(r));
      const text = missing.length > 0 ? `ranks ${missing.join(', ')} of ${o.worldSize} did not arrive` : `ranks ${[...peers.keys()].filter((r) => !acked.has(r)).join(', ')} did not acknowledge the payload`;
      finish(new DeepwellError('TIMEOUT', `rendezvous: ${text} within ${o.timeoutMs} ms (${where()})`));
    }, o.timeoutMs);
    const server = createServer((socket) => {
      let rank = -1;
      const refuse = (why: string) => {
        send(socket, { refused: why });
        socket.end();
      };
      lines(
        socket,
        (msg) => {
          if (done) return;
          if (rank < 0) {
            const r = msg.rank;
            const shown = typeof msg.token === 'string' ? digest(msg.token) : null;
            if (!shown || !timingSafeEqual(shown, want)) return refuse('its job token differs from rank 0\'s');
            if (msg.worldSize !== o.worldSize) return refuse(`its world size ${describe(msg.worldSize)} differs from rank 0's ${o.worldSize}`);
            if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r >= o.worldSize) return refuse(`its rank ${describe(r)} is not in [1, ${o.worldSize})`);
            if (peers.has(r)) return refuse(`rank ${r} has already joined`);
            rank = r;
            peers.set(r, socket);
            if (peers.size === o.worldSize - 1) {
              const payload = Buffer.from(o.payload).toString('base64');
              for (const s of peers.values()) send(s, { payload });
            }
          } else if (msg.ack === rank) {
            acked.add(rank);
            if (acked.size === o.worldSize - 1) finish(null);
          }
        },
        (why) => (rank < 0 ? refuse(`it sent ${why}`) : finish(new DeepwellError('PEER_FAILED', `rendezvous: rank ${rank} sent ${why} (${where()})`))),
      );
      socket.on('error', () => {}); // the close below reports it
      socket.on('close', () => {
        if (!done && rank >= 0 && !acked.has(rank)) finish(new DeepwellError('PEER_FAILED', `rendezvous: rank ${rank} went away before acknowledging the payload (${where()})`));
      });
    });
    server.on('error', (e: NodeJS.ErrnoException) => finish(new DeepwellError('PEER_FAILED', `rendezvous: rank 0 could not listen on port ${o.masterPort}: ${e.code ?? e.message}`, { cause: e })));
    server.listen(o.masterPort, () => o.onListening?.((server.address() as { port: number }).port));
  });
}

function join(o: ReturnType<typeof check>): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + o.timeoutMs;
    let done = false;
    let socket: Socket | null = null;
    let retry: NodeJS.Timeout | null = null;
    const finish = (err: DeepwellError | null, payload?: Uint8Array) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (retry) clearTimeout(retry);
      if (err) {
        socket?.destroy();
        reject(err);
      } else resolve(payload!);
    };
    const at = `rank 0 at ${o.masterAddr}:${o.masterPort}`;
    const timer = setTimeout(() => finish(new DeepwellError('TIMEOUT', `rendezvous: rank ${o.rank} did not complete the rendezvous with ${at} within ${o.timeoutMs} ms${socket ? '' : ' (it could not reach it)'}`)), o.timeoutMs);
    let attempt = 0;
    const tryConnect = () => {
      if (done) return;
      const s = connect({ host: o.masterAddr, port: o.masterPort });
      let connected = false;
      s.on('connect', () => {
        connected = true;
        socket = s;
        send(s, { rank: o.rank, worldSize: o.worldSize, token: o.token });
      });
      lines(
        s,
        (msg) => {
          if (typeof msg.refused === 'string') finish(new DeepwellError('INVALID_ARGUMENT', `rendezvous: ${at} refused rank ${o.rank}: ${msg.refused}`));
          else if (typeof msg.payload === 'string') {
            send(s, { ack: o.rank });
            s.end();
            finish(null, new Uint8Array(Buffer.from(msg.payload, 'base64')));
          }
        },
        (why) => finish(new DeepwellError('PEER_FAILED', `rendezvous: ${at} sent ${why}`)),
      );
      s.on('error', () => {}); // 'close' follows
      s.on('close', () => {
        if (done) return;
        if (connected) return finish(new DeepwellError('PEER_FAILED', `rendezvous: ${at} closed the connection before handing out the payload (did rank 0 fail?)`));
        // Not reachable yet (rank 0 may start later): retry with backoff until the deadline.
        const wait = Math.min(1000, 50 * 2 ** attempt++, Math.max(0, deadline - Date.now()));
        retry = setTimeout(tryConnect, wait);
      });
    };
    tryConnect();
  });
}
