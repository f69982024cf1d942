import type { TelemetryValue } from '../../telemetry/payload.js';
import type { NodeKind } from '../node-kind.js';

/** `{"type": "save", "prefix": "f_"}`: stores the values as time series of the device; passes the message on. */
export const saveNode: NodeKind = {
  type: 'save',
  compile(spec, ctx) {
    const prefix = (spec.prefix as string | undefined) ?? '';
    return (message) => {
      let values = message.values as Record<string, TelemetryValue>;
      if (prefix) {
        values = {};
        for (const k in message.values) values[prefix + k] = message.values[k]!;
      }
      ctx.sinks.save(message.deviceId, message.ts, values);
      return message;
    };
  },
};
