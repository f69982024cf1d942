/**
 * ThingsBoard's `getSessionLimits`: its device SDK asks on every connect, on
 * `v1/devices/me/rpc/request/{id}` with `{"method":"getSessionLimits","params":{...}}`, and sizes
 * its payloads and in-flight window from the answer on `v1/devices/me/rpc/response/{id}`.
 * Sluice answers with its real limits; it has no per-device rate limits, so `rateLimits` (which
 * the SDK requires to take the answer at all) is empty: the SDK then applies none.
 */
export const DEVICE_RPC_REQUEST_PREFIX = 'v1/devices/me/rpc/request/';
const DEVICE_RPC_RESPONSE_PREFIX = 'v1/devices/me/rpc/response/';

export interface SessionLimits {
  /** The largest payload a device message may have (--max-payload-bytes). */
  maxPayloadBytes: number;
  /** QoS 1/2 messages a device may have unacknowledged (the transport's Receive Maximum). */
  maxInflightMessages: number;
}

/** A request id as ThingsBoard's clients send them: a counter. */
const REQUEST_ID = /^[0-9]{1,10}$/;

/**
 * The answer to a `getSessionLimits` request on `topic`, or undefined when the PUBLISH is not one
 * (another method, another topic, not JSON): the caller treats it as any other device RPC.
 */
export function sessionLimitsReply(topic: string, payload: Buffer, limits: SessionLimits, gateway: boolean): { topic: string; payload: string } | undefined {
  if (!topic.startsWith(DEVICE_RPC_REQUEST_PREFIX)) return undefined;
  const id = topic.slice(DEVICE_RPC_REQUEST_PREFIX.length);
  if (!REQUEST_ID.test(id)) return undefined;
  let request: unknown;
  try {
    request = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof request !== 'object' || request === null || (request as { method?: unknown }).method !== 'getSessionLimits') return undefined;
  const answer: Record<string, unknown> = { maxPayloadSize: limits.maxPayloadBytes, maxInflightMessages: limits.maxInflightMessages, rateLimits: {} };
  if (gateway) answer.gatewayRateLimits = {};
  return { topic: `${DEVICE_RPC_RESPONSE_PREFIX}${id}`, payload: JSON.stringify(answer) };
}
