import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturingLogger, TestServer, waitFor, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

/**
 * Issue 16 against a running Sluice: hostile rules and a hostile webhook target cost bounded
 * time and memory, fail only what they must, and say so in stats, /metrics and the log.
 */
describe('rule limits, end to end', () => {
  let server: TestServer;
  let device: CreatedDevice;
  const { logger, lines } = capturingLogger();
  let ts = 1_000;

  beforeAll(async () => {
    server = await TestServer.start({}, logger);
    device = await server.createDevice('hostile-1', { type: 'probe' });
  });
  afterAll(async () => {
    await server.stop();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  async function post(values: Record<string, unknown> | Record<string, unknown>[]): Promise<void> {
    const body = Array.isArray(values) ? values.map((v) => ({ ts: ts++, values: v })) : { ts: ts++, values };
    const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
  }
  const stats = (rule: string) => server.json<{ nodes: { id: string; in: number; out: number; errors: number; limited: Record<string, number> }[]; errors: { error: string }[] }>('GET', `/api/rules/${rule}/stats`);
  const filterRule = (id: string, condition: string) => ({ id, devices: { types: ['probe'] }, nodes: [{ id: 'f', type: 'filter', if: condition }, { id: 'l', type: 'log', level: 'debug' }] });

  it('a backtracking regex in a rule does not hold the loop: the message goes through the rules at once', async () => {
    await server.json('POST', '/api/rules', filterRule('redos', 'values.s.matches("^(a+)+$")'));
    await server.json('POST', '/api/rules', filterRule('plain', 'has(values.s)'));
    const t0 = performance.now();
    await post({ s: `${'a'.repeat(31)}!` });
    await server.sluice.rulesCaughtUp();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect((await stats('redos')).nodes[0]).toMatchObject({ in: 1, out: 0, errors: 0 });
    expect((await stats('plain')).nodes[0]).toMatchObject({ in: 1, out: 1 });
  });

  it('an expression over its budget fails that message for that rule, counted in stats and /metrics, logged once', async () => {
    await server.json('POST', '/api/rules', filterRule('nested', 'values.o.l.all(x, values.o.l.all(y, x + y > 0.0))'));
    const l = Array.from({ length: 900 }, (_, i) => i + 1); // under the payload's limit of 1000 keys
    for (let i = 0; i < 5; i++) await post({ s: 'x', o: { l } });
    await server.sluice.rulesCaughtUp();
    const nested = await stats('nested');
    expect(nested.nodes[0]).toMatchObject({ in: 5, out: 0, errors: 5, limited: { eval_budget: 5 } });
    expect(nested.errors[0]!.error).toMatch(/evaluation steps, its budget/);
    expect((await stats('plain')).nodes[0]).toMatchObject({ out: 6 });
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/sluice_rule_node_limited\{rule="nested",node="f",limit="eval_budget"\} 5/);
    const logged = lines.filter((line) => line.rule === 'nested' && line.limit === 'eval_budget');
    expect(logged).toHaveLength(1);
    expect(logged[0]!.msg).toMatch(/^rule nested, node f: the expression took more than 100000 evaluation steps/);
  });

  it('refuses a sliding window of a day every millisecond with 400, naming the node and field', async () => {
    const res = await server.api('POST', '/api/rules', { id: 'too-many', nodes: [{ id: 'w', type: 'window', window: { kind: 'sliding', size: '1d', slide: '1ms', fields: ['t'], ops: ['avg'] } }] });
    await expectApiError(res, 400, /^rule "too-many", node "w" \(nodes\[0\]\.window\.slide\): puts each event into 86400000 windows/);
  });
});

describe('a webhook target that never answers, end to end', () => {
  it('holds 16 calls in flight, queues the rest, and /healthz answers at once', async () => {
    let received = 0;
    const hung = http.createServer((req) => { received++; req.resume(); });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const server = await TestServer.start();
    try {
      const device = await server.createDevice('hooked-1', { type: 'hooked' });
      await server.json('POST', '/api/rules', { id: 'hook', devices: { types: ['hooked'] }, nodes: [{ id: 'w', type: 'webhook', url: `http://127.0.0.1:${(hung.address() as AddressInfo).port}/hook`, timeout: '10s' }] });
      const entries = Array.from({ length: 100 }, (_, i) => ({ ts: 1000 + i, values: { t: i } }));
      const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(entries) });
      expect(res.status).toBe(200);
      await server.sluice.rulesCaughtUp();
      const gauge = async (outcome: string) => Number(new RegExp(`sluice_webhook_requests\\{outcome="${outcome}"\\} (\\d+)`).exec(await (await fetch(`${server.baseUrl}/metrics`)).text())?.[1]);
      await waitFor('16 calls in flight and 84 queued', async () => ((await gauge('in_flight')) === 16 && (await gauge('queued')) === 84 ? true : undefined));
      await waitFor('the 16 calls to arrive', () => (received >= 16 ? true : undefined));
      expect(received).toBe(16);
      const t0 = performance.now();
      expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
      expect(performance.now() - t0).toBeLessThan(1000);
    } finally {
      await server.stop();
      fs.rmSync(server.dataDir, { recursive: true, force: true });
      hung.closeAllConnections();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });
});
