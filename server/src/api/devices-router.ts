import { Router } from 'express';
import { z } from 'zod';
import type { DeviceRegistry } from '../storage/device-registry.js';
import type { TimeSeriesStore } from '../storage/timeseries.js';
import { parseInput } from './validate.js';

const name = z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');
const type = z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters');
const attributes = z.record(z.string(), z.unknown(), { error: 'must be a JSON object' });

const notAnObject = { error: (issue: { code?: string }) => (issue.code === 'invalid_type' ? 'must be a JSON object' : undefined) };
const createDeviceBody = z.strictObject({ name, type: type.optional(), attributes: attributes.optional() }, notAnObject);
const patchDeviceBody = z.strictObject({ name: name.optional(), type: type.optional(), attributes: attributes.optional() }, notAnObject);

const listQuery = z.object({ include: z.enum(['latest'], { error: 'must be latest' }).optional() }).strict();

/**
 * Latest values per device in the fleet answer (?include=latest): the whole fleet comes in one
 * answer, so a device with thousands of keys must not make it hundreds of MB.
 */
export const DEFAULT_FLEET_LATEST_KEYS_PER_DEVICE = 100;

/** /api/devices: the device registry. */
export function devicesRouter(registry: DeviceRegistry, store: TimeSeriesStore, fleetLatestKeysPerDevice = DEFAULT_FLEET_LATEST_KEYS_PER_DEVICE): Router {
  const router = Router();

  router.post('/', (req, res) => {
    const body = parseInput(createDeviceBody, req.body, 'body');
    res.status(201).json(registry.create(body));
  });

  // ?include=latest adds each device's latest values: the whole fleet in one request. A device
  // with more keys gets its first ones and `latestTruncated: true` (all: .../telemetry/latest).
  router.get('/', (req, res) => {
    const { include } = parseInput(listQuery, req.query, 'query');
    if (include !== 'latest') return void res.json(registry.list());
    const devices = registry.list();
    const latest = store.latestOfEach(devices.map((d) => d.id), fleetLatestKeysPerDevice);
    res.json(devices.map((d) => {
      const l = latest.get(d.id);
      return l?.truncated ? { ...d, latest: l.latest, latestTruncated: true } : { ...d, latest: l?.latest ?? {} };
    }));
  });

  router.get('/:id', (req, res) => {
    const device = registry.get(req.params.id);
    res.json({ ...device, clientAttributes: store.clientAttributes(device.id) });
  });

  router.patch('/:id', (req, res) => {
    const patch = parseInput(patchDeviceBody, req.body, 'body');
    res.json(registry.update(req.params.id, patch));
  });

  router.delete('/:id', (req, res) => {
    registry.delete(req.params.id);
    res.status(204).end();
  });

  return router;
}
