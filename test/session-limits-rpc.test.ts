import { describe, expect, it } from 'vitest';
import { sessionLimitsReply } from '../server/src/ingest/session-limits-rpc.js';

const limits = { maxPayloadBytes: 65_536, maxInflightMessages: 100 };
const ask = (topic: string, body: unknown, gateway = false) => sessionLimitsReply(topic, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), limits, gateway);

describe('getSessionLimits (ThingsBoard SDK)', () => {
  it('answers on the response topic of the request id with the limits and no rate limits', () => {
    expect(ask('v1/devices/me/rpc/request/1', { method: 'getSessionLimits', params: { timeout: 5000 } })).toEqual({
      topic: 'v1/devices/me/rpc/response/1', payload: '{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{}}',
    });
    expect(JSON.parse(ask('v1/devices/me/rpc/request/42', { method: 'getSessionLimits' }, true)!.payload)).toEqual({
      maxPayloadSize: 65536, maxInflightMessages: 100, rateLimits: {}, gatewayRateLimits: {},
    });
  });

  const notOurs: [string, string, unknown][] = [
    ['another method', 'v1/devices/me/rpc/request/1', { method: 'getTime' }],
    ['another topic', 'v1/devices/me/rpc/response/1', { method: 'getSessionLimits' }],
    ['no request id', 'v1/devices/me/rpc/request/', { method: 'getSessionLimits' }],
    ['a request id that is not a number', 'v1/devices/me/rpc/request/1/x', { method: 'getSessionLimits' }],
    ['a request id of eleven digits', 'v1/devices/me/rpc/request/12345678901', { method: 'getSessionLimits' }],
    ['a payload that is not JSON', 'v1/devices/me/rpc/request/1', '{"method":'],
    ['a payload that is not an object', 'v1/devices/me/rpc/request/1', 'null'],
  ];
  for (const [what, topic, body] of notOurs) {
    it(`leaves ${what} to the device RPC`, () => {
      expect(ask(topic, body)).toBeUndefined();
    });
  }
});
