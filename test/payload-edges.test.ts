import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PAYLOAD_LIMITS, MAX_ENTRIES_PER_MESSAGE, MAX_KEY_LENGTH, parseTelemetryPayload, type PayloadLimits } from '../server/src/telemetry/payload.js';

/** The parser at its edges: exact reasons, boundaries, what is counted with and without limits. */
const parse = (text: string, limits?: Readonly<PayloadLimits>) => parseTelemetryPayload(Buffer.from(text), 1000, limits);
const reason = (text: string, limits?: Readonly<PayloadLimits>) => {
  const r = parse(text, limits);
  if (r.ok) throw new Error(`accepted: ${text}`);
  return r;
};

describe('exact reasons', () => {
  it('describes what it got instead of a value', () => {
    expect(reason('{"ts":true,"values":{"a":1}}').reason).toBe('"ts" must be a non-negative whole number of milliseconds, got boolean true');
    expect(reason('{"ts":{},"values":{"a":1}}').reason).toBe('"ts" must be a non-negative whole number of milliseconds, got an object');
    expect(reason('{"ts":null,"values":{"a":1}}').reason).toBe('"ts" must be a non-negative whole number of milliseconds, got null');
    expect(reason('{"ts":[],"values":{"a":1}}').reason).toBe('"ts" must be a non-negative whole number of milliseconds, got an array');
    expect(reason('{"ts":"short","values":{"a":1}}').reason).toBe('"ts" must be a non-negative whole number of milliseconds, got the string "short"');
    const long = 'y'.repeat(31);
    expect(reason(`{"ts":"${long}","values":{"a":1}}`).reason).toBe(`"ts" must be a non-negative whole number of milliseconds, got the string "${'y'.repeat(30)}…"`);
    expect(reason(`{"ts":"${'y'.repeat(30)}","values":{"a":1}}`).reason).toBe(`"ts" must be a non-negative whole number of milliseconds, got the string "${'y'.repeat(30)}"`);
    expect(reason('"text"').reason).toBe('expected a JSON object, got the string "text"');
    expect(reason('true').reason).toBe('expected a JSON object, got boolean true');
  });

  it('says where in an array and in values the problem is', () => {
    expect(reason('[{"a":1},{"":2}]').reason).toBe('empty key in [1]');
    expect(reason('{"ts":1,"values":{"":2}}').reason).toBe('empty key in .values');
    expect(reason('{"":2}').reason).toBe('empty key');
    expect(reason('[{"a":1},{}]').reason).toBe('no values in [1]: send at least one key');
    expect(reason('{}').reason).toBe('no values: send at least one key');
    expect(reason('[{"a":1},{"ts":1,"values":[]}]').reason).toBe('"values" at [1] must be a JSON object, got an array');
    expect(reason('{"ts":1,"values":null}').reason).toBe('"values" must be a JSON object, got null');
    expect(reason('[{"ts":1}]').reason).toBe('"ts" given without "values" at [0]: use {"ts": ms, "values": {...}}');
    expect(reason('[{"values":{"a":1}}]').reason).toBe('"values" given without "ts" at [0]');
    expect(reason('{"values":{"a":1},"x":1}').reason).toBe('unexpected key "x" beside "ts" and "values"');
    expect(reason('[{"ts":1,"values":{"a":1},"x":1}]').reason).toBe('unexpected key "x" beside "ts" and "values" at [0]');
    expect(reason('[1]').reason).toBe('expected a JSON object at [0], got number 1');
    expect(reason('{"a":1}x')).toMatchObject({ category: 'not_json', reason: expect.stringMatching(/^payload is not valid JSON: /) });
    expect(reason('[{"a":1},{"ts":1,"values":{"":1}}]')).toEqual({ ok: false, category: 'bad_shape', reason: 'empty key in [1].values' });
  });

  it('takes a key of the maximum length and refuses a longer one, naming its start', () => {
    const max = 'k'.repeat(MAX_KEY_LENGTH);
    expect(parse(`{"${max}":1}`).ok).toBe(true);
    expect(reason(`{"${max}k":1}`).reason).toBe(`key "${'k'.repeat(40)}…" is longer than ${MAX_KEY_LENGTH} characters`);
  });
});

