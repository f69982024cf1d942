import type { NodeKind } from '../node-kind.js';

/** `{"type": "log", "level": "info", "message": "hot room"}`: writes the message to Sluice's log; passes it on. */
export const logNode: NodeKind = {
  type: 'log',
  compile(spec, ctx) {
    const level = (spec.level as 'debug' | 'info' | 'warn' | undefined) ?? 'info';
    const text = (spec.message as string | undefined) ?? `rule ${ctx.ruleId}`;
    return (message) => {
      ctx.sinks.log(level, { rule: ctx.ruleId, node: ctx.nodeId, deviceId: message.deviceId, ts: message.ts, values: message.values, metadata: message.metadata }, text);
      return message;
    };
  },
};
