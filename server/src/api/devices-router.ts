import { Router } from 'express';
import { z } from 'zod';
import type { Device, DeviceRegistry } from '../storage/device-registry.js';
import type { TimeSeriesStore } from '../storage/timeseries.js';
import { credentialsRouter } from './credentials-router.js';
import { parseInput } from './validate.js';

const name = z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');
const type = z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters');
const attributes = z.record(z.string(), z.unknown(), { error: 'must be a JSON object' });

const notAnObject = { error: (issue: { code?: string }) => (issue.code === 'invalid_type' ? 'must be a JSON object' : undefined) };
const gateway = z.boolean({ error: 'must be true or false' });
const createDeviceBody = z.strictObject({ name, type: type.optional(), attributes: attributes.optional(), gateway: gateway.optional() }, notAnObject);
const patchDeviceBody = z.strictObject({ name: name.optional(), type: type.optional(), attributes: attributes.optional(), gateway: gateway.optional() }, notAnObject);

/**
 * A device as the API shows it: its token only while it is on an access token (on other
 * credentials it has none that works), how it authenticates, whether it is a gateway, and for a
 * sub-device the gateway it belongs to.
 */
export function deviceView(d: Device) {
  const credentialsType = d.credentialsType ?? 'access_token';
  return {
    id: d.id, name: d.name, type: d.type, ...(credentialsType === 'access_token' ? { token: d.token } : {}), attributes: d.attributes,
    createdAt: d.createdAt, updatedAt: d.updatedAt, credentialsType, gateway: d.isGateway === true, ...(d.gatewayId !== undefined ? { gatewayId: d.gatewayId } : {}),
  };
}

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
    res.status(201).json(deviceView(registry.create(body)));
  });

  // ?include=latest adds each device's latest values: the whole fleet in one request. A device
  // with more keys gets its first ones and `latestTruncated: true` (all: .../telemetry/latest).
  router.get('/', (req, res) => {
    const { include } = parseInput(listQuery, req.query, 'query');
    if (include !== 'latest') return void res.json(registry.list().map(deviceView));
    const devices = registry.list();
    const latest = store.latestOfEach(devices.map((d) => d.id), fleetLatestKeysPerDevice);
    res.json(devices.map((d) => {
      const l = latest.get(d.id);
      return l?.truncated ? { ...deviceView(d), latest: l.latest, latestTruncated: true } : { ...deviceView(d), latest: l?.latest ?? {} };
    }));
  });

  router.get('/:id', (req, res) => {
    const device = registry.get(req.params.id);
    res.json({
      ...deviceView(device), clientAttributes: store.clientAttributes(device.id),
      ...(device.isGateway === true ? { subDevices: registry.subDevices(device.id).map((d) => d.id) } : {}),
    });
  });

  router.patch('/:id', (req, res) => {
    const patch = parseInput(patchDeviceBody, req.body, 'body');
    res.json(deviceView(registry.update(req.params.id, patch)));
  });

  router.use('/:id/credentials', credentialsRouter(registry));

  router.delete('/:id', (req, res) => {
    registry.delete(req.params.id);
    res.status(204).end();
  });

  return router;
}