describe('boundaries', () => {
  it('takes ts 0 and the largest safe integer, refuses one past it', () => {
    expect(parse('{"ts":0,"values":{"a":1}}')).toMatchObject({ ok: true, entries: [{ ts: 0 }] });
    expect(parse(`{"ts":${Number.MAX_SAFE_INTEGER},"values":{"a":1}}`)).toMatchObject({ ok: true, entries: [{ ts: Number.MAX_SAFE_INTEGER }] });
    expect(reason(`{"ts":${2 ** 53},"values":{"a":1}}`).reason).toMatch(/non-negative whole number/);
    expect(reason('{"ts":-1,"values":{"a":1}}').reason).toBe('"ts" must be a non-negative whole number of milliseconds, got number -1');
  });

  it('takes as many entries as allowed in one message, and refuses one more', () => {
    const entries = (n: number) => `[${Array.from({ length: n }, () => '{"a":1}').join(',')}]`;
    const ok = parse(entries(MAX_ENTRIES_PER_MESSAGE));
    expect(ok.ok && ok.entries.length).toBe(MAX_ENTRIES_PER_MESSAGE);
    expect(reason(entries(MAX_ENTRIES_PER_MESSAGE + 1)).reason).toBe(`payload array has ${MAX_ENTRIES_PER_MESSAGE + 1} items, more than ${MAX_ENTRIES_PER_MESSAGE}`);
  });

  it('returns a too-complex item of an array as too_complex, with its reason', () => {
    const limits = { maxDepth: 3, maxKeys: 100 };
    expect(reason('[{"a":1},{"v":{"w":{"x":1}}}]', limits)).toEqual({
      ok: false, category: 'too_complex', reason: 'value of "v" in [1] is nested more than 3 levels deep (objects and arrays, counted from the payload\'s outermost brackets)',
    });
    expect(reason('[{"a":1,"b":2},{"c":3}]', { maxDepth: 3, maxKeys: 2 })).toEqual({
      ok: false, category: 'too_complex', reason: 'payload has more than 2 keys (keys and array items of all values, nested ones included)',
    });
  });
});

