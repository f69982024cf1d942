import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { childApi, childRulesCaughtUp } from './support/qos1-streams.js';
import { startHttpReceiver, type HttpReceiver } from './support/http-receiver.js';
import { tempDir, waitFor, within } from './support/test-server.js';

const ADMIN = 'windows-topic-admin';
const BASE_TS = 1_700_000_000_000;

interface Call { key: string; metadata: { windowStart: number; update: boolean } }

const windowsEnd = async (server: ChildServer): Promise<number> => {
  const l = await childApi<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>(server, ADMIN, 'GET', '/api/log');
  return l.topics.find((t) => t.name === 'windows')!.partitions.reduce((s, p) => s + p.endOffset, 0);
};

describe('the windows topic after kill -9', () => {
  /** The webhook target of the `"input": "windows"` rule: one call per windows-topic record it read. */
  let target: HttpReceiver;
  beforeAll(async () => { target = await startHttpReceiver(() => 200, '/windows'); });
  afterAll(() => target?.close());

  it('holds each window result once: what the resume from the checkpoint emits again is not appended a second time', async () => {
    const dataDir = tempDir();
    const args = ['--admin-token', ADMIN];
    let server = await startChildSluice(dataDir, args);
    const checkpointDb = new Database(path.join(dataDir, 'sluice.db'), { readonly: true, fileMustExist: true });
    let client: mqtt.MqttClient | undefined;
    try {
      const device = await childApi<{ token: string }>(server, ADMIN, 'POST', '/api/devices', { name: 'windowed', type: 'windowed' });
      await childApi(server, ADMIN, 'POST', '/api/rules', { id: 'per-second', devices: { types: ['windowed'] },
        nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '1s', fields: ['v'], ops: ['count', 'sum'], outOfOrderness: '0s' } }] });
      await childApi(server, ADMIN, 'POST', '/api/rules', { id: 'on-windows', input: 'windows', devices: { types: ['windowed'] },
        nodes: [{ id: 'out', type: 'webhook', url: target.url }] });

      // Five events a second of event time, sent as fast as PUBACKs come: window results stream out.
      client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { username: device.token, reconnectPeriod: 0 });
      client.on('error', () => {});
      let sending = true;
      const sender = (async () => {
        for (let n = 0; sending; n++) {
          try {
            await client!.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: BASE_TS + n * 200, values: { v: n } }), { qos: 1 });
          } catch { return; }
        }
      })();

      // Kill -9 once a checkpoint was saved and at least 5 results were appended after it, with no
      // newer checkpoint: the resume emits those results again.
      const savedAt = () => (checkpointDb.prepare('SELECT saved_at FROM window_checkpoint').get() as { saved_at: number } | undefined)?.saved_at;
      await waitFor('a checkpoint followed by 5 window results', async () => {
        const at = savedAt();
        if (at === undefined) return undefined;
        const end = await windowsEnd(server);
        for (;;) {
          if (savedAt() !== at) return undefined;
          if ((await windowsEnd(server)) >= end + 5) break;
        }
        if (savedAt() !== at) return undefined;
        server.child.kill('SIGKILL');
        return true;
      }, 30_000);
      await server.exited;
      sending = false;
      client.end(true);
      // The forced end fails the publish in flight (its PUBACK never came): the lane ends at once.
      await within(2000, 'the end of the publishing lane', sender);

      server = await startChildSluice(dataDir, args);
      await childRulesCaughtUp(server, ADMIN);
      const replayed = server.output().split('\n').find((l) => l.includes('the replay will not append them again'));
      expect(replayed, 'the restart found results appended after its checkpoint').toBeDefined();
      expect((JSON.parse(replayed!) as { records: number }).records).toBeGreaterThanOrEqual(5);
      const end = await windowsEnd(server);
      await waitFor('every webhook call of the window rule', async () => {
        const metrics = await (await fetch(`http://127.0.0.1:${server.ports.http}/metrics`)).text();
        return /sluice_webhook_requests\{outcome="pending"\} 0\b/.test(metrics) ? true : undefined;
      }, 15_000);

      // A record read twice by the rules-windows group (its offsets trail) keeps its key; a result
      // appended twice would come with a second key.
      const keysByWindow = new Map<number, Set<string>>();
      for (const call of target.bodies<Call>()) {
        if (call.metadata.update) continue;
        keysByWindow.set(call.metadata.windowStart, (keysByWindow.get(call.metadata.windowStart) ?? new Set()).add(call.key));
      }
      expect(keysByWindow.size).toBeGreaterThanOrEqual(5);
      const twice = [...keysByWindow].filter(([, keys]) => keys.size > 1).map(([start]) => start - BASE_TS);
      expect(twice, 'windows whose result is in the windows topic twice').toEqual([]);
      expect(end, 'records in the windows topic: one per window').toBe(keysByWindow.size);
    } finally {
      checkpointDb.close();
      client?.end(true);
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });
});
