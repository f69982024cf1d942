import { parseDuration } from '../duration.js';
import type { NodeKind } from '../node-kind.js';

/** Above this many keys, keys past the interval are swept out now and then (at most once per interval). */
const SWEEP_ABOVE = 10_000;

/**
 * `{"type": "deduplicate", "key": "<expression>", "interval": "1m"}`: drops a message when its
 * device sent one with the same key within the interval of it (by message time, before or after it:
 * messages can come out of order).
 *
 * It remembers at most `dedupeMaxKeys` keys (rule-limits.ts). The map is kept in the order keys
 * were last let through, so its first entry is the one longest unseen: when it is full, keys past
 * their interval go first, then the oldest — whose next message is then let through as new, and
 * each such early forgetting is counted (`dedupe_keys`).
 */
export const deduplicateNode: NodeKind = {
  type: 'deduplicate',
  compile(spec, ctx) {
    const key = ctx.expression(spec.key as string, 'key');
    const interval = parseDuration(spec.interval as string);
    const maxKeys = ctx.limits.dedupeMaxKeys;
    const seen = new Map<string, number>();
    let sweepAt = -Infinity;
    const sweep = (now: number) => {
      sweepAt = now + interval;
      for (const [k, ts] of seen) if (now - ts >= interval) seen.delete(k);
    };
    const makeRoom = (now: number) => {
      // The oldest first: usually past its interval, so this is cheap.
      for (const [k, ts] of seen) {
        if (seen.size < maxKeys || now - ts < interval) break;
        seen.delete(k);
      }
      if (seen.size >= maxKeys && now >= sweepAt) sweep(now);
      while (seen.size >= maxKeys) {
        const [oldest, ts] = seen.entries().next().value!;
        seen.delete(oldest);
        ctx.limitHit('dedupe_keys', `deduplicate remembers at most ${maxKeys} keys; forgot one last let through ${now - ts} ms before, within its interval`);
      }
    };
    return (message) => {
      const id = `${message.deviceId}\u0000${JSON.stringify(key(message))}`;
      const last = seen.get(id);
      // Either side: a message older than the one let through but within its interval is a
      // duplicate too (and does not restart the interval).
      if (last !== undefined && Math.abs(message.ts - last) < interval) return null;
      if (last !== undefined) seen.delete(id); // set again below, at the end: the newest
      else if (seen.size >= maxKeys) makeRoom(message.ts);
      seen.set(id, message.ts);
      if (seen.size > SWEEP_ABOVE && message.ts >= sweepAt) sweep(message.ts);
      return message;
    };
  },
};
