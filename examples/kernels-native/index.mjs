// examples/kernels-native: the native package on its own. Allocate device memory, copy bf16
// matrices in, run one GEMM through cuBLASLt (found at run time), time it with CUDA events, copy
// the result back and check a few entries against dot products computed here.
//   node index.mjs [M N K]      (default 4096 4096 4096)
import { bf16BitsToF32, f32ToBf16Bits } from '@deepwell/core';
import { DTYPE_CODE, EPILOGUE_CODE, Event, Stream, cudaBackend, cudaStatus, findLibrary, loadNative } from '@deepwell/kernels-native';

const [M, N, K] = (process.argv.length > 4 ? process.argv.slice(2, 5) : [4096, 4096, 4096]).map(Number);
const status = cudaStatus();
if (!status.available) {
  console.log(`CUDA is not available here: ${status.reason}. Nothing to run.`);
  process.exit(0);
}
const lt = findLibrary('cublasLt');
if (!lt.found) {
  console.log(`cuBLASLt was not found (tried ${lt.tried.length} places). Set DEEPWELL_CUBLASLT_PATH.`);
  process.exit(0);
}
console.log(`cuBLASLt ${lt.version} from ${lt.path}`);

const backend = cudaBackend(0);
const rand = (n) => Uint16Array.from({ length: n }, () => f32ToBf16Bits(Math.random() * 2 - 1));
const a = rand(M * K); // row-major [M, K]
const b = rand(K * N); // row-major [K, N]
const [da, db, dd] = [backend.alloc(a.byteLength), backend.alloc(b.byteLength), backend.alloc(M * N * 2)];
backend.write(da, a);
backend.write(db, b);
console.log(`device memory in use: ${(backend.memoryStats().inUse / 2 ** 20).toFixed(1)} MiB`);

// D[M, N] = A[M, K] · B[K, N] in bf16 with FP32 accumulation, through the typed entry point (its
// signature is the ABI table's, packages/kernels-native/abi/table.mjs): tensors as { base, offset,
// bytes }, and a workspace for cuBLASLt (a compiled step's plan gives one; here we allocate it).
// gemmLt(stream, dtype, transA, transB, M, N, K, batch, strideA, strideB, strideD, tf32,
//        a, b, d, epilogue, bias | null, aux | null, workspace | null)
const native = loadNative();
const stream = new Stream(0);
const ws = backend.alloc(32 << 20);
const t = (buf) => ({ base: buf.ptr, offset: 0, bytes: buf.bytes });
const gemm = () => native.gemmLt(stream.handle, DTYPE_CODE.bf16, 0, 0, M, N, K, 1, 0, 0, M * N, 0, t(da), t(db), t(dd), EPILOGUE_CODE.none, null, null, t(ws));
for (let i = 0; i < 3; i++) gemm(); // warm-up: the first call plans the GEMM
const [start, end] = [new Event(0), new Event(0)];
const reps = 10;
start.record(stream);
for (let i = 0; i < reps; i++) gemm();
end.record(stream);
end.synchronize();
const ms = end.elapsedSince(start) / reps;
console.log(`${M}×${N}×${K} bf16 GEMM: ${ms.toFixed(3)} ms, ${((2 * M * N * K) / (ms * 1e9)).toFixed(1)} TFLOP/s (mean of ${reps} after 3 warm-ups)`);

const d = new Uint16Array(M * N);
backend.read(dd, d);
let worst = 0;
for (let t = 0; t < 8; t++) {
  const i = Math.floor(Math.random() * M);
  const j = Math.floor(Math.random() * N);
  let want = 0;
  let mag = 0;
  for (let k = 0; k < K; k++) {
    const p = bf16BitsToF32(a[i * K + k]) * bf16BitsToF32(b[k * N + j]);
    want += p;
    mag += Math.abs(p);
  }
  worst = Math.max(worst, Math.abs(bf16BitsToF32(d[i * N + j]) - want) / (Math.abs(want) + mag * 2 ** -16));
}
console.log(`8 random entries against float64 dot products: worst relative error ${worst.toExponential(2)} (bf16 output: ~4e-3 expected)`);
for (const buf of [da, db, dd, ws]) backend.free(buf);
start.dispose();
end.dispose();
stream.dispose();
