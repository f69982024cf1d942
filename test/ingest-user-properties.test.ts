import { afterEach, describe, expect, it } from 'vitest';
import { Ingest, MAX_USER_PROPERTIES_BYTES } from '../server/src/ingest/ingest.js';
import { RejectedMessages } from '../server/src/ingest/rejected-messages.js';
import { FileLog } from '../server/src/log/file-log.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { createMetrics } from '../server/src/metrics.js';
import { toMessages } from '../server/src/rules/rules-consumer.js';
import { openDatabase } from '../server/src/storage/database.js';
import { DeviceRegistry } from '../server/src/storage/device-registry.js';
import { TELEMETRY_TOPIC, userPropertiesOf } from '../server/src/telemetry/device-message.js';
import { silentLogger, tempDir } from './support/test-server.js';

/** MQTT 5 user properties of a device's PUBLISH: carried in the log record, given to rules as metadata.userProperties, bounded. */
describe('user properties from ingest to the rules', () => {
  const closing: (() => Promise<void> | void)[] = [];
  afterEach(async () => { for (const close of closing.splice(0).reverse()) await close(); });

  async function rig() {
    const dir = tempDir();
    const log = new FileLog(dir, { mode: 'never' }, silentLogger);
    await log.ensureTopic(TELEMETRY_TOPIC, 1);
    closing.push(() => log.close());
    const db = openDatabase(dir);
    closing.push(() => { db.close(); });
    const registry = new DeviceRegistry(db, { now: () => 1 });
    const rejected = new RejectedMessages();
    const ingest = new Ingest(log, rejected, createMetrics(log, log.stats), { now: () => 5000 }, silentLogger, 65_536);
    const records = async (): Promise<StoredRecord[]> => log.read(TELEMETRY_TOPIC, 0, 0, 1 << 20);
    return { registry, ingest, rejected, records };
  }
  const ruleDevice = (d: { id: string; name: string; type: string; attributes: Record<string, unknown> }) => ({ id: d.id, name: d.name, type: d.type, attributes: d.attributes });

  it('gives every message of the payload the PUBLISH\'s user properties, repeated names as lists; none without', async () => {
    const { registry, ingest, records } = await rig();
    const device = registry.create({ name: 'd' });
    const props = { site: 'plant-1', tag: ['a', 'b'] };
    await expect(ingest.accept(device, 'telemetry', Buffer.from('[{"ts":1,"values":{"a":1}},{"ts":2,"values":{"a":2}}]'), 'mqtt', 'v1/devices/me/telemetry', props)).resolves.toEqual({ accepted: true });
    await ingest.accept(device, 'telemetry', Buffer.from('{"ts":3,"values":{"a":3}}'), 'mqtt', 'v1/devices/me/telemetry');
    const stored = await records();
    expect(stored.map(userPropertiesOf)).toEqual([props, undefined]);
    const messages = toMessages(stored, registry, ruleDevice);
    expect(messages.map((m) => [m.ts, m.metadata])).toEqual([[1, { userProperties: props }], [2, { userProperties: props }], [3, {}]]);
  });

  it(`refuses user properties over ${MAX_USER_PROPERTIES_BYTES} bytes of JSON, appending nothing, and takes them at the bound`, async () => {
    const { registry, ingest, rejected, records } = await rig();
    const device = registry.create({ name: 'd' });
    // {"k":"…"} is 8 bytes around the value.
    const atBound = { k: 'x'.repeat(MAX_USER_PROPERTIES_BYTES - 8) };
    const over = { k: 'x'.repeat(MAX_USER_PROPERTIES_BYTES - 7) };
    await expect(ingest.accept(device, 'telemetry', Buffer.from('{"a":1}'), 'mqtt', 't', over)).resolves.toEqual({
      accepted: false, category: 'too_complex', reason: `user properties take ${MAX_USER_PROPERTIES_BYTES + 1} bytes as JSON, more than ${MAX_USER_PROPERTIES_BYTES}`,
    });
    expect(await records()).toEqual([]);
    expect(rejected.recent(1)[0]).toMatchObject({ deviceId: device.id, reason: expect.stringMatching(/^user properties take/) });
    await expect(ingest.accept(device, 'telemetry', Buffer.from('{"a":1}'), 'mqtt', 't', atBound)).resolves.toEqual({ accepted: true });
    expect((await records()).map(userPropertiesOf)).toEqual([atBound]);
  });

  it('reads no user properties from a damaged header instead of failing the batch', () => {
    const record = (text: string): StoredRecord => ({ topic: TELEMETRY_TOPIC, key: 'd', value: Buffer.from('{}'), timestamp: 0, offset: 0, partition: 0, headers: { kind: 'telemetry', 'mqtt-user-properties': text } });
    expect(userPropertiesOf(record('{"a":'))).toBeUndefined();
    expect(userPropertiesOf(record('[1]'))).toBeUndefined();
    expect(userPropertiesOf(record('null'))).toBeUndefined();
    expect(userPropertiesOf(record('{"a":"b"}'))).toEqual({ a: 'b' });
  });
});
