/**
 * Device payloads, as devices send them (ThingsBoard's three forms):
 *   {"temp": 21.5, "on": true}                    values at server time
 *   {"ts": 1700000000000, "values": {...}}        values at the device's time
 *   [ either of the above, ... ]
 * Values: number, boolean, string, or JSON (an object, an array or null, stored as JSON as
 * ThingsBoard stores them). This parser runs per message, so it returns a rejection reason
 * instead of throwing.
 */

export type TelemetryValue = number | boolean | string | null | unknown[] | Record<string, unknown>;

export interface TelemetryEntry {
  ts: number;
  values: Record<string, TelemetryValue>;
}

export interface ParsedTelemetry {
  ok: true;
  entries: TelemetryEntry[];
  /**
   * Keys counted in the values: with limits, every key and array item, nested ones included (what
   * the parsed values cost on the heap grows with it); without, the top-level keys only.
   */
  keys: number;
}

export type ParseResult = ParsedTelemetry | { ok: false; reason: string; category: RejectionCategory };

export type RejectionCategory = 'too_large' | 'not_json' | 'bad_shape' | 'unknown_topic' | 'too_complex' | 'too_many_keys';

export const MAX_KEY_LENGTH = 255;
export const MAX_ENTRIES_PER_MESSAGE = 10_000;

/**
 * How complex a payload ingest takes. Its parsed values go to code that recurses over them
 * (JSON.stringify in storage, socket.io's hasBinary in the live push), and they are kept on the
 * heap for a while: nesting and the number of keys are what bound both.
 */
export interface PayloadLimits {
  /** Levels of objects and arrays, counted from the payload's outermost brackets. */
  maxDepth: number;
  /** Keys and array items in all values of a message, nested ones included. */
  maxKeys: number;
}

export const DEFAULT_MAX_PAYLOAD_DEPTH = 16;
export const DEFAULT_MAX_PAYLOAD_KEYS = 1000;
export const DEFAULT_PAYLOAD_LIMITS: Readonly<PayloadLimits> = Object.freeze({ maxDepth: DEFAULT_MAX_PAYLOAD_DEPTH, maxKeys: DEFAULT_MAX_PAYLOAD_KEYS });

/** A rejection of another category than bad_shape, returned as a value (this runs per message, so nothing throws). */
class Rejection {
  constructor(readonly reason: string, readonly category: RejectionCategory) {}
}

const shape = (reason: string): ParseResult => ({ ok: false, reason, category: 'bad_shape' });

// The parse is synchronous and never re-entered, so its running count of keys lives here rather
// than in an object allocated per message.
let keysCounted = 0;

/**
 * Parses and validates a payload. `limits` are ingest's: records already in the log are parsed
 * again without them (storage, rules), since they were accepted under the limits of their time.
 */
export function parseTelemetryPayload(payload: Buffer, serverTs: number, limits?: Readonly<PayloadLimits>): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `payload is not valid JSON: ${(err as Error).message}`, category: 'not_json' };
  }
  keysCounted = 0;
  if (Array.isArray(json)) {
    if (json.length === 0) return shape('payload is an empty array');
    if (json.length > MAX_ENTRIES_PER_MESSAGE) return shape(`payload array has ${json.length} items, more than ${MAX_ENTRIES_PER_MESSAGE}`);
    const entries: TelemetryEntry[] = [];
    for (let i = 0; i < json.length; i++) {
      const entry = parseEntry(json[i], serverTs, `[${i}]`, 2, limits);
      if (typeof entry === 'string') return shape(entry);
      if (entry instanceof Rejection) return { ok: false, reason: entry.reason, category: entry.category };
      entries.push(entry);
    }
    return { ok: true, entries, keys: keysCounted };
  }
  const entry = parseEntry(json, serverTs, '', 1, limits);
  if (typeof entry === 'string') return shape(entry);
  if (entry instanceof Rejection) return { ok: false, reason: entry.reason, category: entry.category };
  return { ok: true, entries: [entry], keys: keysCounted };
}

/**
 * One `{...}` or `{"ts","values"}` item, `depth` levels deep in the payload; a string is the
 * reason its shape is wrong, a Rejection that it is too complex.
 */
