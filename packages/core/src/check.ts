/** Option checks shared by every package, all worded "Expected X for Y but received Z". */
import { DeepwellError, invalid } from './errors.js';

export function checkInteger(value: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof min !== 'number' || typeof max !== 'number' || Number.isNaN(min) || Number.isNaN(max)) invalid('numbers for the bounds', 'checkInteger min and max', [min, max]);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    invalid(`an integer ${range}`, what, value);
  }
  return value;
}

export function checkShape(shape: unknown, what = 'shape'): readonly number[] {
  if (typeof what !== 'string') invalid('a string', 'checkShape what', what);
  if (!Array.isArray(shape)) invalid('an array of non-negative integers', what, shape);
  shape.forEach((d, i) => checkInteger(d, `${what}[${i}]`));
  const numel = shape.reduce((a: number, b: number) => a * b, 1);
  if (!Number.isSafeInteger(numel)) invalid('a shape whose element count is a safe integer', what, shape);
  return Object.freeze([...shape]);
}

export function checkOneOf<T extends string>(value: unknown, allowed: readonly T[], what: string): T {
  checkStrings(allowed, 'the allowed values of checkOneOf');
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    invalid(`one of ${allowed.map((a) => `'${a}'`).join(', ')}`, what, value);
  }
  return value as T;
}

export function checkFunction(value: unknown, what: string): (...args: never[]) => unknown {
  if (typeof value !== 'function') invalid('a function', what, value);
  return value as (...args: never[]) => unknown;
}

export interface NumberRange {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
  /** Values must be greater than this. */
  above?: number;
  /** Values must be less than this. */
  below?: number;
}

/** A finite number in the range: NaN and ±Infinity are always refused. */
export function checkNumber(value: unknown, what: string, range: NumberRange = {}): number {
  if (typeof range !== 'object' || range === null) invalid('a range object ({ min, max, above, below })', 'the range of checkNumber', range);
  const { min, max, above, below } = range;
  for (const [k, v] of Object.entries({ min, max, above, below })) if (v !== undefined && typeof v !== 'number') invalid('a number', `checkNumber's range.${k}`, v);
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (min === undefined || value >= min) &&
    (max === undefined || value <= max) &&
    (above === undefined || value > above) &&
    (below === undefined || value < below);
  if (!ok) {
    const parts = [min !== undefined ? `>= ${min}` : '', above !== undefined ? `> ${above}` : '', max !== undefined ? `<= ${max}` : '', below !== undefined ? `< ${below}` : ''].filter(Boolean);
    invalid(`a finite number${parts.length ? ` ${parts.join(' and ')}` : ''}`, what, value);
  }
  return value as number;
}

/** Levenshtein distance, for "did you mean" in errors. */
export function editDistance(a: string, b: string): number {
  if (typeof a !== 'string' || typeof b !== 'string') invalid('two strings', 'editDistance', typeof a !== 'string' ? a : b);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

export interface KeyCheckOptions {
  /** Another library's name for a key → what to say instead ("learningRate" → "lr"). */
  aliases?: Readonly<Record<string, string>>;
  /** A whole hint for a key, said in place of "did you mean". */
  hints?: Readonly<Record<string, string>>;
  /** The word after `what`: 'option' (default) or 'key'. */
  noun?: string;
}

/**
 * Refuses an unknown key of an options object (a misspelling must not pass silently in plain
 * JavaScript), naming it with a near key, another library's name for one, or a hint. Keys whose
 * value is undefined are let through (`{ ...defaults, x: undefined }`).
 */
export function checkKeys(obj: unknown, known: readonly string[], what: string, options: KeyCheckOptions = {}): void {
  if (typeof what !== 'string') invalid('a string', 'checkKeys what', what);
  checkStrings(known, 'the known keys of checkKeys');
  if (typeof options !== 'object' || options === null) invalid('an options object ({ aliases, hints, noun })', 'checkKeys', options);
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) invalid('an options object', what, obj);
  for (const key of Object.keys(obj)) {
    if (known.includes(key) || (obj as Record<string, unknown>)[key] === undefined) continue;
    const lower = key.toLowerCase();
    const limit = key.length <= 3 ? 1 : 2;
    const near = known.filter((k) => editDistance(k.toLowerCase(), lower) <= limit || (lower.length >= 4 && k.toLowerCase().startsWith(lower)));
    const alias = options.aliases?.[key];
    const hint = options.hints?.[key] ?? (alias ? `did you mean ${alias}?` : near.length ? `did you mean ${near.join(' or ')}?` : '');
    const noun = options.noun ?? 'option';
    throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${known.join(', ')} for ${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what} ${noun} but received '${key}'${hint ? ` (${hint})` : ''}`, {
      details: { key, known: [...known] },
    });
  }
}

function checkStrings(list: unknown, what: string): void {
  if (!Array.isArray(list) || !list.every((k) => typeof k === 'string')) invalid('an array of strings', what, list);
}
