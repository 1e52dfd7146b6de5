/**
 * The CUDA candidates of kv_cache_write and sdpa_decode (native/attention/decode.cu): the caches
 * [B, Hkv, Tmax, D] whole; q, k and v read where they lie in the packed qkv [B, n, H + 2·Hkv, D] (each
 * tensor argument moved to its first head by a byte offset, with the token stride (H + 2·Hkv)·D); the
 * positions read on the device, so a captured step serves every position.
 */
import { dtypeInfo, type DTypeName } from '@deepwell/core';
import { dtypeCode, registerCuda, type DevArg } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { decodeDims, type DecodeDims } from '../ops/decode.js';
import { resolveScale } from '../ops/sdpa.js';

/** `arg` moved forward by `heads` heads of D elements of `dtype`. */
function atHead(arg: DevArg, heads: number, D: number, dtype: DTypeName): DevArg {
  const bytes = (heads * D * dtypeInfo(dtype).bits) / 8;
  return { base: arg.base, offset: arg.offset + bytes, bytes: arg.bytes - bytes };
}

const limits = (dtype: DTypeName, n: DecodeDims): true | string => {
  if (n.D > 256) return `takes head dimensions up to 256, not ${n.D}`;
  if (n.B > 65535 || n.H > 65535 || n.n > 65535) return `takes B, heads and tokens a step up to 65535, not ${n.B}, ${n.H} and ${n.n}`;
  return ['f32', 'bf16', 'f16'].includes(dtype) ? true : `computes on f32, bf16 or f16, not ${dtype}`;
};

registerCuda<KernelParams>({
  op: 'kv_cache_write',
  name: 'kv_cache_write_cuda',
  needs: ['kvCacheWrite'],
  supports: (p) => limits(p.inTypes[2]!.dtype, decodeDims(p.op, p.inTypes[2]!, p.inTypes[0]!, p.inTypes[1]!, p.inTypes[3]!, p.attrs)),
  run: (c, e) => {
    const [kcache, vcache, qkv, pos] = c.inputs;
    const [kout, vout] = c.outputs;
    const dt = c.inTypes[2]!.dtype;
    const n = decodeDims(c.op, c.inTypes[2]!, c.inTypes[0]!, c.inTypes[1]!, c.inTypes[3]!, c.attrs);
    const stride = (n.H + 2 * n.Hkv) * n.D;
    e.kvCacheWrite(c.stream, dtypeCode(c.inTypes[2]!), n.B, n.Hkv, n.n, n.Tmax, n.D, stride, kcache!, vcache!, atHead(qkv!, n.H, n.D, dt), atHead(qkv!, n.H + n.Hkv, n.D, dt), pos!, kout!, vout!);
  },
});

registerCuda<KernelParams>({
  op: 'sdpa_decode',
  name: 'sdpa_decode_cuda',
  needs: ['sdpaDecode'],
  supports: (p) => limits(p.inTypes[0]!.dtype, decodeDims(p.op, p.inTypes[0]!, p.inTypes[1]!, p.inTypes[2]!, p.inTypes[3]!, p.attrs)),
  run: (c, e) => {
    const [qkv, kcache, vcache, pos] = c.inputs;
    const [out] = c.outputs;
    const n = decodeDims(c.op, c.inTypes[0]!, c.inTypes[1]!, c.inTypes[2]!, c.inTypes[3]!, c.attrs);
    const scale = resolveScale(c.op, c.attrs, n.D);
    e.sdpaDecode(c.stream, dtypeCode(c.inTypes[0]!), n.B, n.H, n.Hkv, n.n, n.Tmax, n.D, scale, (n.H + 2 * n.Hkv) * n.D, qkv!, kcache!, vcache!, pos!, out!);
  },
});
