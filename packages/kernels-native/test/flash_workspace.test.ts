// flashBackwardWorkspace (native/attention/flash.cu): the bytes of flashBackward's workspace, the one
// definition of its size, answered without a GPU. Each answer is checked against the layout that
// flash.cu and flash_bwd_sm90.cuh's scratchLayout document, computed here from that description.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/index.js';
import { errorOf } from './helpers.js';

const n = loadNative();

const align256 = (x: number) => Math.ceil(x / 256) * 256;

/**
 * The documented workspace: delta, f32 [B, H, Sq]; then, 256-byte aligned and on compute capability
 * 9.0 only (with keys to attend to), the Hopper backward's scratch: the dQ accumulator f32
 * [B, H, SqPad, D], lse2 and delta f32 [B, H, SqPad], a semaphore (int) per query block
 * [B, H, nQB], each piece 256-byte aligned; SqPad is Sq rounded up to the query block, 64 rows at
 * D = 128 and 128 at D = 64.
 */
function documented(B: number, H: number, Sq: number, Sk: number, D: number, hopper: boolean): number {
  const delta = align256(B * H * Sq * 4);
  if (!hopper || B * H * Sq * Sk === 0) return delta;
  const BM = D === 128 ? 64 : 128;
  const nQB = Math.ceil(Sq / BM);
  const SqPad = nQB * BM;
  const acc = align256(B * H * SqPad * D * 4);
  const lse2 = align256(B * H * SqPad * 4);
  const deltaPadded = align256(B * H * SqPad * 4);
  const semaphores = align256(B * H * nQB * 4);
  return delta + acc + lse2 + deltaPadded + semaphores;
}

// [B, H, Hkv, Sq, Sk, D]: tiny, GQA, MQA, partial query blocks, Sq != Sk, GPT-2's and long shapes.
const shapes: [number, number, number, number, number, number][] = [
  [1, 1, 1, 1, 1, 64],
  [1, 1, 1, 1, 1, 128],
  [2, 4, 1, 77, 77, 64],
  [2, 4, 1, 77, 77, 128],
  [1, 8, 2, 1000, 1000, 128],
  [1, 4, 4, 333, 1000, 64],
  [3, 5, 5, 129, 7, 128],
  [16, 12, 12, 1024, 1024, 64],
  [4, 16, 16, 4096, 4096, 128],
  [1, 32, 8, 16384, 16384, 128],
];

describe('flashBackwardWorkspace (no GPU needed)', () => {
  it('on compute capability 9.0: delta, then the Hopper backward scratch as documented', () => {
    for (const [B, H, Hkv, Sq, Sk, D] of shapes) {
      expect(n.flashBackwardWorkspace(B, H, Hkv, Sq, Sk, D, 9, 0), `${[B, H, Hkv, Sq, Sk, D]}`).toBe(documented(B, H, Sq, Sk, D, true));
    }
    // One by hand: delta 4 -> 256; SqPad 128: the accumulator 128·64·4 = 32768, lse2 and delta 512
    // each, one semaphore 4 -> 256.
    expect(n.flashBackwardWorkspace(1, 1, 1, 1, 1, 64, 9, 0)).toBe(256 + 32768 + 512 + 512 + 256);
  });

  it('elsewhere (8.0, 8.6, 8.9, 10.0, 12.0): delta only, 256-byte aligned', () => {
    for (const [major, minor] of [[8, 0], [8, 6], [8, 9], [10, 0], [12, 0]] as const) {
      for (const [B, H, Hkv, Sq, Sk, D] of shapes) {
        expect(n.flashBackwardWorkspace(B, H, Hkv, Sq, Sk, D, major, minor), `${[B, H, Hkv, Sq, Sk, D]} on ${major}.${minor}`).toBe(documented(B, H, Sq, Sk, D, false));
      }
    }
    expect(n.flashBackwardWorkspace(1, 1, 1, 1, 1, 64, 8, 0)).toBe(256);
  });

  it('empty calls: no rows, no bytes; no keys, no Hopper scratch', () => {
    expect(n.flashBackwardWorkspace(0, 4, 4, 100, 100, 64, 9, 0)).toBe(0);
    expect(n.flashBackwardWorkspace(2, 4, 4, 0, 100, 128, 9, 0)).toBe(0);
    expect(n.flashBackwardWorkspace(2, 4, 4, 100, 0, 128, 9, 0)).toBe(align256(2 * 4 * 100 * 4));
  });

  it('rejects bad arguments with typed errors', () => {
    const call = (...a: number[]) => () => n.flashBackwardWorkspace(...(a as [number, number, number, number, number, number, number, number]));
    expect(errorOf(call(1, 4, 4, 64, 64, 40, 9, 0)).message).toBe('Expected a head dimension of 64 or 128 for flashBackwardWorkspace but received 40');
    expect(errorOf(call(1, 4, 4, 64, 64, 512, 9, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(call(1, 3, 2, 64, 64, 64, 9, 0)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(call(1, 4, 0, 64, 64, 64, 9, 0)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(call(65536, 1, 1, 64, 64, 64, 9, 0)).message).toBe('Expected Sq, Sk < 2^31 and H, B <= 65535 for flashBackwardWorkspace');
    expect(errorOf(call(1, 1, 1, 2 ** 31, 64, 64, 9, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(call(1, 1, 1, 64, 64, 64, 7, 5)).message).toBe(
      'Expected a compute capability of 8.0 or newer for flashBackwardWorkspace (the flash kernels run from sm_80) but received 7.5',
    );
    expect(errorOf(call(1, 1, 1, 64, 64, 64, 9, 10)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(call(1, 1, 1, 64, 64, 64, 100, 0)).code).toBe('INVALID_ARGUMENT');
    // Sizes each in range whose workspace would pass 2^53 - 1 bytes.
    expect(errorOf(call(65535, 65535, 1, 2 ** 31 - 1, 1, 128, 9, 0)).message).toMatch(/^Expected at most 2\^53 - 1 elements for flashBackwardWorkspace/);
    expect(errorOf(call(4096, 4096, 1, 2 ** 21, 1, 64, 9, 0)).message).toMatch(/^Expected a workspace of at most 2\^53 - 1 bytes for flashBackwardWorkspace/);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 60]) expect(errorOf(call(bad, 1, 1, 64, 64, 64, 9, 0)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(call(1, 1, 1, 64, 64, 64, 9)).code).toBe('INVALID_ARGUMENT');
  });
});
