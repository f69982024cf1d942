/**
 * Device payloads, as devices send them (ThingsBoard's three forms):
 *   {"temp": 21.5, "on": true}                    values at server time
 *   {"ts": 1700000000000, "values": {...}}        values at the device's time
 *   [ either of the above, ... ]
 * Values: number, boolean, string or JSON object. This parser runs per message, so it returns a
 * rejection reason instead of throwing.
 */

export type TelemetryValue = number | boolean | string | Record<string, unknown>;

export interface TelemetryEntry {
  ts: number;
  values: Record<string, TelemetryValue>;
}

export type ParseResult =
  | { ok: true; entries: TelemetryEntry[] }
  | { ok: false; reason: string; category: RejectionCategory };

export type RejectionCategory = 'too_large' | 'not_json' | 'bad_shape' | 'unknown_topic';

export const MAX_KEY_LENGTH = 255;
export const MAX_ENTRIES_PER_MESSAGE = 10_000;

const shape = (reason: string): ParseResult => ({ ok: false, reason, category: 'bad_shape' });

export function parseTelemetryPayload(payload: Buffer, serverTs: number): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `payload is not valid JSON: ${(err as Error).message}`, category: 'not_json' };
  }
  if (Array.isArray(json)) {
    if (json.length === 0) return shape('payload is an empty array');
    if (json.length > MAX_ENTRIES_PER_MESSAGE) return shape(`payload array has ${json.length} items, more than ${MAX_ENTRIES_PER_MESSAGE}`);
    const entries: TelemetryEntry[] = [];
    for (let i = 0; i < json.length; i++) {
      const entry = parseEntry(json[i], serverTs, `[${i}]`);
      if (typeof entry === 'string') return shape(entry);
      entries.push(entry);
    }
    return { ok: true, entries };
  }
  const entry = parseEntry(json, serverTs, '');
  return typeof entry === 'string' ? shape(entry) : { ok: true, entries: [entry] };
}

/** One `{...}` or `{"ts","values"}` item; a string is the reason it is wrong. */
function parseEntry(item: unknown, serverTs: number, where: string): TelemetryEntry | string {
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
    const reason = checkValues(item.values, `${where}.values`);
    return reason ?? { ts, values: item.values as Record<string, TelemetryValue> };
  }
  const reason = checkValues(item, where);
  return reason ?? { ts: serverTs, values: item as Record<string, TelemetryValue> };
}

function checkValues(values: Record<string, unknown>, where: string): string | undefined {
  let count = 0;
  for (const key in values) {
    count++;
    if (key.length === 0) return `empty key${where ? ` in ${where}` : ''}`;
    if (key.length > MAX_KEY_LENGTH) return `key "${key.slice(0, 40)}…" is longer than ${MAX_KEY_LENGTH} characters`;
    const v = values[key];
    const t = typeof v;
    if (t === 'number' || t === 'boolean' || t === 'string') continue;
    if (isPlainObject(v)) continue;
    return `value of "${key}"${where ? ` in ${where}` : ''} must be a number, boolean, string or object, got ${describe(v)}`;
  }
  if (count === 0) return `no values${where ? ` in ${where}` : ''}: send at least one key`;
  return undefined;
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
