// On the GPU host, for scripts/comm-check.sh: one NCCL step at a time, each printed with the time it
// took, so that a hang names its step. Usage: node scripts/comm-steps.mjs <id|init|collectives|timeout2>
//   id           ncclUniqueId()
//   init         the id, then Communicator.create (world size 1)
//   collectives  init, then an in-place all-reduce of random data on a stream, checked, and destroy
//   timeout2     a world of 2 whose second rank never comes: TIMEOUT within timeoutMs (5 s)
import { Communicator, Stream, cudaBackend, findLibrary, ncclUniqueId } from '../packages/kernels-native/dist/index.js';

const what = process.argv[2] ?? 'collectives';
const t0 = performance.now();
const say = (s) => console.log(`[${((performance.now() - t0) / 1000).toFixed(3)} s] ${s}`);
const lib = findLibrary('nccl');
say(`nccl: ${lib.found ? lib.path : 'not found'}`);
say('ncclUniqueId ...');
const id = ncclUniqueId();
say(`ncclUniqueId done (${id.slice(0, 8).join(',')}...)`);
if (what === 'id') process.exit(0);
const world = what === 'timeout2' ? 2 : 1;
say(`Communicator.create rank 0 of ${world} ...`);
let comm;
try {
  comm = Communicator.create({ rank: 0, worldSize: world, id, timeoutMs: what === 'timeout2' ? 5_000 : 60_000 });
} catch (e) {
  say(`Communicator.create threw ${e.code}: ${e.message}`);
  process.exit(what === 'timeout2' && e.code === 'TIMEOUT' ? 0 : 1);
}
say('Communicator.create done');
if (what === 'init' || what === 'timeout2') process.exit(what === 'init' ? 0 : 1);
const be = cudaBackend(0);
const stream = new Stream(0);
const n = 4096;
const data = Float32Array.from({ length: n }, () => Math.random() - 0.5);
const buf = be.alloc(n * 4);
be.write(buf, data);
say('allReduce ...');
comm.allReduce(stream.handle, 'f32', { base: buf.ptr, offset: 0, bytes: n * 4 }, { base: buf.ptr, offset: 0, bytes: n * 4 }, n, 'sum');
say('allReduce enqueued; synchronizing ...');
stream.synchronize();
const out = new Float32Array(n);
be.read(buf, out);
say(`allReduce done: ${out.every((v, i) => Object.is(v, data[i])) ? 'equal to its input' : 'DIFFERS from its input'}`);
comm.destroy();
say('destroyed');
