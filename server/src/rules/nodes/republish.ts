import { messageKey } from '../message-key.js';
import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "republish", "topic": "sites/{deviceName}/hot", "qos": 0}`: publishes
 * `{"deviceId", "ts", "values", "metadata", "key"}` as JSON on Sluice's broker (`key`: message-key.ts);
 * passes the message on.
 */
export const republishNode: NodeKind = {
  type: 'republish',
  compile(spec, ctx) {
    const template = spec.topic as string;
    const qos = (spec.qos as 0 | 1 | undefined) ?? 0;
    const retain = spec.retain === true;
    const parts = template.split(/(\{deviceId\}|\{deviceName\}|\{deviceType\})/);
    return (message) => {
      const topic = parts.map((p) => (p === '{deviceId}' ? message.deviceId : p === '{deviceName}' ? message.device.name : p === '{deviceType}' ? message.device.type : p)).join('');
      const key = messageKey(ctx.ruleId, ctx.nodeId, ctx.input, message);
      ctx.sinks.republish(topic, JSON.stringify({ deviceId: message.deviceId, ts: message.ts, values: message.values, metadata: message.metadata, key }), qos, retain);
      return message;
    };
  },
};