function parseEntry(item: unknown, serverTs: number, where: string, depth: number, limits: Readonly<PayloadLimits> | undefined): TelemetryEntry | string | Rejection {
  const at = where === '' ? '' : ` at ${where}`;
  if (!isPlainObject(item)) return `expected a JSON object${at}, got ${describe(item)}`;
  if ('values' in item || 'ts' in item) {
    for (const k of Object.keys(item)) {
      if (k !== 'ts' && k !== 'values') return `unexpected key "${k}" beside "ts" and "values"${at}`;
    }
    if (!('ts' in item)) return `"values" given without "ts"${at}`;
    if (!('values' in item)) return `"ts" given without "values"${at}: use {"ts": ms, "values": {...}}`;
    const ts = item.ts;
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
      return `"ts"${at} must be a non-negative whole number of milliseconds, got ${describe(ts)}`;
    }
    if (!isPlainObject(item.values)) return `"values"${at} must be a JSON object, got ${describe(item.values)}`;
    const reason = checkValues(item.values, `${where}.values`, depth + 1, limits);
    return reason ?? { ts, values: item.values as Record<string, TelemetryValue> };
  }
  const reason = checkValues(item, where, depth, limits);
  return reason ?? { ts: serverTs, values: item as Record<string, TelemetryValue> };
}

/** The values object of an entry, itself `depth` levels deep. */
function checkValues(values: Record<string, unknown>, where: string, depth: number, limits: Readonly<PayloadLimits> | undefined): string | Rejection | undefined {
  let count = 0;
  for (const key in values) {
    count++;
    if (key.length === 0) return `empty key${where ? ` in ${where}` : ''}`;
    if (key.length > MAX_KEY_LENGTH) return `key "${key.slice(0, 40)}…" is longer than ${MAX_KEY_LENGTH} characters`;
    // JSON gives a number, boolean, string, null, object or array: each is a value. Only objects
    // and arrays have anything nested, so a flat message costs no walk at all.
    const v = values[key];
    if (limits && typeof v === 'object' && v !== null) {
      const problem = walkNested(v, depth + 1, limits);
      if (problem === 'too_many_keys') return tooManyKeys(limits);
      if (problem === 'too_deep') {
        return new Rejection(`value of "${key}"${where ? ` in ${where}` : ''} is nested more than ${limits.maxDepth} levels deep (objects and arrays, counted from the payload's outermost brackets)`, 'too_complex');
      }
    }
  }
  if (count === 0) return `no values${where ? ` in ${where}` : ''}: send at least one key`;
  keysCounted += count;
  if (limits && keysCounted > limits.maxKeys) return tooManyKeys(limits);
  return undefined;
}

const tooManyKeys = (limits: Readonly<PayloadLimits>) => new Rejection(
  `payload has more than ${limits.maxKeys} keys (keys and array items of all values, nested ones included)`, 'too_complex');

// The walk's stack, kept between messages: walking allocates nothing per message. Each slot is
// cleared after use so that it keeps no payload alive.
const walkStack: (object | undefined)[] = [];
const walkDepths: number[] = [];

/**
 * Counts the keys and array items inside `root` (which sits `depth` levels deep) into
 * keysCounted; says whether it nests deeper than the limit or the count passes it. Iterative: a
 * payload of 25,000 nested arrays is walked as easily as a flat one, and it stops at the first
 * level or key too many, so a hostile payload costs no more than a legitimate one.
 */
function walkNested(root: object, depth: number, limits: Readonly<PayloadLimits>): 'too_deep' | 'too_many_keys' | undefined {
  const { maxDepth, maxKeys } = limits;
  if (depth > maxDepth) return 'too_deep';
  let sp = 0;
  walkStack[sp] = root;
  walkDepths[sp++] = depth;
  let problem: 'too_deep' | 'too_many_keys' | undefined;
  walk: while (sp > 0) {
    const node = walkStack[--sp]!;
    walkStack[sp] = undefined;
    const childDepth = walkDepths[sp]! + 1;
    if (Array.isArray(node)) {
      keysCounted += node.length;
      if (keysCounted > maxKeys) { problem = 'too_many_keys'; break; }
      for (let i = 0; i < node.length; i++) {
        const child: unknown = node[i];
        if (typeof child !== 'object' || child === null) continue;
        if (childDepth > maxDepth) { problem = 'too_deep'; break walk; }
        walkStack[sp] = child;
        walkDepths[sp++] = childDepth;
      }
    } else {
      const obj = node as Record<string, unknown>;
      for (const key in obj) {
        if (++keysCounted > maxKeys) { problem = 'too_many_keys'; break walk; }
        const child = obj[key];
        if (typeof child !== 'object' || child === null) continue;
        if (childDepth > maxDepth) { problem = 'too_deep'; break walk; }
        walkStack[sp] = child;
        walkDepths[sp++] = childDepth;
      }
    }
  }
  while (sp > 0) walkStack[--sp] = undefined;
  return problem;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 30 ? `${v.slice(0, 30)}…` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
