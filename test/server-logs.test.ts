import fs from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleOf } from './support/metrics-text.js';
import { TestServer, waitFor } from './support/test-server.js';

/** Every JSON line Sluice logs, as written. */
function capturingLogger(lines: string[]) {
  return pino({ level: 'info', base: { service: 'sluice' } }, { write: (line: string) => { lines.push(line.trimEnd()); } });
}

describe("Sluice's own log lines", () => {
  const lines: string[] = [];
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start({}, capturingLogger(lines)); });
  afterAll(async () => {
    await server.stop();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('name each key once, the alarm service and its outbox included, and carry no webhook credentials', async () => {
    const device = await server.createDevice('hot-one', { type: 'oven' });
    await server.json('POST', '/api/rules', {
      id: 'oven-hot', devices: { types: ['oven'] },
      nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'OvenHot', severity: 'MAJOR', create: 'values.t > 30', webhook: 'http://hook-user:s3cret@127.0.0.1:9/hooks/s3cret-path?token=s3cret' } }],
    });
    const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 1000, values: { t: 31 } }) });
    expect(res.status).toBe(200);
    const alarmLine = await waitFor('the alarm log line', () => lines.find((l) => l.includes('"msg":"alarm created: OvenHot"')));
    expect(JSON.parse(alarmLine)).toMatchObject({ component: 'alarms', type: 'OvenHot' });
    const outboxLine = await waitFor('the outbox log line', () => lines.find((l) => l.includes('alarm notification not delivered')));
    expect(JSON.parse(outboxLine)).toMatchObject({ component: 'alarm-outbox', url: 'http://127.0.0.1:9/hooks/…?…' });
    // The webhook's credentials (user info, path, query) appear in no line.
    expect(lines.filter((l) => l.includes('s3cret'))).toEqual([]);
    // A repeated key survives JSON.parse as its last value only; re-serialising shows the loss.
    for (const line of lines) expect(JSON.stringify(JSON.parse(line))).toBe(line);
  });

  it('count the undelivered alarm notification in /metrics too', async () => {
    const sample = async (outcome: string) => sampleOf(await (await fetch(`${server.baseUrl}/metrics`)).text(), 'sluice_alarm_notifications', { outcome });
    await waitFor('the failed attempt counted', async () => ((await sample('failed_attempts')) >= 1 ? true : undefined));
    expect(await sample('delivered')).toBe(0);
    await waitFor('the notification pending in the outbox', async () => ((await sample('pending')) === 1 ? true : undefined));
  });
});
