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

/** /api/devices: the device registry. */
export function devicesRouter(registry: DeviceRegistry, store: TimeSeriesStore): Router {
  const router = Router();

  router.post('/', (req, res) => {
    const body = parseInput(createDeviceBody, req.body, 'body');
    res.status(201).json(registry.create(body));
  });

  // ?include=latest adds each device's latest values: the whole fleet in one request.
  router.get('/', (req, res) => {
    const { include } = parseInput(listQuery, req.query, 'query');
    if (include !== 'latest') return void res.json(registry.list());
    const latest = store.latestOfAll();
    res.json(registry.list().map((d) => ({ ...d, latest: latest.get(d.id) ?? {} })));
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
