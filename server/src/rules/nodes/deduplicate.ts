import { parseDuration } from '../duration.js';
import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "deduplicate", "key": "<expression>", "interval": "1m"}`: drops a message when its
 * device sent one with the same key within the interval before it (by message time).
 */
export const deduplicateNode: NodeKind = {
  type: 'deduplicate',
  compile(spec, ctx) {
    const key = ctx.expression(spec.key as string, 'key');
    const interval = parseDuration(spec.interval as string);
    const seen = new Map<string, number>();
    let sweepAt = 0;
    return (message) => {
      const id = `${message.deviceId}\u0000${JSON.stringify(key(message))}`;
      const last = seen.get(id);
      if (last !== undefined && message.ts >= last && message.ts - last < interval) return null;
      seen.set(id, message.ts);
      // Forget keys older than the interval now and then, so memory stays bounded.
      if (seen.size > 10_000 && message.ts > sweepAt) {
        sweepAt = message.ts + interval;
        for (const [k, ts] of seen) if (message.ts - ts >= interval) seen.delete(k);
      }
      return message;
    };
  },
};
