import type { Expression } from '../rules/expression.js';
import { parseDuration } from '../rules/duration.js';
import type { RuleMessage } from '../rules/message.js';
import type { Severity } from './alarm-store.js';

/** An `alarm` node's `alarm` settings as written in a rule (rules/schema.json: alarmSpec). */
export interface AlarmNodeSettings {
  type: string;
  severity: Severity;
  create: string;
  clear?: string;
  for?: string;
  times?: number;
  escalate?: { if: string; severity: Severity }[];
  details?: Record<string, string>;
  webhook?: string;
}

export interface CompiledAlarmNode {
  type: string;
  create: Expression;
  clear: Expression | undefined;
  forMs: number;
  times: number;
  webhook: string | null;
  originatorOf(message: RuleMessage): string;
  severityOf(message: RuleMessage): Severity;
  detailsOf(message: RuleMessage): Record<string, unknown>;
}

/** Settings → what the alarm service runs; `expression` compiles (and names the field on error). */
export function compileAlarmNode(s: AlarmNodeSettings, expression: (source: string, field: string) => Expression): CompiledAlarmNode {
  const escalate = (s.escalate ?? []).map((e, i) => ({ condition: expression(e.if, `alarm.escalate[${i}].if`), severity: e.severity }));
  const details = Object.entries(s.details ?? {}).map(([k, source]) => [k, expression(source, `alarm.details.${k}`)] as const);
  return {
    type: s.type,
    create: expression(s.create, 'alarm.create'),
    clear: s.clear ? expression(s.clear, 'alarm.clear') : undefined,
    forMs: s.for ? parseDuration(s.for) : 0,
    times: s.times ?? 1,
    webhook: s.webhook ?? null,
    // A window result's group is its originator; a device message's, the device.
    originatorOf: (m) => m.deviceId,
    severityOf(m) {
      for (const e of escalate) if (e.condition(m) === true) return e.severity;
      return s.severity;
    },
    detailsOf(m) {
      const out: Record<string, unknown> = { values: m.values, ts: m.ts };
      if (Object.keys(m.metadata).length > 0) out.metadata = m.metadata;
      for (const [k, e] of details) out[k] = e(m);
      return out;
    },
  };
}
