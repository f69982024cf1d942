import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

type Series = Record<string, { ts: number; value: unknown }[]>;

describe('telemetry queries', () => {
  let server: TestServer;
  let device: CreatedDevice;
  let client: MqttClient;
  const route = (query: string) => `/api/devices/${device.id}/telemetry?${query}`;

  beforeAll(async () => {
    server = await TestServer.start();
    device = await server.createDevice('query-dev');
    client = await server.connectDevice(device.token);
    // temp at ts 0, 1000, ..., 9000 with values 0..9; hum at 0, 2000, ... (ten values 50..59)
    const points = Array.from({ length: 10 }, (_, i) => ({ ts: i * 1000, values: { temp: i } }));
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify(points), { qos: 1 });
    const hum = Array.from({ length: 10 }, (_, i) => ({ ts: i * 2000, values: { hum: 50 + i, label: `s${i}` } }));
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify(hum), { qos: 1 });
    await server.sluice.storageCaughtUp();
  });
  afterAll(async () => {
    client?.end(true);
    await server?.stop();
  });

  it('returns the points in [from, to], ascending', async () => {
    const series = await server.json<Series>('GET', route('keys=temp&from=2000&to=5000'));
    expect(series).toEqual({ temp: [2, 3, 4, 5].map((v) => ({ ts: v * 1000, value: v })) });
  });

  it('returns several keys, and every key when none is named', async () => {
    const two = await server.json<Series>('GET', route('keys=temp,hum&from=0&to=2000'));
    expect(Object.keys(two).sort()).toEqual(['hum', 'temp']);
    expect(two.hum).toEqual([{ ts: 0, value: 50 }, { ts: 2000, value: 51 }]);
    const all = await server.json<Series>('GET', route('from=0&to=0'));
    expect(Object.keys(all).sort()).toEqual(['hum', 'label', 'temp']);
  });

  it('keeps the newest `limit` points, still ascending', async () => {
    const series = await server.json<Series>('GET', route('keys=temp&limit=3'));
    expect(series.temp!.map((p) => p.value)).toEqual([7, 8, 9]);
  });

  it('returns an empty list for a key with no data', async () => {
    expect(await server.json<Series>('GET', route('keys=nothing'))).toEqual({ nothing: [] });
  });

  it('aggregates into epoch-aligned buckets', async () => {
    const avg = await server.json<Series>('GET', route('keys=temp&from=0&to=9999&interval=5000&agg=avg'));
    expect(avg.temp).toEqual([{ ts: 0, value: 2 }, { ts: 5000, value: 7 }]);
    const expectations: [string, number[]][] = [['min', [0, 5]], ['max', [4, 9]], ['sum', [10, 35]], ['count', [5, 5]]];
    for (const [agg, values] of expectations) {
      const got = await server.json<Series>('GET', route(`keys=temp&from=0&to=9999&interval=5000&agg=${agg}`));
      expect(got.temp!.map((p) => p.value), agg).toEqual(values);
    }
  });

  it('aligns buckets to the epoch when `from` is not on a bucket boundary, and keeps the newest `limit` buckets', async () => {
    // from 1500: points 2000..7000; buckets start at multiples of 3000, the first before `from`.
    const sum = await server.json<Series>('GET', route('keys=temp&from=1500&to=7999&interval=3000&agg=sum'));
    expect(sum.temp).toEqual([{ ts: 0, value: 2 }, { ts: 3000, value: 12 }, { ts: 6000, value: 13 }]);
    const newest = await server.json<Series>('GET', route('keys=temp&from=0&to=9999&interval=2000&agg=avg&limit=2'));
    expect(newest.temp).toEqual([{ ts: 6000, value: 6.5 }, { ts: 8000, value: 8.5 }]);
  });

  it('takes `from` and `to` inclusive, raw and aggregated', async () => {
    const raw = await server.json<Series>('GET', route('keys=temp&from=3000&to=3000'));
    expect(raw.temp).toEqual([{ ts: 3000, value: 3 }]);
    const inside = await server.json<Series>('GET', route('keys=temp&from=3001&to=5999'));
    expect(inside.temp!.map((p) => p.ts)).toEqual([4000, 5000]);
    const count = await server.json<Series>('GET', route('keys=temp&from=2000&to=5000&interval=10000&agg=count'));
    expect(count.temp).toEqual([{ ts: 0, value: 4 }]);
  });

  it('keeps the newest value as the latest when a late point (older ts) comes after it', async () => {
    const late = await server.createDevice('late-dev');
    const lateClient = await server.connectDevice(late.token);
    try {
      await lateClient.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 5000, values: { t: 50 } }), { qos: 1 });
      await lateClient.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 3000, values: { t: 30 } }), { qos: 1 });
      await server.sluice.storageCaughtUp();
    } finally {
      lateClient.end(true);
    }
    const latestRoute = `/api/devices/${late.id}/telemetry/latest`;
    expect(await server.json('GET', latestRoute)).toEqual({ t: { ts: 5000, value: 50 } });
    const series = await server.json<Series>('GET', `/api/devices/${late.id}/telemetry?keys=t`);
    expect(series.t).toEqual([{ ts: 3000, value: 30 }, { ts: 5000, value: 50 }]);
  });

  it('counts strings but leaves them out of numeric aggregates', async () => {
    const count = await server.json<Series>('GET', route('keys=label&from=0&to=19999&interval=20000&agg=count'));
    expect(count.label).toEqual([{ ts: 0, value: 10 }]);
    const avg = await server.json<Series>('GET', route('keys=label&from=0&to=19999&interval=20000&agg=avg'));
    expect(avg.label).toEqual([]);
  });

  const badQueries: [string, RegExp][] = [
    ['keys=temp&from=5000&to=1000', /from \(5000\) must not be after to \(1000\)/],
    ['keys=temp&from=abc', /^from: must be a non-negative whole number/],
    ['keys=temp&to=-1', /^to: must be a non-negative/],
    ['keys=temp&limit=0', /^limit: must be 1\.\.10000/],
    ['keys=temp&limit=99999', /^limit: must be 1\.\.10000/],
    ['keys=temp&limit=ten', /^limit: must be a whole number/],
    ['keys=temp&from=0&to=10&interval=1000', /agg is required with interval/],
    ['keys=temp&from=0&to=10&agg=avg', /interval is required with agg/],
    ['keys=temp&from=0&to=10&interval=1000&agg=median', /^agg: must be one of avg, min, max, sum, count/],
    ['keys=temp&from=0&to=10&interval=0&agg=avg', /^interval: must be at least 1 ms/],
    ['keys=temp&interval=1000&agg=avg', /from and to are required with interval/],
    ['keys=temp&from=0&to=100000000000&interval=1&agg=avg', /more than 100000/],
    ['keys=a&keys=b', /^keys: /],
  ];
  for (const [query, message] of badQueries) {
    it(`answers 400 for ${query}`, async () => {
      const res = await server.api('GET', route(query));
      await expectApiError(res, 400, message);
    });
  }
});
