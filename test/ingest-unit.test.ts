import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SluiceError } from '../server/src/errors.js';
import { DeviceTelemetryKeys } from '../server/src/ingest/device-telemetry-keys.js';
import { Ingest, type IngestOptions, type TelemetryListener } from '../server/src/ingest/ingest.js';
import { RejectedMessages } from '../server/src/ingest/rejected-messages.js';
import { FileLog } from '../server/src/log/file-log.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { createMetrics, type Metrics } from '../server/src/metrics.js';
import { openDatabase } from '../server/src/storage/database.js';
import type { Device } from '../server/src/storage/device-registry.js';
import { TimeSeriesStore } from '../server/src/storage/timeseries.js';
import { TELEMETRY_TOPIC } from '../server/src/telemetry/device-message.js';
import { capturingLogger, tempDir } from './support/test-server.js';

/**
 * Ingest on its own, over a real FileLog and a real SQLite store in a temp dir, with a clock the
 * test moves: what it appends, answers, counts, lists and logs.
 */
const MAX_BYTES = 200;
const T0 = 1_700_000_000_000;
const device = (id = 'dev-1'): Device => ({ id, name: id, type: 't', token: `tok-${id}`, attributes: {}, createdAt: 0, updatedAt: 0 });
const buf = (s: string) => Buffer.from(s);

interface Rig {
  dir: string;
  log: FileLog;
  db: Database.Database;
  ingest: Ingest;
  rejected: RejectedMessages;
  metrics: Metrics;
  clock: { t: number; now(): number };
  lines: ReturnType<typeof capturingLogger>['lines'];
}

async function rig(options: (store: TimeSeriesStore) => IngestOptions = () => ({}), dir = tempDir('sluice-ingest-unit-'), maxBytes = MAX_BYTES): Promise<Rig> {
  const log = new FileLog(dir, { mode: 'never' }, capturingLogger().logger);
  await log.ensureTopic(TELEMETRY_TOPIC, 2);
  const db = openDatabase(dir);
  const store = new TimeSeriesStore(db);
  const rejected = new RejectedMessages();
  const metrics = createMetrics(log, log.stats);
  const clock = { t: T0, now() { return this.t; } };
  const { logger, lines } = capturingLogger();
  const ingest = new Ingest(log, rejected, metrics, clock, logger, maxBytes, options(store));
  return { dir, log, db, ingest, rejected, metrics, clock, lines };
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

async function allRecords(log: FileLog): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for (const p of [0, 1]) out.push(...await log.read(TELEMETRY_TOPIC, p, 0, 1 << 20));
  return out;
}

