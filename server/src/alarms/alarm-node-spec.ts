import { createHash } from 'node:crypto';
import type { Condition, Expression } from '../rules/expression.js';
import { parseDuration } from '../rules/duration.js';
import type { RuleMessage } from '../rules/message.js';
import type { RuleDocument, RuleInput } from '../rules/rule-schema.js';
import { higherSeverity, type Severity } from './alarm-store.js';

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
  create: Condition;
  clear: Condition | undefined;
  forMs: number;
  times: number;
  webhook: string | null;
  /** Device telemetry or window results: what a message's place in its input is (alarm-positions.ts). */
  input: RuleInput;
  /** Names these settings: a `for` that comes due on the timer raises only while the node still has them. */
  fingerprint: string;
  originatorOf(message: RuleMessage): string;
  /** The highest severity whose condition holds: the alarm's own, or an `escalate` entry's above it. */
  severityOf(message: RuleMessage): Severity;
  detailsOf(message: RuleMessage): Record<string, unknown>;
}

/** What compiling an alarm node needs from the rule compiler (node-kind.ts, CompileContext). */
export interface AlarmNodeCompiler {
  input: RuleInput;
  /** Compiles an expression; a bad one throws naming `field`. */
  expression(source: string, field: string): Expression;
  /** Compiles a condition, refusing an expression that is not true or false; throws naming `field`. */
  condition(source: string, field: string): Condition;
}

/** Settings → what the alarm service runs. */
export function compileAlarmNode(s: AlarmNodeSettings, c: AlarmNodeCompiler): CompiledAlarmNode {
  const escalate = (s.escalate ?? []).map((e, i) => ({ condition: c.condition(e.if, `alarm.escalate[${i}].if`), severity: e.severity }));
  const details = Object.entries(s.details ?? {}).map(([k, source]) => [k, c.expression(source, `alarm.details.${k}`)] as const);
  return {
    type: s.type,
    create: c.condition(s.create, 'alarm.create'),
    clear: s.clear ? c.condition(s.clear, 'alarm.clear') : undefined,
    forMs: s.for ? parseDuration(s.for) : 0,
    times: s.times ?? 1,
    webhook: s.webhook ?? null,
    input: c.input,
    fingerprint: alarmFingerprint(s),
    // A window result's group is its originator; a device message's, the device.
    originatorOf: (m) => m.deviceId,
    severityOf(m) {
      // Every entry is looked at, in any order written: the highest that holds wins (as ThingsBoard's create conditions).
      let severity = s.severity;
      for (const e of escalate) if (e.condition(m)) severity = higherSeverity(severity, e.severity);
      return severity;
    },
    detailsOf(m) {
      const out: Record<string, unknown> = { values: m.values, ts: m.ts };
      if (Object.keys(m.metadata).length > 0) out.metadata = m.metadata;
      for (const [k, e] of details) out[k] = e(m);
      return out;
    },
  };
}

/** A short hash of an alarm node's settings as written. */
export function alarmFingerprint(s: AlarmNodeSettings): string {
  return createHash('sha256').update(JSON.stringify(s)).digest('base64url').slice(0, 22);
}

/** The settings of the alarm node `node` of `rule` while the rule runs (is there and enabled). */
export function runningAlarmNode(rule: { enabled: boolean; document: RuleDocument } | undefined, node: string): AlarmNodeSettings | undefined {
  const spec = rule?.enabled ? rule.document.nodes.find((n) => n.id === node) : undefined;
  return spec?.type === 'alarm' ? spec.alarm as AlarmNodeSettings : undefined;
}
