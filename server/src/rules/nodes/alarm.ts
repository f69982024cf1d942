import { compileAlarmNode, type AlarmNodeSettings } from '../../alarms/alarm-node-spec.js';
import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "alarm", "alarm": {"type": "High temperature", "severity": "MAJOR",
 * "create": "values.temperature > 30", "clear": "values.temperature < 28", "for": "1m"}}`: raises,
 * updates and clears alarms (rules/README.md, Alarms); passes the message on.
 */
export const alarmNode: NodeKind = {
  type: 'alarm',
  compile(spec, ctx) {
    const alarm = compileAlarmNode(spec.alarm as AlarmNodeSettings, ctx);
    return (message) => {
      ctx.sinks.alarm(ctx.ruleId, ctx.nodeId, alarm, message);
      return message;
    };
  },
};
