import { parseDuration } from '../duration.js';
import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "sample", "every": n}` lets the 1st, (n+1)th, ... message of each device through;
 * `"interval": "10s"` at most one per device per interval (by message time, also out of order); `"probability": p`
 * each message with probability p.
 */
export const sampleNode: NodeKind = {
  type: 'sample',
  compile(spec, ctx) {
    if (typeof spec.every === 'number') {
      const every = spec.every;
      const counts = new Map<string, number>();
      return (message) => {
        const n = counts.get(message.deviceId) ?? 0;
        counts.set(message.deviceId, n + 1 === every ? 0 : n + 1);
        return n === 0 ? message : null;
      };
    }
    if (typeof spec.interval === 'string') {
      const interval = parseDuration(spec.interval);
      const lastPassed = new Map<string, number>();
      return (message) => {
        const last = lastPassed.get(message.deviceId);
        // Either side: an older message after a newer one is held to the interval too (at most one
        // per interval); one an interval or more older (a device clock set back) starts again there.
        if (last !== undefined && Math.abs(message.ts - last) < interval) return null;
        lastPassed.set(message.deviceId, message.ts);
        return message;
      };
    }
    const probability = spec.probability as number;
    return (message) => (ctx.random() < probability ? message : null);
  },
};
