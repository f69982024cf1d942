import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noLimitOverrides } from '../server/src/limit-options.js';
import { metricValue } from './support/hostile-input.js';
import { TestServer, tempDir, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

/**
 * Client attributes are rows of their own, all shown with the device (GET /api/devices/:id): a
 * device inventing attribute names without end would grow both without bound. A device has at
 * most --max-attributes-per-device of them (here 50): a message that would add more is refused
 * (`too_many_keys`), known attributes keep being updated, and the cap holds across a restart
 * (the known ones come from the database).
 */

function attributes(from: number, count: number, value: number): string {
  const values: Record<string, number> = {};
  for (let k = from; k < from + count; k++) values[`attr${k}`] = value;
  return JSON.stringify(values);
}

describe('distinct client attributes per device', () => {
  const dataDir = tempDir();
  let server: TestServer;
  let device: CreatedDevice;
  const startCapped = () => TestServer.start({ dataDir, limits: { ...noLimitOverrides(), telemetry: { maxAttributesPerDevice: 50 } } });
  beforeAll(async () => {
    server = await startCapped();
    device = await server.createDevice('chatty');
  });
  afterAll(async () => { await server?.stop(); });

  const post = (body: string) => fetch(`${server.baseUrl}/api/v1/${device.token}/attributes`, { method: 'POST', body });
  const stored = async () => (await server.json<{ clientAttributes: Record<string, unknown> }>('GET', `/api/devices/${device.id}`)).clientAttributes;

  it('refuses attributes past the cap, keeps updating known ones, and holds the cap across a restart', async () => {
    expect((await post(attributes(0, 50, 1))).status).toBe(200);
    await server.sluice.storageCaughtUp();
    const refused = await post(attributes(50, 1, 1));
    await expectApiError(refused, 400, /already has 50 client attributes; this message would add 1 more \("attr50"\)/);
    expect((await post(attributes(0, 50, 2))).status).toBe(200);
    // Telemetry keys have a cap of their own: not counted against attributes.
    expect((await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: '{"t":1}' })).status).toBe(200);
    await server.sluice.storageCaughtUp();
    const now = await stored();
    expect(Object.keys(now)).toHaveLength(50);
    expect(now.attr49).toBe(2);
    expect(await metricValue(server, 'sluice_messages_rejected_total', { transport: 'http', reason: 'too_many_keys' })).toBe(1);

    await server.stop();
    server = await startCapped();
    expect((await post(attributes(60, 1, 1))).status).toBe(400);
    expect((await post(attributes(10, 1, 3))).status).toBe(200);
  });
});
