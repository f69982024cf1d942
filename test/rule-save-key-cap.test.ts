import { afterEach, describe, expect, it } from 'vitest';
import { noLimitOverrides } from '../server/src/limit-options.js';
import { TestServer, waitFor } from './support/test-server.js';

type Series = Record<string, { ts: number; value: number }[] | undefined>;
interface NodeStats { id: string; in: number; errors: number; limited: Record<string, number> }

describe('values a rule saves are held to the cap on distinct keys per device', () => {
  let server: TestServer | undefined;
  afterEach(async () => { await server?.stop(); server = undefined; });

  it('fails a save that would give the device keys beyond the cap (device_keys), keeps saves of known keys, and the device\'s own values', async () => {
    server = await TestServer.start({ limits: { ...noLimitOverrides(), telemetry: { maxKeysPerDevice: 4 } } });
    const device = await server.createDevice('saved-keys', { type: 'key-capped' });
    // Each message's keys saved again under "copy_": a, b and copy_a, copy_b make the 4 allowed.
    await server.json('POST', '/api/rules', { id: 'copy', devices: { types: ['key-capped'] }, nodes: [{ id: 'keep', type: 'save', prefix: 'copy_' }] });
    const send = async (ts: number, values: Record<string, number>) => {
      const res = await fetch(`${server!.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ts, values }) });
      expect(res.status).toBe(200);
    };
    await send(1000, { a: 1, b: 2 });
    await waitFor('the rule to see the first message', async () => ((await server!.json<{ nodes: NodeStats[] }>('GET', '/api/rules/copy/stats')).nodes[0]!.in >= 1 ? true : undefined));
    // c is the device's 5th key with its own values alone — refused at ingest, so the rule never sees it.
    const refused = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ts: 2000, values: { c: 3 } }) });
    expect(refused.status).toBe(400);
    await send(3000, { a: 4 });
    const stats = await waitFor('the rule to see both messages', async () => {
      const s = await server!.json<{ nodes: NodeStats[] }>('GET', '/api/rules/copy/stats');
      return s.nodes[0]!.in >= 2 ? s.nodes[0]! : undefined;
    });
    expect(stats).toMatchObject({ in: 2, errors: 0 });
    expect(stats.limited).toEqual({});

    // The device's keys are now a, b, copy_a, copy_b; a rule that saves under a new prefix would add two more.
    await server.json('POST', '/api/rules', { id: 'spill', devices: { types: ['key-capped'] }, nodes: [{ id: 'keep', type: 'save', prefix: 'spill_' }] });
    await send(4000, { a: 5, b: 6 });
    const spill = await waitFor('the spilling save to be counted', async () => {
      const s = await server!.json<{ nodes: NodeStats[] }>('GET', '/api/rules/spill/stats');
      return s.nodes[0]!.in >= 1 ? s.nodes[0]! : undefined;
    });
    expect(spill).toMatchObject({ in: 1, errors: 1, limited: { device_keys: 1 } });
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/sluice_rule_node_limited\{rule="spill",node="keep",limit="device_keys"\} 1\b/);

    await waitFor('the copies of the last message', async () => {
      const s = await server!.json<Series>('GET', `/api/devices/${device.id}/telemetry?keys=copy_a,copy_b&from=0&to=10000`);
      return (s.copy_a ?? []).length === 3 ? true : undefined;
    });
    const series = await server.json<Series>('GET', `/api/devices/${device.id}/telemetry?keys=a,b,c,copy_a,copy_b,spill_a,spill_b&from=0&to=10000`);
    expect(series.a!.map((p) => p.value)).toEqual([1, 4, 5]);
    expect(series.copy_a!.map((p) => p.value)).toEqual([1, 4, 5]);
    expect(series.copy_b!.map((p) => p.value)).toEqual([2, 6]);
    expect(series.c ?? []).toEqual([]);
    expect(series.spill_a ?? []).toEqual([]);
    expect(series.spill_b ?? []).toEqual([]);
  });
});