describe('keys counted', () => {
  it('counts only top-level keys without limits, and never walks nested values then', () => {
    expect(parse('{"a":{"b":1,"c":{"d":2}},"e":1}')).toMatchObject({ ok: true, keys: 2 });
    expect(parse(`{"a":{"b":${'{"c":'.repeat(100)}1${'}'.repeat(100)}}}`)).toMatchObject({ ok: true, keys: 1 });
  });

  it('counts every nested key and array item with limits', () => {
    expect(parse('{"a":{"b":1,"c":{"d":2}},"e":1}', DEFAULT_PAYLOAD_LIMITS)).toMatchObject({ ok: true, keys: 5 });
    expect(parse('{"a":{"list":[1,null,"x",{"k":1},[2,3]]}}', DEFAULT_PAYLOAD_LIMITS)).toMatchObject({ ok: true, keys: 1 + 1 + 5 + 1 + 2 });
  });

  it('refuses top-level keys past the limit, and takes exactly the limit', () => {
    const limits = { maxDepth: 16, maxKeys: 3 };
    expect(parse('{"a":1,"b":2,"c":3}', limits)).toMatchObject({ ok: true, keys: 3 });
    expect(reason('{"a":1,"b":2,"c":3,"d":4}', limits).category).toBe('too_complex');
    expect(parse('{"a":{"b":1,"c":2}}', limits)).toMatchObject({ ok: true, keys: 3 });
    expect(reason('{"a":{"b":1,"c":2,"d":3}}', limits).category).toBe('too_complex');
    expect(parse('{"a":{"b":[1]}}', limits)).toMatchObject({ ok: true, keys: 3 });
    expect(reason('{"a":{"b":[1,2]}}', limits).category).toBe('too_complex');
  });

  it('counts nesting inside arrays, and skips null and scalars in them', () => {
    // Level 1 payload, 2 the value, 3 the array, 4 the object in it.
    expect(parse('{"v":{"a":[{"x":1}]}}', { maxDepth: 4, maxKeys: 100 }).ok).toBe(true);
    expect(reason('{"v":{"a":[{"x":1}]}}', { maxDepth: 3, maxKeys: 100 }).category).toBe('too_complex');
    expect(reason('{"v":{"a":[[[1]]]}}', { maxDepth: 4, maxKeys: 100 }).category).toBe('too_complex');
    expect(parse('{"v":{"a":[null,1,"s",true]}}', { maxDepth: 3, maxKeys: 100 })).toMatchObject({ ok: true, keys: 1 + 1 + 4 });
    expect(parse('{"v":{"a":null,"b":2}}', { maxDepth: 2, maxKeys: 100 })).toMatchObject({ ok: true, keys: 3 });
    expect(reason('{"v":{"a":{}}}', { maxDepth: 2, maxKeys: 100 }).category).toBe('too_complex');
  });

  it('refuses an object value that itself sits past the depth limit', () => {
    expect(parse('{"v":{"a":1}}', { maxDepth: 2, maxKeys: 100 }).ok).toBe(true);
    expect(reason('{"v":{"a":1}}', { maxDepth: 1, maxKeys: 100 })).toMatchObject({ category: 'too_complex', reason: expect.stringMatching(/^value of "v" is nested more than 1 levels deep/) });
    expect(reason('{"ts":1,"values":{"v":{"a":1}}}', { maxDepth: 2, maxKeys: 100 })).toMatchObject({ category: 'too_complex', reason: expect.stringMatching(/^value of "v" in \.values is nested/) });
  });

  it('stops at the first key too many, before looking deeper, and at exactly the limit goes on', () => {
    // An array past the key limit, with nesting past the depth limit after it: the keys say no first.
    expect(reason('{"v":{"a":[1,2,3,4,5,[[[[[1]]]]]]}}', { maxDepth: 5, maxKeys: 3 }).reason).toMatch(/more than 3 keys/);
    // At exactly the limit the walk goes on, and finds the nesting too deep.
    expect(reason('{"v":{"a":[[1]]}}', { maxDepth: 3, maxKeys: 2 }).reason).toMatch(/^value of "v" is nested more than 3 levels/);
    expect(reason('{"v":{"a":{}}}', { maxDepth: 2, maxKeys: 1 }).reason).toMatch(/^value of "v" is nested more than 2 levels/);
  });

  it('says what it found first when it stops, before any later key of the message is looked at', () => {
    // The empty key comes after the value too complex: that value is the reason, not the empty key.
    expect(reason('{"v":{"a":[1,2,3]},"":1}', { maxDepth: 16, maxKeys: 2 })).toMatchObject({ category: 'too_complex', reason: expect.stringMatching(/more than 2 keys/) });
    expect(reason('{"v":{"a":1,"b":2,"c":3},"":1}', { maxDepth: 16, maxKeys: 2 })).toMatchObject({ category: 'too_complex', reason: expect.stringMatching(/more than 2 keys/) });
    // An array's items are counted at once, before any of them is looked into.
    expect(reason('{"v":{"a":[[1],2,3,4]}}', { maxDepth: 3, maxKeys: 3 }).reason).toMatch(/more than 3 keys/);
  });

  it('keeps no part of a refused payload alive after the walk stopped early', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const realParse = JSON.parse;
    let waiting: WeakRef<object> | undefined;
    JSON.parse = ((text: string) => {
      const json = realParse(text) as { v: { a: object; b: object; c: object } };
      waiting = new WeakRef(json.v.a); // still on the walk's stack when the walk stops at c
      return json;
    }) as typeof JSON.parse;
    try {
      expect(parse('{"v":{"a":{"x":1},"b":{"y":1},"c":{"z":1,"w":2}}}', { maxDepth: 4, maxKeys: 4 })).toMatchObject({ ok: false, category: 'too_complex' });
    } finally {
      JSON.parse = realParse;
    }
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(waiting!.deref()).toBeUndefined();
  });

  it('starts each message from zero, after a walk that stopped early too', () => {
    // Stopped with siblings still waiting to be walked.
    expect(parse('{"v":{"a":{"x":1},"b":{"y":1},"c":{"z":1}}}', { maxDepth: 4, maxKeys: 3 })).toMatchObject({ ok: false, category: 'too_complex' });
    expect(parse('{"v":{"a":[{"x":1},{"y":1},{"z":1}]}}', { maxDepth: 4, maxKeys: 4 })).toMatchObject({ ok: false, category: 'too_complex' });
    const limits = { maxDepth: 4, maxKeys: 5 };
    expect(parse('{"v":{"a":[[[[1]]]]}}', limits).ok).toBe(false);
    expect(parse('{"v":{"a":1,"b":2,"c":3}}', limits)).toMatchObject({ ok: true, keys: 4 });
    expect(parse('[{"a":1,"b":2},{"c":3,"d":4,"e":5}]', limits)).toMatchObject({ ok: true, keys: 5 });
  });
});
