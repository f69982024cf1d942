import mqtt from 'mqtt';
import type { ChildServer } from './child-server.js';
import { waitFor } from './test-server.js';

/**
 * QoS 1 telemetry from each device in `lanes` parallel streams, numbered from 0 (`{"ts": baseTs + n,
 * "values": {"seq": n}}`), until stopped or the server goes away — what the crash tests kill a
 * server in the middle of. `sent` holds what each device sent, `acked` what got its PUBACK.
 */
export async function streamSequences(mqttPort: number, tokens: string[], baseTs: number, lanes = 8) {
  const sent = tokens.map(() => new Set<number>());
  const acked = tokens.map(() => new Set<number>());
  let stopped = false;
  const clients = await Promise.all(tokens.map((token) => mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { username: token, reconnectPeriod: 0 })));
  for (const c of clients) c.on('error', () => {});
  const streams = clients.map((client, d) => {
    let seq = 0;
    const lane = async () => {
      while (!stopped) {
        const n = seq++;
        sent[d]!.add(n);
        try {
          await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: baseTs + n, values: { seq: n } }), { qos: 1 });
          acked[d]!.add(n);
        } catch {
          return; // the connection went down with the server
        }
      }
    };
    return Promise.all(Array.from({ length: lanes }, lane));
  });
  return {
    sent,
    acked,
    total: () => acked.reduce((s, a) => s + a.size, 0),
    /** Stops sending and closes the clients; waits (2 s at most) for the lanes to end. */
    async stop(): Promise<void> {
      stopped = true;
      for (const c of clients) c.end(true);
      await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}

/** An operator request to a child server with `adminToken`; rejects on a non-2xx answer. */
export async function childApi<T>(server: ChildServer, adminToken: string, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${server.ports.http}${route}`, {
    method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<T>;
}

/** Waits until a child server's rules groups (`rules`, `rules-windows`) have handled everything in the log now. */
export async function childRulesCaughtUp(server: ChildServer, adminToken: string, timeoutMs = 15_000): Promise<void> {
  await waitFor('the rules groups to catch up', async () => {
    const log = await childApi<{ groups: { name: string; partitions: { lag: number }[] }[] }>(server, adminToken, 'GET', '/api/log');
    const rules = log.groups.filter((g) => g.name === 'rules' || g.name === 'rules-windows');
    return rules.length > 0 && rules.every((g) => g.partitions.every((p) => p.lag === 0)) ? true : undefined;
  }, timeoutMs);
}
