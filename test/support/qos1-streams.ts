import mqtt from 'mqtt';
import type { ChildServer } from './child-server.js';
import { RULES_GROUP, WINDOW_RULES_GROUP } from '../../server/src/rules/rules-consumer.js';
import { childOperatorApi, waitForZeroLag } from './consumer-lag.js';
import { within } from './test-server.js';

/**
 * QoS 1 telemetry from each device in `lanes` parallel streams, numbered from 0 (`{"ts": baseTs + n,
 * "values": {"seq": n}}`), until stopped or the server goes away — what the crash tests kill a
 * server in the middle of. `sent` holds what each device sent, `acked` what got its PUBACK.
 * The clients speak MQTT 3.1.1 unless `protocolVersion` is 5.
 */
export async function streamSequences(mqttPort: number, tokens: string[], baseTs: number, lanes = 8, protocolVersion: 4 | 5 = 4) {
  const sent = tokens.map(() => new Set<number>());
  const acked = tokens.map(() => new Set<number>());
  let stopped = false;
  const clients = await Promise.all(tokens.map((token) => mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { username: token, reconnectPeriod: 0, protocolVersion })));
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
    /**
     * Stops sending and closes the clients; the lanes end at once (a forced end fails every
     * publish still waiting for its PUBACK), and a lane that does not within 2 s fails the test.
     */
    async stop(): Promise<void> {
      stopped = true;
      for (const c of clients) c.end(true);
      await within(2000, 'the end of the publishing lanes', Promise.all(streams));
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
  await waitForZeroLag(childOperatorApi(server, adminToken), [RULES_GROUP, WINDOW_RULES_GROUP], timeoutMs);
}
