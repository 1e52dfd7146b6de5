/**
 * CRC-32 (IEEE, zlib's), one implementation for every checksum the trainer writes (token shards'
 * headers, safetensors' `deepwell.crc32`): node:zlib's where it has one (Node ≥ 20.15), else a table.
 */
import * as zlib from 'node:zlib';

let TABLE: Uint32Array | null = null;
/** CRC-32 in JavaScript, continuing from `value`: for Node versions whose zlib lacks crc32. */
export function crc32js(data: Uint8Array, value = 0): number {
  if (!TABLE) {
    TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      TABLE[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const nativeCrc = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
/** CRC-32 of `data`, continuing from `value`. (An empty array over an empty buffer reaches zlib as a null pointer, for which zlib returns 0, not `value`.) */
export function crc32(data: Uint8Array, value = 0): number {
  if (data.length === 0) return value >>> 0;
  return (nativeCrc ? nativeCrc(data, value) : crc32js(data, value)) >>> 0;
}
