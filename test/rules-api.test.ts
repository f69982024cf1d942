import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectApiError } from './support/api-errors.js';
import { startHttpReceiver } from './support/http-receiver.js';
import { TestServer, tempDir, waitFor, type CreatedDevice } from './support/test-server.js';

type Series = Record<string, { ts: number; value: unknown }[]>;

const saveDoubled = (id: string, factor: number) => ({
  id,
  devices: { types: ['thermo'] },
  nodes: [
    { id: 'has-t', type: 'filter', if: 'has(values.t)' },
    { id: 'scale', type: 'transform', keep: ['t'], set: { [`t_x`]: `values.t * ${factor}.0` } },
    { id: 'only', type: 'transform', keep: ['t_x'] },
    { id: 'store', type: 'save' },
  ],
});

describe('rules over the API, end to end', () => {
  let server: TestServer;
  let device: CreatedDevice;
  let rulesDir: string;
  let ts = 10_000;

  beforeAll(async () => {
    rulesDir = tempDir();
    fs.writeFileSync(path.join(rulesDir, 'from-file.json'), JSON.stringify({ id: 'from-file', devices: { types: ['nothing-matches'] }, nodes: [{ id: 'l', type: 'log' }] }));
    fs.writeFileSync(path.join(rulesDir, 'broken.json'), '{"id": "broken", "nodes": [');
    server = await TestServer.start({ rulesDir });
    device = await server.createDevice('thermo-1', { type: 'thermo' });
  });
  afterAll(async () => { await server.stop(); });

  /** Publishes t over MQTT and waits until the rules have seen it. */
  async function publish(t: number): Promise<number> {
    const client = await server.connectDevice(device.token);
    const at = ts++;
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: at, values: { t } }), { qos: 1 });
    client.end(true);
    await server.sluice.rulesCaughtUp();
    return at;
  }
  const series = (key: string) => server.json<Series>('GET', `/api/devices/${device.id}/telemetry?keys=${key}&from=0&to=100000`);

  it('loads valid rules from the rules dir at start and skips a broken file', async () => {
    const rules = await server.json<{ id: string; source: string; file?: string }[]>('GET', '/api/rules');
    expect(rules).toEqual([expect.objectContaining({ id: 'from-file', source: 'file', file: expect.stringMatching(/from-file\.json$/) })]);
  });

  it('creates a rule that acts on what devices publish, and lists it', async () => {
    const res = await server.api('POST', '/api/rules', saveDoubled('double', 2));
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/api/rules/double');
    expect(await server.json('GET', '/api/rules/double')).toMatchObject({ id: 'double', source: 'api' });
    const at = await publish(21);
    expect((await series('t_x')).t_x).toEqual([{ ts: at, value: 42 }]);
  });

  it('refuses a rule whose id exists, invalid JSON and invalid rules, naming the rule, node and path', async () => {
    await expectApiError(server.api('POST', '/api/rules', saveDoubled('double', 3)), 400, /^rule "double" \(id\): a rule with this id already exists/);
    await expectApiError(server.api('POST', '/api/rules', '{"id": "x", "nodes": [', {}), 400, /not valid JSON/);
    await expectApiError(server.api('POST', '/api/rules', { id: 'bad', nodes: [{ id: 'f', type: 'filter', if: 'values.t >' }] }), 400, /^rule "bad", node "f" \(nodes\[0\]\.if\): /);
    expect((await server.api('GET', '/api/rules/bad')).status).toBe(404);
  });

  it('hot reload: PUT changes a running rule at once; an invalid PUT is refused and the old version keeps running', async () => {
    const put = await server.api('PUT', '/api/rules/double', saveDoubled('double', 10));
    expect(put.status).toBe(200);
    const at = await publish(3);
    expect((await series('t_x')).t_x!.find((p) => p.ts === at)!.value).toBe(30);

    await expectApiError(server.api('PUT', '/api/rules/double', { nodes: [{ id: 'x', type: 'nope' }] }), 400, /^rule "double", node "x" \(nodes\[0\]\.type\): unknown node kind/);
    const after = await publish(4);
    expect((await series('t_x')).t_x!.find((p) => p.ts === after)!.value).toBe(40);

    const mismatch = await server.api('PUT', '/api/rules/double', { ...saveDoubled('other', 1) });
    expect(mismatch.status).toBe(400);
  });

  it('shows per-node counters and errors, and a trace when switched on', async () => {
    const trace = await server.api('PUT', '/api/rules/double/trace', { size: 5 });
    expect(trace.status).toBe(200);
    expect((await server.api('PUT', '/api/rules/double/trace', { size: 5000 })).status).toBe(400);
    await publish(5);
    const stats = await server.json<{ nodes: { id: string; in: number; out: number }[]; trace: { size: number; nodes: Record<string, { outcome: string }[]> } }>('GET', '/api/rules/double/stats');
    expect(stats.nodes.map((n) => n.id)).toEqual(['has-t', 'scale', 'only', 'store']);
    expect(stats.nodes[0]!.in).toBeGreaterThanOrEqual(1);
    expect(stats.trace.size).toBe(5);
    expect(stats.trace.nodes.store![0]).toMatchObject({ outcome: 'out', in: { values: { t_x: 50 } } });
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/sluice_rule_node_messages\{rule="double",node="store",outcome="in"\} [1-9]/);
  });

  it('disables, deletes, and refuses to delete a rule that lives in a file', async () => {
    await server.json('PUT', '/api/rules/double', { ...saveDoubled('double', 2), enabled: false });
    const at = await publish(6);
    expect((await series('t_x')).t_x!.some((p) => p.ts === at)).toBe(false);
    expect((await server.api('DELETE', '/api/rules/double')).status).toBe(204);
    expect((await server.api('GET', '/api/rules/double')).status).toBe(404);
    expect((await server.api('DELETE', '/api/rules/double')).status).toBe(404);
    await expectApiError(server.api('DELETE', '/api/rules/from-file'), 409, /comes from .*from-file\.json/);
  });

  it('republishes to MQTT subscribers under rules/', async () => {
    await server.json('POST', '/api/rules', { id: 'echo', devices: { ids: [device.id] }, nodes: [{ id: 'p', type: 'republish', topic: 'rules/echo/{deviceName}', qos: 1 }] });
    const listener = await server.connectDevice(device.token);
    const got = new Promise<{ topic: string; payload: string }>((resolve) => listener.on('message', (topic, payload) => resolve({ topic, payload: payload.toString() })));
    await listener.subscribeAsync('rules/echo/#', { qos: 1 });
    const at = await publish(7);
    const message = await got;
    listener.end(true);
    expect(message.topic).toBe('rules/echo/thermo-1');
    expect(JSON.parse(message.payload)).toMatchObject({ deviceId: device.id, ts: at, values: { t: 7 } });
    expect((await server.api('DELETE', '/api/rules/echo')).status).toBe(204);
  });

  it('posts to a webhook, retrying after a failure', async () => {
    // The first call is refused with a 503, the next ones accepted.
    const hook = await startHttpReceiver((_req, n) => (n === 1 ? 503 : 204));
    try {
      await server.json('POST', '/api/rules', { id: 'hook', devices: { ids: [device.id] }, nodes: [{ id: 'w', type: 'webhook', url: hook.url, retries: 3 }] });
      const at = await publish(8);
      const [refused, accepted] = await hook.waitForRequests(2, 10_000);
      expect(accepted!.body).toBe(refused!.body);
      expect(accepted!.json()).toMatchObject({ deviceId: device.id, ts: at, values: { t: 8 } });
      await waitFor('the webhook call counted as sent', async () => /sluice_webhook_requests\{outcome="sent"\} 1\b/.test(await (await fetch(`${server.baseUrl}/metrics`)).text()));
      expect(hook.requests).toHaveLength(2);
    } finally {
      await hook.close();
    }
  });

  it('keeps rules created through the API across a restart', async () => {
    const dataDir = tempDir();
    const first = await TestServer.start({ dataDir });
    await first.json('POST', '/api/rules', saveDoubled('kept', 2));
    await first.stop();
    const second = await TestServer.start({ dataDir });
    try {
      expect(await second.json('GET', '/api/rules/kept')).toMatchObject({ id: 'kept', source: 'api' });
    } finally {
      await second.stop();
    }
  });
});