describe('ingest over a real log', () => {
  let r: Rig;
  beforeEach(async () => { r = await rig(); });
  afterEach(async () => { await r.log.close(); r.db.close(); });

  it('appends telemetry as the device sent it, at server time, and hands its values to the listener', async () => {
    const calls: Parameters<TelemetryListener>[] = [];
    r.ingest.onTelemetry((...args) => calls.push(args));
    const payload = buf('{"temp":21.5,"on":true}');
    await expect(r.ingest.accept(device(), 'telemetry', payload, 'mqtt', 'v1/devices/me/telemetry')).resolves.toEqual({ accepted: true });
    const records = await allRecords(r.log);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ key: 'dev-1', timestamp: T0, headers: { kind: 'telemetry' } });
    expect(records[0]!.value.toString()).toBe('{"temp":21.5,"on":true}');
    expect(calls).toHaveLength(1);
    const [d, parsed, appended, bytes] = calls[0]!;
    expect(d.id).toBe('dev-1');
    expect(parsed).toEqual({ ok: true, entries: [{ ts: T0, values: { temp: 21.5, on: true } }], keys: 2 });
    expect(appended).toEqual({ partition: records[0]!.partition, offset: 0 });
    expect(bytes).toBe(payload.length);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'mqtt', kind: 'telemetry' })).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'mqtt', kind: 'attributes' })).toBe(0);
    expect(r.rejected.recent(10)).toEqual([]);
  });

  it('appends attributes with their kind, counts them by transport, and does not hand them to the telemetry listener', async () => {
    let calls = 0;
    r.ingest.onTelemetry(() => { calls++; });
    await expect(r.ingest.accept(device(), 'attributes', buf('{"fw":"1.0"}'), 'http', '/api/v1/<token>/attributes')).resolves.toEqual({ accepted: true });
    const records = await allRecords(r.log);
    expect(records.map((x) => x.headers)).toEqual([{ kind: 'attributes' }]);
    expect(calls).toBe(0);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'http', kind: 'attributes' })).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'http', kind: 'telemetry' })).toBe(0);
  });

  it('accepts without a listener', async () => {
    await expect(r.ingest.accept(device(), 'telemetry', buf('{"a":1}'), 'mqtt', 't')).resolves.toEqual({ accepted: true });
    expect(await allRecords(r.log)).toHaveLength(1);
  });

  it('takes a payload of exactly the byte limit and refuses one byte more, before parsing it', async () => {
    const exact = `{"k":"${'x'.repeat(MAX_BYTES - 8)}"}`;
    expect(Buffer.byteLength(exact)).toBe(MAX_BYTES);
    await expect(r.ingest.accept(device(), 'telemetry', buf(exact), 'mqtt', 't')).resolves.toEqual({ accepted: true });
    r.clock.t = T0 + 5;
    const over = buf(`{"k":"${'x'.repeat(MAX_BYTES - 7)}"}`);
    await expect(r.ingest.accept(device('dev-2'), 'telemetry', over, 'http', '/api/v1/<token>/telemetry')).resolves.toEqual({
      accepted: false, category: 'too_large', reason: `payload of ${MAX_BYTES + 1} bytes exceeds the ${MAX_BYTES}-byte limit`,
    });
    // Not even valid JSON is looked at past the limit.
    await expect(r.ingest.accept(device(), 'telemetry', buf('x'.repeat(MAX_BYTES + 1)), 'mqtt', 't')).resolves.toMatchObject({ category: 'too_large' });
    expect(await allRecords(r.log)).toHaveLength(1);
    expect(r.rejected.recent(10).at(-1)).toEqual({ ts: T0 + 5, deviceId: 'dev-2', topic: '/api/v1/<token>/telemetry', reason: `payload of ${MAX_BYTES + 1} bytes exceeds the ${MAX_BYTES}-byte limit` });
    expect(await metricValue(r.metrics, 'sluice_messages_rejected_total', { transport: 'http', reason: 'too_large' })).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'too_large' })).toBe(1);
    expect(r.lines.filter((l) => l.msg === 'rejected a device message')).toHaveLength(2);
    expect(r.lines.find((l) => l.msg === 'rejected a device message')).toMatchObject({ level: 20, deviceId: 'dev-2', topic: '/api/v1/<token>/telemetry' });
  });

  it('refuses what the parser refuses, with its category and reason, and appends nothing', async () => {
    let calls = 0;
    r.ingest.onTelemetry(() => { calls++; });
    await expect(r.ingest.accept(device(), 'telemetry', buf('{"a":'), 'mqtt', 'v1/devices/me/telemetry')).resolves.toMatchObject({
      accepted: false, category: 'not_json', reason: expect.stringMatching(/^payload is not valid JSON/),
    });
    await expect(r.ingest.accept(device(), 'attributes', buf('{"a":1,"":2}'), 'mqtt', 'v1/devices/me/attributes')).resolves.toEqual({
      accepted: false, category: 'bad_shape', reason: 'empty key',
    });
    expect(await allRecords(r.log)).toEqual([]);
    expect(calls).toBe(0);
    expect(r.rejected.recent(10).map((x) => [x.topic, x.deviceId])).toEqual([['v1/devices/me/attributes', 'dev-1'], ['v1/devices/me/telemetry', 'dev-1']]);
    expect(await metricValue(r.metrics, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'not_json' })).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'bad_shape' })).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'mqtt', kind: 'telemetry' })).toBe(0);
  });

  it('records a message rejected before validation (reject) like any other', () => {
    expect(r.ingest.reject('mqtt', 'v1/devices/me/nope', undefined, 42, 'unknown_topic', 'unknown topic')).toEqual({ accepted: false, reason: 'unknown topic', category: 'unknown_topic' });
    expect(r.rejected.recent(1)).toEqual([{ ts: 42, deviceId: undefined, topic: 'v1/devices/me/nope', reason: 'unknown topic' }]);
  });

  it('acknowledges even when the listener throws: counts it and logs it at most once a second', async () => {
    r.ingest.onTelemetry(() => { throw new Error('listener broke'); });
    await expect(r.ingest.accept(device(), 'telemetry', buf('{"a":1}'), 'mqtt', 't')).resolves.toEqual({ accepted: true });
    await expect(r.ingest.accept(device(), 'telemetry', buf('{"a":2}'), 'mqtt', 't')).resolves.toEqual({ accepted: true });
    expect(await allRecords(r.log)).toHaveLength(2);
    expect(await metricValue(r.metrics, 'sluice_telemetry_listener_errors_total')).toBe(2);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'mqtt', kind: 'telemetry' })).toBe(2);
    const failed = r.lines.filter((l) => l.msg === 'a telemetry listener failed after the append (the message is in the log and acknowledged)');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 50, deviceId: 'dev-1', offset: 0, alsoFailedSinceLastLine: 0, err: { message: 'listener broke' } });
    expect(typeof failed[0]!.partition).toBe('number');
  });

  it('is not full before the log ever refused anything', () => {
    expect(r.ingest.isLogFull()).toBe(false);
  });

  it('passes on what a closed log refuses with, as it is, and logs it as an append failure', async () => {
    await r.log.close();
    const err = await r.ingest.accept(device(), 'telemetry', buf('{"a":1}'), 'mqtt', 't').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect(err).toMatchObject({ code: 'NOT_READY', message: 'the log is closed' });
    expect(r.ingest.isLogFull()).toBe(false);
    expect(await metricValue(r.metrics, 'sluice_log_append_errors_total')).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'mqtt', kind: 'telemetry' })).toBe(0);
    expect(r.lines.filter((l) => l.msg === 'could not append a device message to the log')).toEqual([
      expect.objectContaining({ level: 50, deviceId: 'dev-1', err: expect.objectContaining({ message: 'the log is closed' }) }),
    ]);
  });
});

