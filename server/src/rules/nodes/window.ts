import type { NodeKind } from '../node-kind.js';

/** `{"type": "window", "window": {...}}`: hands the message to the window engine; passes it on. */
export const windowNode: NodeKind = {
  type: 'window',
  compile(spec, ctx) {
    const window = spec.window as Record<string, unknown>;
    return (message) => {
      ctx.sinks.window(ctx.ruleId, ctx.nodeId, window, message);
      return message;
    };
  },
};
