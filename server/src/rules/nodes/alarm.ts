import type { NodeKind } from '../node-kind.js';

/** `{"type": "alarm", "alarm": {...}}`: hands the message to the alarm engine; passes it on. */
export const alarmNode: NodeKind = {
  type: 'alarm',
  compile(spec, ctx) {
    const alarm = spec.alarm as Record<string, unknown>;
    return (message) => {
      ctx.sinks.alarm(ctx.ruleId, ctx.nodeId, alarm, message);
      return message;
    };
  },
};
