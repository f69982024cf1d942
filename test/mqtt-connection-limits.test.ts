import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressKey, defaultMaxConnections, openFilesSoftLimit } from '../server/src/ingest/connection-admission.js';
import { LimitedServer, MiB, RawClient, retainedBytes } from './support/mqtt-hostile.js';
import { waitFor } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';
/** CONNACK, return code 3: server unavailable. */
const CONNACK_UNAVAILABLE = [0x20, 2, 0, 3];

describe('connection admission defaults', () => {
  it('takes the total from the descriptor limit, with headroom', () => {
    expect(defaultMaxConnections(20_000)).toBe(15_000);
    expect(defaultMaxConnections(1024)).toBe(768);
    expect(defaultMaxConnections(1_048_576)).toBe(50_000);
    expect(defaultMaxConnections(undefined)).toBe(10_000);
    expect(openFilesSoftLimit()).toBeGreaterThan(0); // this is Linux: /proc/self/limits
  });

  it('counts IPv4 as is and IPv6 by its /64', () => {
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey(undefined)).toBe('unknown');
  });
});

describe('MQTT connection limits (issue 16, finding 12)', () => {
  let server: LimitedServer;
  beforeAll(async () => {
    // The CONNECT timeout must outlast the steps up to the second address's refusal, or the first
    // address's idle connections close before the total is reached (seen on a loaded machine at 1.5 s).
    server = await LimitedServer.start({ maxConnections: 8, maxConnectionsPerAddress: 4, connectTimeoutMs: 5000 });
  });
  afterAll(async () => { await server?.stop(); });

  it('refuses at accept beyond the per-address and the total limit, and idle ones are closed by the CONNECT timeout', async () => {
    const before = retainedBytes();
    // One address (127.0.0.2 is this machine too) opens 6 idle connections: 4 are admitted.
    const first = Array.from({ length: 6 }, () => new RawClient(server.mqttPort, '127.0.0.2'));
    await waitFor('2 refusals from 127.0.0.2', () => first.filter((c) => c.closed).length === 2 || undefined);
    for (const refused of first.filter((c) => c.closed)) await refused.expect(CONNACK_UNAVAILABLE);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'max_connections_per_address' })).toBe(2);

    // A legitimate device from another address connects and is stored.
    const device = await server.createDevice('legit');
    const legit = await server.connectDevice(device.token);
    await legit.publishAsync(TELEMETRY, '{"n":1}', { qos: 1 });
    expect((await server.storedLatest(device)).n?.value).toBe(1);

    // A second address fills the total (4 + 1 + 3 = 8); its fourth is refused.
    const second = Array.from({ length: 4 }, () => new RawClient(server.mqttPort, '127.0.0.3'));
    await waitFor('1 refusal from 127.0.0.3', () => second.filter((c) => c.closed).length === 1 || undefined);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'max_connections' })).toBe(1);
    await expect(server.connectDevice(device.token)).rejects.toThrow(/Server unavailable/i);

    // The idle ones never send a CONNECT: the timeout closes them, and devices connect again.
    const idle = [...first, ...second].filter((c) => !c.closed);
    expect(idle).toHaveLength(7);
    await Promise.all(idle.map((c) => c.waitClosed(10_000)));
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'connect_timeout' })).toBe(7);
    const again = await server.connectDevice(device.token, { clientId: 'legit-2' });
    await again.publishAsync(TELEMETRY, '{"n":2}', { qos: 1 });
    expect((await server.storedLatest(device)).n?.value).toBe(2);
    // The connected device was never disturbed, and nothing it had acknowledged is lost.
    expect(legit.connected).toBe(true);
    await legit.publishAsync(TELEMETRY, '{"n":3}', { qos: 1 });
    expect((await server.storedLatest(device)).n?.value).toBe(3);
    expect(await server.telemetryRecords()).toBe(3);
    expect(retainedBytes() - before).toBeLessThan(16 * MiB);
    legit.end(true);
    again.end(true);
  });
});
