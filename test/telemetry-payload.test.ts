import { describe, expect, it } from 'vitest';
import { parseTelemetryPayload } from '../server/src/telemetry/payload.js';

const parse = (text: string) => parseTelemetryPayload(Buffer.from(text), 1000);

describe('device payload forms', () => {
  it('takes flat values at server time', () => {
    expect(parse('{"temp":21.5,"on":true,"mode":"auto","pos":{"lat":1,"lon":2}}')).toEqual({
      ok: true, entries: [{ ts: 1000, values: { temp: 21.5, on: true, mode: 'auto', pos: { lat: 1, lon: 2 } } }], keys: 4,
    });
  });

  it('takes {ts, values} at the device time', () => {
    expect(parse('{"ts":1700000000000,"values":{"temp":1}}')).toEqual({ ok: true, entries: [{ ts: 1700000000000, values: { temp: 1 } }], keys: 1 });
  });

  it('takes null and arrays as values, as ThingsBoard stores them (JSON)', () => {
    expect(parse('{"gone":null,"list":[1,"a",{"b":2},null],"empty":[],"ok":true}')).toEqual({
      ok: true, entries: [{ ts: 1000, values: { gone: null, list: [1, 'a', { b: 2 }, null], empty: [], ok: true } }], keys: 4,
    });
    expect(parse('[{"ts":5,"values":{"a":null}},{"b":[[1]]}]')).toEqual({ ok: true, entries: [{ ts: 5, values: { a: null } }, { ts: 1000, values: { b: [[1]] } }], keys: 2 });
  });

  it('counts array items and nests arrays against the limits as it does objects', () => {
    const limits = { maxDepth: 4, maxKeys: 6 };
    const limited = (text: string) => parseTelemetryPayload(Buffer.from(text), 1000, limits);
    // 2 keys, 3 items of "list", 1 key inside the item object: 6.
    expect(limited('{"gone":null,"list":[1,{"b":2},null]}')).toMatchObject({ ok: true, keys: 6 });
    expect(limited('{"gone":null,"list":[1,{"b":2},null,4]}')).toMatchObject({ ok: false, category: 'too_complex', reason: expect.stringMatching(/more than 6 keys/) });
    // The payload's braces are level 1, the array 2, the inner arrays 3 and 4.
    expect(limited('{"a":[[[1]]]}')).toMatchObject({ ok: true });
    expect(limited('{"a":[[[[1]]]]}')).toMatchObject({ ok: false, category: 'too_complex', reason: expect.stringMatching(/value of "a" is nested more than 4 levels/) });
  });

  it('takes an array mixing both forms', () => {
    expect(parse('[{"a":1},{"ts":5,"values":{"b":2}}]')).toEqual({ ok: true, entries: [{ ts: 1000, values: { a: 1 } }, { ts: 5, values: { b: 2 } }], keys: 2 });
  });
});

describe('malformed payloads are rejected with a reason', () => {
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{"temp":', /not valid JSON/],
    ['binary garbage', '\u0000\u00ff\u0001', /not valid JSON/],
    ['a bare number', '42', /expected a JSON object, got number 42/],
    ['null', 'null', /expected a JSON object, got null/],
    ['an array of numbers', '[1,2,3]', /expected a JSON object at \[0\], got number 1/],
    ['an empty array', '[]', /empty array/],
    ['an empty object', '{}', /no values/],
    ['ts that is not a number', '{"ts":"yesterday","values":{"a":1}}', /"ts" must be a non-negative whole number.*"yesterday"/],
    ['a negative ts', '{"ts":-5,"values":{"a":1}}', /"ts" must be a non-negative/],
    ['a fractional ts', '{"ts":1.5,"values":{"a":1}}', /"ts" must be a non-negative whole/],
    ['empty values', '{"ts":1,"values":{}}', /no values in \.values/],
    ['values that are not an object', '{"ts":1,"values":[1]}', /"values" must be a JSON object, got an array/],
    ['ts without values', '{"ts":1,"temp":2}', /unexpected key "temp"/],
    ['only ts', '{"ts":1}', /"ts" given without "values"/],
    ['only values', '{"values":{"a":1}}', /"values" given without "ts"/],
    ['an empty key', '{"":1}', /empty key/],
    ['a bad item deep in an array', '[{"a":1},{"ts":1,"values":{"":2}}]', /empty key in \[1\]\.values/],
  ];
  for (const [name, text, reason] of cases) {
    it(`rejects ${name}`, () => {
      const result = parse(text);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.reason).toMatch(reason);
    });
  }

  // JSON.parse makes "__proto__" an own data key, never a prototype: what the parser must keep is
  // that, in the values it returns, in all three forms and nested — no copy through a setter.
  const protoPayloads: [form: string, text: string, holderKey: string | undefined, keys: string[]][] = [
    ['flat values', '{"__proto__":{"polluted":1},"a":1}', undefined, ['__proto__', 'a']],
    ['{ts, values}', '{"ts":5,"values":{"__proto__":{"polluted":1},"a":1}}', undefined, ['__proto__', 'a']],
    ['an array of entries', '[{"b":2},{"ts":5,"values":{"__proto__":{"polluted":1},"a":1}}]', undefined, ['__proto__', 'a']],
    ['a nested object value', '{"a":1,"n":{"__proto__":{"polluted":1}}}', 'n', ['a', 'n']],
  ];
  for (const [form, text, holderKey, keys] of protoPayloads) {
    it(`keeps a "__proto__" key in ${form} as an own data key, prototype untouched`, () => {
      const result = parse(text);
      if (!result.ok) throw new Error(`refused: ${result.reason}`);
      const values = result.entries.at(-1)!.values;
      expect(Object.keys(values)).toEqual(keys);
      const holder = (holderKey === undefined ? values : values[holderKey]) as Record<string, unknown>;
      expect(Object.getPrototypeOf(holder)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(holder, '__proto__')).toEqual({ value: { polluted: 1 }, writable: true, enumerable: true, configurable: true });
      expect('polluted' in holder).toBe(false);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  }
});
