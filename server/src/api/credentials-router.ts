import { Router } from 'express';
import { z } from 'zod';
import {
  MAX_CERTIFICATE_BYTES, MAX_CLIENT_ID_BYTES, MAX_PASSWORD_BYTES, MAX_TOKEN_BYTES, MAX_USERNAME_BYTES, TOKEN_PATTERN, prepareCredentials,
  type CredentialsInput,
} from '../storage/device-credentials.js';
import type { DeviceRegistry } from '../storage/device-registry.js';
import { parseInput } from './validate.js';

const bytes = (max: number) => z.string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s) <= max, `must be at most ${max} bytes`);
/** MQTT strings may not hold U+0000 [MQTT-1.5.4-2]: a credential with one could never be presented. */
const mqttString = (max: number) => bytes(max).refine((s) => !s.includes('\u0000'), 'must not hold the character U+0000');

const notAnObject = { error: (issue: { code?: string }) => (issue.code === 'invalid_type' ? 'must be a JSON object' : undefined) };
const credentialsType = z.looseObject({
  type: z.enum(['access_token', 'mqtt_basic', 'x509'], { error: 'must be access_token, mqtt_basic or x509' }),
}, notAnObject);
const bodies = {
  access_token: z.strictObject({
    type: z.literal('access_token'),
    token: bytes(MAX_TOKEN_BYTES).regex(TOKEN_PATTERN, "may hold only letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @").optional(),
  }),
  mqtt_basic: z.strictObject({
    type: z.literal('mqtt_basic'),
    clientId: mqttString(MAX_CLIENT_ID_BYTES).optional(),
    username: mqttString(MAX_USERNAME_BYTES).optional(),
    password: bytes(MAX_PASSWORD_BYTES).optional(),
  }).refine((b) => b.clientId !== undefined || b.username !== undefined, { message: 'give a clientId, a username or both', path: ['clientId'] }),
  x509: z.strictObject({ type: z.literal('x509'), certificate: bytes(MAX_CERTIFICATE_BYTES) }),
};

/**
 * /api/devices/:id/credentials: a device's credentials (device-credentials.ts), mounted by the
 * devices router. A change stops the old credentials at once and closes the device's connections.
 */
export function credentialsRouter(registry: DeviceRegistry): Router {
  const router = Router({ mergeParams: true });
  const id = (params: unknown) => (params as { id: string }).id;

  router.get('/', (req, res) => {
    res.json(registry.credentialsOf(id(req.params)));
  });

  router.put('/', async (req, res) => {
    const deviceId = id(req.params);
    registry.get(deviceId); // 404 before anything is hashed
    const { type } = parseInput(credentialsType, req.body, 'body');
    const input = parseInput(bodies[type], req.body, 'body') as CredentialsInput;
    res.json(registry.setCredentials(deviceId, await prepareCredentials(input)));
  });

  router.post('/rotate', (req, res) => {
    res.json(registry.rotateToken(id(req.params)));
  });

  return router;
}
