import { describe, expect, it } from 'vitest';
import { DEFAULT_PAYLOAD_LIMITS, parseTelemetryPayload } from '../server/src/telemetry/payload.js';

/** Ingest's depth and key limits (issue 16), at their edges: what passes, what does not and why. */
const parse = (text: string, limits = DEFAULT_PAYLOAD_LIMITS) => parseTelemetryPayload(Buffer.from(text), 1000, limits);
const nested = (levels: number) => `${'{"d":'.repeat(levels)}1${'}'.repeat(levels)}`;

describe('payload depth', () => {
  it('counts levels from the outermost brackets, in each of the three forms', () => {
    // Flat form: the payload is level 1, a value's object level 2.
    expect(parse(`{"v":${nested(15)}}`).ok).toBe(true);
    expect(parse(`{"v":${nested(16)}}`)).toMatchObject({ ok: false, category: 'too_complex', reason: expect.stringMatching(/value of "v" is nested more than 16 levels deep/) });
    // {ts, values}: one level more.
    expect(parse(`{"ts":1,"values":{"v":${nested(14)}}}`).ok).toBe(true);
    expect(parse(`{"ts":1,"values":{"v":${nested(15)}}}`)).toMatchObject({ ok: false, category: 'too_complex' });
    // An array of entries: one more again.
    expect(parse(`[{"ts":1,"values":{"v":${nested(13)}}}]`).ok).toBe(true);
    expect(parse(`[{"ts":1,"values":{"v":${nested(14)}}}]`)).toMatchObject({ ok: false, category: 'too_complex', reason: expect.stringMatching(/in \[0\]\.values/) });
  });

  it('walks arrays too, without recursion: 100,000 nested arrays are refused without a stack overflow, at level 17', () => {
    const deep = `{"v":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
    // A recursive walk would overflow the stack here; this one stops at level 17.
    expect(parse(deep)).toMatchObject({ ok: false, category: 'too_complex', reason: expect.stringMatching(/nested more than 16 levels/) });
  });

  it('is not checked without limits (records already in the log are parsed again as they are)', () => {
    expect(parseTelemetryPayload(Buffer.from(`{"v":${nested(50)}}`), 1000).ok).toBe(true);
  });
});

describe('payload keys', () => {
  const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));

  it('counts the keys of all values, nested ones included, and array items; not ts and values', () => {
    expect(parse(JSON.stringify({ ts: 1, values: keys(1000) }))).toMatchObject({ ok: true, keys: 1000 });
    expect(parse(JSON.stringify({ ts: 1, values: keys(1001) }))).toMatchObject({ ok: false, category: 'too_complex', reason: expect.stringMatching(/more than 1000 keys/) });
    expect(parse(JSON.stringify({ a: { b: keys(998) } }))).toMatchObject({ ok: true, keys: 1000 });
    expect(parse(JSON.stringify({ a: { b: keys(999) } }))).toMatchObject({ ok: false, category: 'too_complex' });
    expect(parse(JSON.stringify({ a: { list: Array.from({ length: 998 }, () => 0) } }))).toMatchObject({ ok: true, keys: 1000 });
    expect(parse(JSON.stringify({ a: { list: Array.from({ length: 999 }, () => ({})) } }))).toMatchObject({ ok: false, category: 'too_complex' });
  });

  it('adds up over the entries of a message', () => {
    const entries = Array.from({ length: 10 }, (_, i) => ({ ts: i, values: keys(100) }));
    expect(parse(JSON.stringify(entries))).toMatchObject({ ok: true, keys: 1000 });
    entries.push({ ts: 11, values: keys(1) });
    expect(parse(JSON.stringify(entries))).toMatchObject({ ok: false, category: 'too_complex' });
  });

  it('leaves nothing behind between messages: a refused message does not count against the next', () => {
    expect(parse(JSON.stringify({ a: { b: keys(2000) } })).ok).toBe(false);
    expect(parse(JSON.stringify({ a: 1 }))).toMatchObject({ ok: true, keys: 1 });
  });
});
