import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { capturingLogger, TestServer, waitFor } from './support/test-server.js';

/**
 * Two connections write SQLite: the storage worker's (telemetry, saved values, windows) and the
 * main thread's (alarms, their counters and outbox, devices, rules). Neither may ever see
 * SQLITE_BUSY: a write that meets the other's lock waits for it.
 */
describe('SQLite with two writers under a sustained light load', () => {
  it('logs no SQLITE_BUSY while telemetry, an alarm rule and device changes write at once', async () => {
    const { logger, lines } = capturingLogger();
    const server = await TestServer.start({}, logger);
    const stop = new AbortController();
    const clients: MqttClient[] = [];
    try {
      await server.json('POST', '/api/rules', {
        id: 'hot', devices: { types: ['thermo'] },
        nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'Hot', severity: 'MAJOR', create: 'values.t > 30', clear: 'values.t < 28' } }],
      });
      const devices = await Promise.all(Array.from({ length: 10 }, (_, i) => server.createDevice(`thermo-${i}`, { type: 'thermo' })));
      clients.push(...await Promise.all(devices.map((d) => server.connectDevice(d.token))));
      // Pacing, not waiting for an event: the load is meant to be light and sustained.
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      let published = 0;
      let changes = 0;
      // About 100 msg/s in all, every one through the alarm rule (a write on the main connection
      // per message, beside the worker's write of the same message), flapping so alarms open and clear.
      const publishing = clients.map(async (client, d) => {
        for (let n = 0; !stop.signal.aborted; n++) {
          await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: Date.now(), values: { t: n % 4 < 2 ? 35 : 20, n } }), { qos: 1 });
          published++;
          await sleep(d % 2 === 0 ? 90 : 110);
        }
      });
      // Device changes on the main connection meanwhile: attribute updates, new and deleted devices.
      const changing = (async () => {
        for (let n = 0; !stop.signal.aborted; n++) {
          await server.json('PATCH', `/api/devices/${devices[n % devices.length]!.id}`, { attributes: { n } });
          const extra = await server.createDevice(`extra-${n}`);
          await server.api('DELETE', `/api/devices/${extra.id}`);
          changes++;
          await sleep(20);
        }
      })();
      // A given amount of work rather than a time: 400 messages (each device through 10 raise and
      // clear cycles) beside at least 60 rounds of device changes.
      await waitFor('400 messages and 60 rounds of device changes written side by side', () => published >= 400 && changes >= 60, 20_000);
      stop.abort();
      await Promise.all([...publishing, changing]);
      for (const c of clients) await c.endAsync();
      await server.sluice.storageCaughtUp();
      await server.sluice.rulesCaughtUp();
      const busy = lines.filter((l) => /SQLITE_BUSY|database is locked/.test(JSON.stringify(l)));
      expect(busy.map((l) => `${l.msg}: ${JSON.stringify(l.err ?? '').slice(0, 300)}`)).toEqual([]);
      // And the load did happen: points stored, alarms raised.
      const alarms = await server.json<unknown[]>('GET', '/api/alarms');
      expect(alarms.length).toBeGreaterThan(0);
    } finally {
      stop.abort();
      for (const c of clients) c.end(true);
      await server.stop();
    }
  });
});
