import v8 from 'node:v8';
import vm from 'node:vm';
import type { MqttClient } from 'mqtt';
import { testConfig } from '../../server/src/config.js';
import { partitionForKey } from '../../server/src/log/partitioner.js';
import { startSluice } from '../../server/src/sluice.js';
import type { TelemetryLimits } from '../../server/src/telemetry/telemetry-limits.js';
import { sampleOf } from './metrics-text.js';
import { connectMqtt, silentLogger, tempDir, type CreatedDevice, type TestServer } from './test-server.js';

/**
 * Helpers for the tests of hostile device input: the legitimate neighbour on the same log
 * partition, the main thread's heap after a full GC, metrics and log offsets as the server
 * reports them.
 */

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** heapUsed after two full collections, so what is left is what something still holds. */
export function heapUsedAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A new device whose records go to the same partition of the telemetry topic as `other`'s. */
export async function createDeviceOnPartitionOf(server: RunningServer, other: CreatedDevice, name: string): Promise<CreatedDevice> {
  const partitions = server.config.partitions;
  const target = partitionForKey(other.id, partitions);
  for (let i = 0; i < 200; i++) {
    const d = await server.createDevice(`${name}-${i}`);
    if (partitionForKey(d.id, partitions) === target) return d;
    await server.api('DELETE', `/api/devices/${d.id}`);
  }
  throw new Error(`no device landed on partition ${target} in 200 tries`);
}

/** One sample of a metric as /metrics gives it (labels in the order prom-client writes them), 0 when absent. */
export async function metricValue(server: RunningServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleOf(await (await server.api('GET', '/metrics')).text(), name, labels);
}

/** How many records the telemetry topic holds, over all partitions. */
export async function telemetryRecords(server: RunningServer): Promise<number> {
  const log = await server.json<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>('GET', '/api/log');
  return log.topics.find((t) => t.name === 'telemetry')!.partitions.reduce((s, p) => s + p.endOffset, 0);
}

/** Publishes at QoS 1 and resolves with whether the PUBACK came, the connection's fate aside. */
export function publishQos1(client: MqttClient, topic: string, payload: string | Buffer, timeoutMs = 5000): Promise<'acked' | 'dropped'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('dropped'), timeoutMs);
    const closed = () => { clearTimeout(timer); resolve('dropped'); };
    client.once('close', closed);
    client.publish(topic, payload, { qos: 1 }, (err) => {
      clearTimeout(timer);
      client.off('close', closed);
      resolve(err ? 'dropped' : 'acked');
    });
  });
}

/** `depth` arrays inside each other, inside an object value: {"v":{"a":[[[…]]]}}. */
export function deeplyNestedPayload(depth: number): string {
  return `{"v":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
}

/** What the tests here need of a running server: TestServer has it, and so has startWithLimits'. */
export type RunningServer = Pick<TestServer, 'sluice' | 'config' | 'dataDir' | 'baseUrl' | 'adminToken' | 'api' | 'json' | 'createDevice' | 'connectDevice' | 'stop'>;

/**
 * A real Sluice like TestServer.start() gives, with telemetry limits set as the flags set them
 * (e.g. raised, to put in the log what an older version or a looser configuration accepted).
 */
export async function startWithLimits(limits: TelemetryLimits, dataDir = tempDir()): Promise<RunningServer> {
  const config = testConfig({ dataDir });
  config.limits.telemetry = limits;
  const sluice = await startSluice(config, silentLogger);
  const baseUrl = `http://127.0.0.1:${sluice.ports.http}`;
  const api: RunningServer['api'] = (method, route, body, headers = {}) => {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${sluice.adminToken}`, ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    return fetch(`${baseUrl}${route}`, init);
  };
  const json = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await api(method, route, body);
    if (!res.ok) throw new Error(`${method} ${route} → ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    sluice, config, dataDir, baseUrl, adminToken: sluice.adminToken, api, json: json as RunningServer['json'],
    createDevice: (name, extra = {}) => json<CreatedDevice>('POST', '/api/devices', { name, ...extra }),
    connectDevice: (token, options = {}) => connectMqtt(`mqtt://127.0.0.1:${sluice.ports.mqtt}`, { username: token, ...options }),
    stop: () => sluice.stop(),
  };
}

// within() moved to test-server.ts with the other waits; its importers here keep working.
export { within } from './test-server.js';