describe('ingest on a full disk (the log segment is /dev/full)', () => {
  let r: Rig;
  beforeEach(async () => {
    // The topic is made on a normal dir, then its segment is swapped for /dev/full: every write
    // to it fails with ENOSPC, as on a full disk.
    const dir = tempDir('sluice-ingest-full-');
    const first = new FileLog(dir, { mode: 'never' }, capturingLogger().logger);
    await first.ensureTopic(TELEMETRY_TOPIC, 2);
    await first.close();
    for (const p of ['0', '1']) {
      const partDir = path.join(dir, 'log', TELEMETRY_TOPIC, p);
      const segment = fs.readdirSync(partDir).find((f) => f.endsWith('.log'))!;
      fs.rmSync(path.join(partDir, segment));
      fs.symlinkSync('/dev/full', path.join(partDir, segment));
    }
    r = await rig(() => ({}), dir);
  });
  afterEach(async () => { await r.log.close(); r.db.close(); });

  const acceptError = (n = 1) => r.ingest.accept(device(), 'telemetry', buf(`{"a":${n}}`), 'mqtt', 't').then(() => undefined, (e: unknown) => e as SluiceError);

  it('refuses with LOG_FULL and a message for the device, and says the log is full for one second', async () => {
    const err = await acceptError();
    expect(err).toBeInstanceOf(SluiceError);
    expect(err!.code).toBe('LOG_FULL');
    expect(err!.message).toBe('disk full: the server cannot store messages right now; retry later');
    expect((err!.cause as SluiceError).code).toBe('LOG_FULL');
    expect((err!.cause as SluiceError).message).toMatch(/ENOSPC/);
    expect(r.ingest.isLogFull()).toBe(true);
    r.clock.t = T0 + 999;
    expect(r.ingest.isLogFull()).toBe(true);
    r.clock.t = T0 + 1000;
    expect(r.ingest.isLogFull()).toBe(false);
    expect(await metricValue(r.metrics, 'sluice_log_append_errors_total')).toBe(1);
    expect(await metricValue(r.metrics, 'sluice_messages_in_total', { transport: 'mqtt', kind: 'telemetry' })).toBe(0);
  });

  it('logs a full disk once a second, not once a message', async () => {
    const full = () => r.lines.filter((l) => l.msg === 'the log is out of disk space: refusing device messages');
    await acceptError(1);
    r.clock.t = T0 + 999;
    await acceptError(2);
    expect(full()).toHaveLength(1);
    expect(full()[0]).toMatchObject({ level: 50, deviceId: 'dev-1' });
    r.clock.t = T0 + 1000;
    await acceptError(3);
    expect(full()).toHaveLength(2);
    expect(await metricValue(r.metrics, 'sluice_log_append_errors_total')).toBe(3);
    // Each failure holds the refusal for a second from its own time.
    r.clock.t = T0 + 1999;
    expect(r.ingest.isLogFull()).toBe(true);
  });
});

