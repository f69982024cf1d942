import type { TelemetryValue } from '../telemetry/payload.js';
import type { CompiledWindowNode } from '../windows/window-node-spec.js';
import type { CompiledAlarmNode } from '../alarms/alarm-node-spec.js';

/** What a rule node sees: one telemetry entry of one device. Nodes never change it in place. */
export interface RuleMessage {
  deviceId: string;
  ts: number;
  values: Readonly<Record<string, TelemetryValue>>;
  /** Added by enrich nodes. */
  metadata: Readonly<Record<string, unknown>>;
  device: RuleDevice;
  /** Where in the log the message came from. */
  offset: number;
  partition: number;
  /**
   * Which entry of its record the message is (a payload's array form makes several messages with
   * one offset): with the offset, its place in the log. Absent: 0, the record's only message.
   */
  entry?: number;
}

export interface RuleDevice {
  id: string;
  name: string;
  type: string;
  attributes: Record<string, unknown>;
}

/** Where sink nodes send things; the rule engine's owner provides them. */
export interface RuleSinks {
  save(deviceId: string, ts: number, values: Record<string, TelemetryValue>): void;
  republish(topic: string, payload: string, qos: 0 | 1, retain: boolean): void;
  webhook(request: { url: string; headers: Record<string, string>; body: string; retries: number; timeoutMs: number; rule: string; node: string }): void;
  window(rule: string, node: string, window: CompiledWindowNode, message: RuleMessage): void;
  alarm(rule: string, node: string, alarm: CompiledAlarmNode, message: RuleMessage): void;
  log(level: 'debug' | 'info' | 'warn', fields: Record<string, unknown>, text: string): void;
}
