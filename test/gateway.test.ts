import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PublishOutcome } from '../server/src/ingest/device-connect.js';
import { GatewayApi, type GatewayOptions } from '../server/src/ingest/gateway.js';
import { Ingest } from '../server/src/ingest/ingest.js';
import { RejectedMessages } from '../server/src/ingest/rejected-messages.js';
import { FileLog } from '../server/src/log/file-log.js';
import { partitionForKey } from '../server/src/log/partitioner.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { createMetrics, type Metrics } from '../server/src/metrics.js';
import { openDatabase } from '../server/src/storage/database.js';
import { DeviceRegistry, type Device } from '../server/src/storage/device-registry.js';
import { TELEMETRY_TOPIC } from '../server/src/telemetry/device-message.js';
import { capturingLogger, tempDir } from './support/test-server.js';

/**
 * The gateway API over a real registry (SQLite in a temp dir) and a real Ingest over a real
 * FileLog, with payloads in the shapes ThingsBoard's gateway SDK sends: what it appends (and
 * under which key), creates, rejects and lists, and which sub-devices it says are online.
 */
const T0 = 1_700_000_000_000;
const PARTITIONS = 4;
const MAX_BYTES = 16_384;

describe('gateway API', () => {
  let log: FileLog;
  let db: Database.Database;
  let registry: DeviceRegistry;
  let rejected: RejectedMessages;
  let metrics: Metrics;
  let gateways: GatewayApi;
  let gw: Device;
  const clock = { t: T0, now() { return this.t; } };

  async function start(options: GatewayOptions = {}): Promise<void> {
    const dir = tempDir('sluice-gateway-');
    log = new FileLog(dir, { mode: 'never' }, capturingLogger().logger);
    await log.ensureTopic(TELEMETRY_TOPIC, PARTITIONS);
    db = openDatabase(dir);
    registry = new DeviceRegistry(db, clock);
    rejected = new RejectedMessages();
    metrics = createMetrics(log, log.stats);
    const ingest = new Ingest(log, rejected, metrics, clock, capturingLogger().logger, MAX_BYTES);
    gateways = new GatewayApi(registry, ingest, metrics, clock, options);
    gw = registry.create({ name: 'gw-1', gateway: true });
  }
  const publish = (topic: string, payload: unknown, connectionId = 1, gateway = gw): Promise<PublishOutcome> => gateways.publish({
    device: registry.get(gateway.id), connectionId, topic: `v1/gateway/${topic}`, qos: 1, protocolVersion: 5,
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  });
  async function records(): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    for (let p = 0; p < PARTITIONS; p++) out.push(...await log.read(TELEMETRY_TOPIC, p, 0, 1 << 20));
    return out;
  }
  const named = (name: string) => registry.findByName(name)!;
  const rejection = (category: string, reason: RegExp) => ({ accepted: false, category, reason: expect.stringMatching(reason) });
  async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    return metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
  }

  afterEach(async () => { await log.close(); db.close(); });

  describe('with the SDK\'s payloads', () => {
    beforeEach(async () => { await start(); });

    it('creates a sub-device on connect, with the type given, linked to its gateway', async () => {
      expect(await publish('connect', { device: 'Sensor A', type: 'thermometer' })).toEqual({ accepted: true });
      expect(named('Sensor A')).toMatchObject({ type: 'thermometer', gatewayId: gw.id, isGateway: false, credentialsType: 'access_token' });
      expect(registry.subDevices(gw.id).map((d) => d.name)).toEqual(['Sensor A']);
      expect(await records()).toEqual([]);
      expect(await metricValue('sluice_gateway_sub_devices_created_total')).toBe(1);
      // Connecting again creates nothing more.
      await publish('connect', { device: 'Sensor A', type: 'other' });
      expect(registry.subDeviceCount(gw.id)).toBe(1);
      expect(named('Sensor A').type).toBe('thermometer');
    });

    it('appends each sub-device\'s telemetry under its own key, as a direct device\'s', async () => {
      const payload = { 'Sensor A': [{ ts: 1764633600000, values: { temperature: 19.5 } }], 'Sensor B': [{ humidity: 40 }] };
      expect(await publish('telemetry', payload)).toEqual({ accepted: true });
      const a = named('Sensor A');
      const b = named('Sensor B');
      expect(b).toMatchObject({ type: 'default', gatewayId: gw.id });
      const got = await records();
      expect(got).toHaveLength(2);
      for (const [device, value] of [[a, '[{"ts":1764633600000,"values":{"temperature":19.5}}]'], [b, '[{"humidity":40}]']] as const) {
        const record = got.find((r) => r.key === device.id)!;
        expect(record).toMatchObject({ partition: partitionForKey(device.id, PARTITIONS), timestamp: T0, headers: { kind: 'telemetry' } });
        expect(record.value.toString()).toBe(value);
      }
      expect(await metricValue('sluice_messages_in_total', { transport: 'mqtt', kind: 'telemetry' })).toBe(2);
      expect(await metricValue('sluice_gateway_messages_total', { topic: 'telemetry', outcome: 'accepted' })).toBe(1);
    });

    it('takes one telemetry object per device as well as an array', async () => {
      expect(await publish('telemetry', { 'Sensor A': { ts: 5, values: { t: 1 } } })).toEqual({ accepted: true });
      expect(await publish('telemetry', { 'Sensor A': { t: 2 } })).toEqual({ accepted: true });
      expect((await records()).map((r) => r.value.toString())).toEqual(['{"ts":5,"values":{"t":1}}', '{"t":2}']);
    });

    it('appends sub-device attributes with their kind', async () => {
      expect(await publish('attributes', { 'Sensor A': { model: 'T-1000' } })).toEqual({ accepted: true });
      const [record] = await records();
      expect(record).toMatchObject({ key: named('Sensor A').id, headers: { kind: 'attributes' } });
      expect(record!.value.toString()).toBe('{"model":"T-1000"}');
    });

    it('takes attribute requests, RPC replies and claims without appending anything', async () => {
      await publish('connect', { device: 'Sensor A', type: 'thermometer' });
      expect(await publish('attributes/request', { keys: ['model'], device: 'Sensor A', client: true, id: 1 })).toEqual({ accepted: true });
      expect(await publish('attributes/request', { id: 2, device: 'Sensor A', client: false, key: 'fw' })).toEqual({ accepted: true });
      expect(await publish('rpc', { device: 'Sensor A', id: 1, data: { success: true } })).toEqual({ accepted: true });
      expect(await publish('claim', { 'Sensor A': { secretKey: 'abc', durationMs: 60000 } })).toEqual({ accepted: true });
      expect(await records()).toEqual([]);
      expect(rejected.recent(10)).toEqual([]);
      expect(await metricValue('sluice_gateway_messages_total', { topic: 'attributes_request', outcome: 'accepted' })).toBe(2);
    });

    it('disconnects a device without creating one for an unknown name', async () => {
      expect(await publish('disconnect', { device: 'Never Seen' })).toEqual({ accepted: true });
      expect(registry.findByName('Never Seen')).toBeUndefined();
    });
  });

  describe('speaking only for its own sub-devices', () => {
    beforeEach(async () => { await start(); });

    const cases: [string, () => string, RegExp][] = [
      ['a regular device', () => registry.create({ name: 'Plain' }).name, /may not speak for device "Plain": it is a device of its own/],
      ['another gateway\'s sub-device', () => registry.createSubDevice(registry.create({ name: 'gw-2', gateway: true }).id, 'Theirs', 'default').name,
        /may not speak for device "Theirs": it is a sub-device of another gateway/],
      ['another gateway', () => registry.create({ name: 'gw-3', gateway: true }).name, /may not speak for device "gw-3": it is a gateway/],
      ['itself', () => gw.name, /may not speak for device "gw-1": it is this gateway itself/],
    ];
    for (const [what, name, reason] of cases) {
      it(`rejects a whole message naming ${what}, and appends nothing of it`, async () => {
        const target = name();
        const before = registry.list().length;
        const outcome = await publish('telemetry', { Mine: [{ ok: 1 }], [target]: [{ t: 1 }] });
        expect(outcome).toEqual(rejection('not_authorized', reason));
        expect(await records()).toEqual([]);
        expect(registry.list()).toHaveLength(before); // "Mine" was not created either
        expect(rejected.recent(1)).toEqual([{ ts: T0, deviceId: gw.id, topic: 'v1/gateway/telemetry', reason: expect.stringMatching(reason) }]);
        expect(await metricValue('sluice_messages_rejected_total', { transport: 'mqtt', reason: 'not_authorized' })).toBe(1);
        expect(await metricValue('sluice_gateway_messages_total', { topic: 'telemetry', outcome: 'rejected' })).toBe(1);
        for (const topic of ['connect', 'disconnect', 'rpc'] as const) {
          expect(await publish(topic, { device: target, id: 1, data: {} }), topic).toEqual(rejection('not_authorized', reason));
        }
        expect(await publish('attributes', { [target]: { a: 1 } })).toEqual(rejection('not_authorized', reason));
      });
    }

    it('rejects a device that is not (or no longer) a gateway', async () => {
      const plain = registry.create({ name: 'plain' });
      expect(await publish('telemetry', { A: { t: 1 } }, 1, plain)).toEqual(rejection('not_authorized', /device "plain" is not a gateway/));
      registry.update(gw.id, { gateway: false });
      expect(await publish('telemetry', { A: { t: 1 } })).toEqual(rejection('not_authorized', /device "gw-1" is not a gateway/));
      expect(await records()).toEqual([]);
    });

    it('leaves the sub-devices of a deleted gateway as devices of their own, which no gateway may speak for', async () => {
      await publish('connect', { device: 'Orphan' });
      registry.delete(gw.id);
      expect(named('Orphan').gatewayId).toBeUndefined();
      const next = registry.create({ name: 'gw-next', gateway: true });
      expect(await publish('telemetry', { Orphan: { t: 1 } }, 2, next)).toEqual(rejection('not_authorized', /"Orphan": it is a device of its own/));
    });

    it('does not let a sub-device become a gateway', async () => {
      await publish('connect', { device: 'Sub' });
      expect(() => registry.update(named('Sub').id, { gateway: true })).toThrow(expect.objectContaining({ status: 409, message: expect.stringMatching(/^gateway: .*sub-device/) }));
    });
  });

  describe('payloads of the wrong shape', () => {
    beforeEach(async () => { await start({ maxDevicesPerMessage: 3 }); });

    const bad: [string, string, unknown, RegExp][] = [
      ['a message that is not an object', 'telemetry', [{ 'Sensor A': { t: 1 } }], /^a telemetry message must be a JSON object, got an array/],
      ['a string message', 'connect', 'just text', /^payload is not valid JSON/],
      ['a device name that is not a string', 'connect', { device: 5 }, /^"device" must be a string \(the sub-device's name\), got number 5/],
      ['a missing device name', 'disconnect', {}, /^"device" must be a string .*got nothing/],
      ['an empty device name', 'telemetry', { ' ': { t: 1 } }, /^a device name must not be empty/],
      ['a device name too long', 'connect', { device: 'n'.repeat(201) }, /^device name "n+…" is longer than 200 characters/],
      ['a type that is not a string', 'connect', { device: 'A', type: 7 }, /^"type" must be a string of 1 to 100 characters, got number 7/],
      ['telemetry that is not an array or an object', 'telemetry', { 'Sensor A': 21.5 }, /^telemetry of "Sensor A" must be an array or an object, got number 21.5/],
      ['attributes that are not an object', 'attributes', { 'Sensor A': [{ a: 1 }] }, /^attributes of "Sensor A" must be a JSON object, got an array/],
      ['a message naming no device', 'telemetry', {}, /^a telemetry message must name at least one device/],
      ['too many devices in one message', 'telemetry', { A: { t: 1 }, B: { t: 1 }, C: { t: 1 }, D: { t: 1 } }, /^the message names 4 devices, more than 3/],
      ['an attributes request without keys', 'attributes/request', { id: 1, device: 'A', client: true }, /needs "key" \(a string\) or "keys"/],
      ['an attributes request with a bad id', 'attributes/request', { id: 'one', device: 'A', client: true, key: 'k' }, /^"id" must be a non-negative whole number/],
      ['an attributes request without client', 'attributes/request', { id: 1, device: 'A', key: 'k' }, /^"client" must be true/],
      ['keys that are not strings', 'attributes/request', { id: 1, device: 'A', client: true, keys: ['a', 2] }, /^"keys" must be an array of 1 to 1000 strings/],
      ['an RPC reply without data', 'rpc', { device: 'A', id: 1 }, /^"data" is missing/],
      ['a claim that is not an object', 'claim', { A: 'secret' }, /^the claim of "A" must be a JSON object/],
      ['a claim with a bad duration', 'claim', { A: { secretKey: 'k', durationMs: -1 } }, /^"durationMs" of "A" must be a non-negative whole number/],
    ];
    for (const [what, topic, payload, reason] of bad) {
      it(`rejects ${what}, naming what is wrong`, async () => {
        const outcome = await publish(topic, payload);
        expect(outcome).toEqual(rejection(reason.source.startsWith('^payload is not valid JSON') ? 'not_json' : 'bad_shape', reason));
        expect(rejected.recent(1)).toEqual([{ ts: T0, deviceId: gw.id, topic: `v1/gateway/${topic}`, reason: expect.stringMatching(reason) }]);
        expect(registry.subDeviceCount(gw.id)).toBe(0);
        expect(await records()).toEqual([]);
      });
    }

    it('rejects an unknown gateway topic and a payload over the limit', async () => {
      expect(await publish('telemetry/extra', { A: { t: 1 } })).toEqual(rejection('unknown_topic', /^unknown gateway topic "v1\/gateway\/telemetry\/extra"/));
      const big = JSON.stringify({ A: { k: 'x'.repeat(MAX_BYTES) } });
      expect(await publish('telemetry', big)).toEqual(rejection('too_large', new RegExp(`^payload of ${Buffer.byteLength(big)} bytes exceeds the ${MAX_BYTES}-byte limit`)));
      expect(await records()).toEqual([]);
    });
  });

  describe('one sub-device\'s part invalid', () => {
    beforeEach(async () => { await start(); });

    it('appends the valid parts and answers with the first rejection, listed under its sub-device', async () => {
      const outcome = await publish('telemetry', {
        Good: [{ t: 1 }], Broken: [{ ts: 'yesterday', values: { t: 2 } }], Empty: [], AlsoGood: { t: 3 },
      });
      expect(outcome).toEqual(rejection('bad_shape',
        /^device "Broken": "ts" at \[0\] must be a non-negative whole number.* \(1 more device rejected\); the other 2 devices' telemetry was appended$/));
      expect((await records()).map((r) => r.key).sort()).toEqual([named('Good').id, named('AlsoGood').id].sort());
      expect(rejected.recent(10).map((r) => [r.deviceId, r.topic])).toEqual([
        [named('Empty').id, 'v1/gateway/telemetry'], [named('Broken').id, 'v1/gateway/telemetry'],
      ]);
      expect(rejected.recent(1)[0]!.reason).toMatch(/payload is an empty array/);
    });

    it('rejects a part nested too deep without serialising it, and takes the others', async () => {
      const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
      const payload = Buffer.from(`{"Deep":{"v":${deep}},"Flat":{"t":1}}`);
      expect(await publish('telemetry', payload)).toEqual(rejection('too_complex', /^device "Deep": the telemetry of "Deep" nests objects and arrays more than 16 levels deep/));
      expect((await records()).map((r) => r.key)).toEqual([named('Flat').id]);
    });

    it('takes a part nested exactly as deep as ingest allows', async () => {
      const nested = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
      // The part's own object is the first level, as a direct device's payload's is.
      expect(await publish('telemetry', Buffer.from(`{"Edge":{"v":${nested(15)}}}`))).toEqual({ accepted: true });
      expect(await publish('telemetry', Buffer.from(`{"Edge":{"v":${nested(16)}}}`))).toEqual(rejection('too_complex', /^device "Edge": .*more than 16 levels deep/));
      expect(await records()).toHaveLength(1);
    });

    it('holds each part to ingest\'s limits, as a direct device\'s payload', async () => {
      const keys = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, 1]));
      expect(await publish('telemetry', { Wide: keys })).toEqual(rejection('too_complex', /^device "Wide": payload has more than 1000 keys/));
      expect(await publish('attributes', { Blank: { '': 1 }, Fine: { a: 1 } })).toEqual(rejection('bad_shape',
        /^device "Blank": empty key; the other device's attributes were appended$/));
      expect((await records()).map((r) => r.key)).toEqual([named('Fine').id]);
    });

    it('fails the whole message when the log cannot append, so the gateway sends it again', async () => {
      await publish('connect', { device: 'A' });
      await log.close();
      await expect(publish('telemetry', { A: { t: 1 } })).rejects.toThrow();
      log = new FileLog(tempDir('sluice-gateway-reopened-'), { mode: 'never' }, capturingLogger().logger); // for afterEach
    });
  });

  describe('its bound of sub-devices', () => {
    beforeEach(async () => { await start({ maxSubDevicesPerGateway: 2 }); });

    it('refuses a message that would create more, creating none of it, and keeps taking the ones it has', async () => {
      expect(await publish('telemetry', { A: { t: 1 } })).toEqual({ accepted: true });
      expect(await publish('telemetry', { B: { t: 1 }, C: { t: 1 } })).toEqual(rejection('too_many_devices',
        /^gateway "gw-1" has 1 sub-devices; the 2 new in this message would pass its limit of 2$/));
      expect(registry.findByName('B')).toBeUndefined();
      expect(registry.findByName('C')).toBeUndefined();
      expect(await publish('connect', { device: 'B' })).toEqual({ accepted: true });
      expect(await publish('connect', { device: 'C' })).toEqual(rejection('too_many_devices', /limit of 2/));
      expect(await publish('telemetry', { A: { t: 2 }, B: { t: 2 } })).toEqual({ accepted: true });
      expect(registry.subDevices(gw.id).map((d) => d.name)).toEqual(['A', 'B']);
      expect(await metricValue('sluice_messages_rejected_total', { transport: 'mqtt', reason: 'too_many_devices' })).toBe(2);
      expect(rejected.recent(1)[0]).toMatchObject({ deviceId: gw.id, topic: 'v1/gateway/connect' });
    });
  });

  describe('online and offline', () => {
    beforeEach(async () => { await start(); });

    it('follows connect and disconnect', async () => {
      await publish('connect', { device: 'A' });
      await publish('connect', { device: 'B' });
      const [a, b] = [named('A'), named('B')];
      expect(gateways.isOnline(a.id)).toBe(true);
      expect(gateways.onlineSince(a.id)).toBe(T0);
      expect(gateways.connectedSubDevices(gw.id).sort()).toEqual([a.id, b.id].sort());
      await publish('disconnect', { device: 'A' });
      expect(gateways.isOnline(a.id)).toBe(false);
      expect(gateways.onlineSince(a.id)).toBeUndefined();
      expect(gateways.connectedSubDevices(gw.id)).toEqual([b.id]);
    });

    it('counts a device named in telemetry as connected, as ThingsBoard does', async () => {
      await publish('telemetry', { A: { t: 1 } });
      expect(gateways.isOnline(named('A').id)).toBe(true);
    });

    it('takes the sub-devices of a closed gateway connection offline', async () => {
      await publish('connect', { device: 'A' }, 7);
      gateways.connectionClosed(registry.get(gw.id), 7);
      expect(gateways.isOnline(named('A').id)).toBe(false);
      expect(gateways.connectedSubDevices(gw.id)).toEqual([]);
    });

    it('keeps a device online when the gateway\'s old connection closes after its new one announced it', async () => {
      await publish('connect', { device: 'A' }, 1);
      await publish('connect', { device: 'A' }, 2);
      gateways.connectionClosed(registry.get(gw.id), 1);
      expect(gateways.isOnline(named('A').id)).toBe(true);
      gateways.connectionClosed(registry.get(gw.id), 2);
      expect(gateways.isOnline(named('A').id)).toBe(false);
    });

    it('does not count a sub-device its gateway let go of', async () => {
      await publish('connect', { device: 'A' });
      registry.update(gw.id, { gateway: false });
      expect(named('A').gatewayId).toBeUndefined();
      expect(gateways.isOnline(named('A').id)).toBe(false);
    });
  });
});