describe('ingest limits', () => {
  it('applies its payload limits, and the defaults where none is given', async () => {
    const keys = (n: number) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])));
    const nested = (levels: number) => `{"v":${'{"d":'.repeat(levels)}1${'}'.repeat(levels)}}`;
    const r = await rig(() => ({ payloadLimits: { maxKeys: 3 } }));
    try {
      expect(await r.ingest.accept(device(), 'telemetry', buf(keys(3)), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await r.ingest.accept(device(), 'telemetry', buf(keys(4)), 'mqtt', 't')).toMatchObject({ accepted: false, category: 'too_complex', reason: expect.stringMatching(/more than 3 keys/) });
      // Depth keeps its default of 16.
      expect(await r.ingest.accept(device(), 'telemetry', buf(nested(1)), 'mqtt', 't')).toEqual({ accepted: true });
    } finally { await r.log.close(); r.db.close(); }
    const d = await rig(() => ({ payloadLimits: { maxDepth: 3 } }));
    try {
      expect(await d.ingest.accept(device(), 'telemetry', buf(nested(2)), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await d.ingest.accept(device(), 'telemetry', buf(nested(3)), 'mqtt', 't')).toMatchObject({ accepted: false, category: 'too_complex', reason: expect.stringMatching(/more than 3 levels/) });
    } finally { await d.log.close(); d.db.close(); }
    const def = await rig(undefined, undefined, 1 << 20);
    try {
      expect(await def.ingest.accept(device(), 'telemetry', buf(nested(15)), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await def.ingest.accept(device(), 'telemetry', buf(nested(16)), 'mqtt', 't')).toMatchObject({ category: 'too_complex' });
      expect(await def.ingest.accept(device(), 'telemetry', buf(`{"v":{"w":${keys(998)}}}`), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await def.ingest.accept(device(), 'telemetry', buf(`{"v":{"w":${keys(999)}}}`), 'mqtt', 't')).toMatchObject({ category: 'too_complex' });
    } finally { await def.log.close(); def.db.close(); }
  });

  it('caps telemetry keys and client attributes per device, each with its own cap', async () => {
    const r = await rig((store) => ({
      deviceKeys: new DeviceTelemetryKeys({ keysOf: (id, limit) => store.seriesKeys(id, limit), hasKey: (id, key) => store.hasSeries(id, key) }, 2),
      deviceAttributes: new DeviceTelemetryKeys({ keysOf: (id, limit) => store.attributeKeys(id, limit), hasKey: (id, key) => store.hasAttribute(id, key) }, 1, undefined, 'client attributes'),
    }));
    try {
      expect(await r.ingest.accept(device(), 'telemetry', buf('{"a":1,"b":2}'), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await r.ingest.accept(device(), 'telemetry', buf('{"c":3}'), 'mqtt', 'v1/devices/me/telemetry')).toMatchObject({
        accepted: false, category: 'too_many_keys', reason: expect.stringMatching(/already has 2 telemetry keys.*limit of 2/),
      });
      expect(await r.ingest.accept(device(), 'attributes', buf('{"fw":"1"}'), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await r.ingest.accept(device(), 'attributes', buf('{"model":"x"}'), 'mqtt', 't')).toMatchObject({
        accepted: false, category: 'too_many_keys', reason: expect.stringMatching(/already has 1 client attributes/),
      });
      // Another device has caps of its own.
      expect(await r.ingest.accept(device('dev-2'), 'telemetry', buf('{"c":3}'), 'mqtt', 't')).toEqual({ accepted: true });
      expect((await allRecords(r.log)).length).toBe(3);
      expect(r.rejected.recent(1)[0]).toMatchObject({ deviceId: 'dev-1', reason: expect.stringMatching(/client attributes/) });
      expect(await metricValue(r.metrics, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'too_many_keys' })).toBe(2);
    } finally { await r.log.close(); r.db.close(); }
  });

  it('has no key cap without one', async () => {
    const r = await rig();
    try {
      for (let i = 0; i < 5; i++) expect(await r.ingest.accept(device(), 'telemetry', buf(`{"k${i}":1}`), 'mqtt', 't')).toEqual({ accepted: true });
      expect(await r.ingest.accept(device(), 'attributes', buf('{"a":1,"b":2,"c":3}'), 'mqtt', 't')).toEqual({ accepted: true });
    } finally { await r.log.close(); r.db.close(); }
  });
});
