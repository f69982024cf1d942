import { parseDuration } from '../duration.js';
import { messageKey } from '../message-key.js';
import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "webhook", "url": "https://...", "headers": {...}, "retries": 5, "timeout": "5s"}`:
 * POSTs `{"deviceId", "ts", "values", "metadata", "key"}` as JSON, `key` (message-key.ts) also as
 * the `Idempotency-Key` header, in the background, retried with exponential backoff; passes the
 * message on at once.
 */
export const webhookNode: NodeKind = {
  type: 'webhook',
  compile(spec, ctx) {
    const url = spec.url as string;
    try {
      new URL(url);
    } catch {
      ctx.fail('url', `"${url}" is not a valid URL`);
    }
    // The node's own Idempotency-Key would be one value for every message: Sluice's replaces it.
    const given = Object.entries((spec.headers as Record<string, string> | undefined) ?? {}).filter(([name]) => name.toLowerCase() !== 'idempotency-key');
    const headers = { 'content-type': 'application/json', ...Object.fromEntries(given) };
    const retries = (spec.retries as number | undefined) ?? 5;
    const timeoutMs = parseDuration((spec.timeout as string | undefined) ?? '5s');
    // A call waits at most this long: a target that never answers must not hold sockets for long.
    if (timeoutMs > ctx.limits.webhookMaxTimeoutMs) ctx.fail('timeout', `must be at most ${ctx.limits.webhookMaxTimeoutMs} ms on this server`);
    if (timeoutMs <= 0) ctx.fail('timeout', 'must be longer than 0');
    return (message) => {
      const key = messageKey(ctx.ruleId, ctx.nodeId, ctx.input, message);
      const body = JSON.stringify({ deviceId: message.deviceId, ts: message.ts, values: message.values, metadata: message.metadata, key });
      ctx.sinks.webhook({ url, headers: { ...headers, 'idempotency-key': key }, body, retries, timeoutMs, rule: ctx.ruleId, node: ctx.nodeId });
      return message;
    };
  },
};
