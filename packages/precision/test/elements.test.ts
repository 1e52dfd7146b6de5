// The element codecs against a brute-force oracle: every code of a format decoded from the
// specification's formula, and for each input the nearest such value (ties to the even mantissa)
// found by search. Every bf16 bit pattern goes through each codec, saturating and not.
import { bf16BitsToF32 } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, E8M0_NAN, decodeE8m0, decodeElement, encodeE8m0, encodeElement, type ElementFormat } from '../src/index.js';

/** The value of a code straight from the format's definition (independent of the codec). */
function specValue(f: ElementFormat, code: number): number {
  const sign = code >> (f.bits - 1) ? -1 : 1;
  const E = (code >> f.manBits) & ((1 << f.expBits) - 1);
  const M = code & ((1 << f.manBits) - 1);
  if (f.name === 'e4m3' && E === 15 && M === 7) return NaN;
  if (f.name === 'e5m2' && E === 31) return M === 0 ? sign * Infinity : NaN;
  const frac = E === 0 ? M / 2 ** f.manBits : 1 + M / 2 ** f.manBits;
  return sign * frac * 2 ** ((E === 0 ? 1 : E) - f.bias);
}

/** The oracle: nearest finite code by search; ties to the even code; overflow per the mode. */
function oracle(f: ElementFormat, x: number, saturate: boolean): number | 'nan' {
  if (Number.isNaN(x)) return 'nan';
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  const pos: { v: number; c: number }[] = [];
  for (let c = 0; c < 1 << (f.bits - 1); c++) {
    const v = specValue(f, c);
    if (Number.isFinite(v)) pos.push({ v, c });
  }
  const max = Math.max(...pos.map((p) => p.v));
  // Past max the format "would go on" with the spacing of its top binade: one virtual value.
  const virtual = max + 2 ** (f.emax - f.manBits);
  const maxCode = pos.find((p) => p.v === max)!.c;
  // (Distances are exact below the virtual value; above it the search would lose them to rounding.)
  let best: { v: number; c: number } | null = a >= virtual ? { v: virtual, c: -1 } : null;
  for (const p of a >= virtual ? [] : [...pos, { v: virtual, c: -1 }]) {
    if (!best || Math.abs(a - p.v) < Math.abs(a - best.v) || (Math.abs(a - p.v) === Math.abs(a - best.v) && (p.c === -1 ? (maxCode + 1) % 2 === 0 : p.c % 2 === 0))) best = p;
  }
  let code: number;
  if (a > max && (saturate || f.name === 'e2m1')) code = maxCode;
  else if (best!.c === -1 || a === Infinity) {
    if (saturate || f.name === 'e2m1') code = maxCode;
    else if (f.name === 'e5m2') code = 0x7c;
    else return 'nan';
  } else code = best!.c;
  return (neg ? 1 << (f.bits - 1) : 0) | code;
}

const isNanCode = (f: ElementFormat, c: number) => Number.isNaN(specValue(f, c));

describe('element codecs', () => {
  for (const f of Object.values(ELEMENTS)) {
    it(`${f.name}: decodes every code as the specification defines it, and encodes it back`, () => {
      for (let c = 0; c < 1 << f.bits; c++) {
        const want = specValue(f, c);
        const got = decodeElement(f, c);
        expect(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)), `code ${c}`).toBe(true);
        if (Number.isFinite(want)) expect(encodeElement(f, want), `code ${c}`).toBe(c);
      }
      expect(decodeElement(f, (1 << (f.bits - 1)) - 1 - (f.hasNaN ? (f.name === 'e5m2' ? 4 : 1) : 0))).toBe(f.max);
    });

    for (const saturate of [true, false]) {
      it(`${f.name}: rounds every bf16 value as the search does (${saturate ? 'saturating' : 'overflowing'})`, () => {
        let checked = 0;
        for (let bits = 0; bits < 1 << 16; bits++) {
          const x = bf16BitsToF32(bits);
          const want = oracle(f, x, saturate);
          const got = encodeElement(f, x, { saturate });
          if (want === 'nan') {
            if (f.hasNaN) expect(isNanCode(f, got), `bf16 0x${bits.toString(16)} (${x})`).toBe(true);
          } else if (got !== want) {
            expect(got, `bf16 0x${bits.toString(16)} (${x}) -> code`).toBe(want);
          }
          checked++;
        }
        expect(checked).toBe(65536);
      });
    }
  }

  it('rounds ties to even at the top: E4M3 464 stays 448, E5M2 61440 overflows to Inf', () => {
    const e4 = ELEMENTS.e4m3;
    const e5 = ELEMENTS.e5m2;
    expect(decodeElement(e4, encodeElement(e4, 464, { saturate: false }))).toBe(448);
    expect(Number.isNaN(decodeElement(e4, encodeElement(e4, 464.0001, { saturate: false })))).toBe(true);
    expect(decodeElement(e5, encodeElement(e5, 61440, { saturate: false }))).toBe(Infinity);
    expect(decodeElement(e5, encodeElement(e5, 61439.99, { saturate: false }))).toBe(57344);
    expect(decodeElement(e4, encodeElement(e4, -Infinity))).toBe(-448);
    expect(decodeElement(ELEMENTS.e2m1, encodeElement(ELEMENTS.e2m1, 5))).toBe(4); // tie 4|6 -> even (4)
    expect(Object.is(decodeElement(ELEMENTS.e2m1, encodeElement(ELEMENTS.e2m1, -0.2)), -0)).toBe(true);
  });

  it('E8M0: 2^(code − 127), 0xFF is NaN', () => {
    for (let e = -127; e <= 127; e++) expect(decodeE8m0(encodeE8m0(e))).toBe(2 ** e);
    expect(encodeE8m0(128)).toBe(E8M0_NAN);
    expect(encodeE8m0(0.5)).toBe(E8M0_NAN);
    expect(Number.isNaN(decodeE8m0(0xff))).toBe(true);
  });
});
