import type { AlarmWebhookLimits } from './alarms/alarm-outbox.js';
import type { MqttBrokerLimits } from './ingest/mqtt-broker.js';
import type { RuleLimits } from './rules/rule-limits.js';
import type { WebhookLimits } from './rules/webhook-sender.js';
import type { TelemetryLimits } from './telemetry/telemetry-limits.js';

/**
 * The limits an operator can set (docs/limits.md has the one table of them). Each is a flag and
 * an environment variable; one left unset keeps the default of the module that enforces it, so
 * the defaults live next to the code that they bound. config.ts reads them with the other flags.
 */

export interface RejectedListLimits {
  topicChars?: number;
  reasonChars?: number;
}

export interface ApiLimits {
  /** Latest values per device in GET /api/devices?include=latest. */
  fleetLatestKeysPerDevice?: number;
}

export interface Limits {
  telemetry: TelemetryLimits;
  mqtt: MqttBrokerLimits;
  rejected: RejectedListLimits;
  rules: Partial<RuleLimits>;
  webhooks: Partial<Omit<WebhookLimits, 'maxTimeoutMs'>>;
  alarmWebhooks: Partial<AlarmWebhookLimits>;
  api: ApiLimits;
}

type Kind = 'count' | 'bytes' | 'duration';

interface LimitOption {
  env: string;
  kind: Kind;
  /** Where the value goes in Limits. */
  group: keyof Limits;
  key: string;
  min: number;
  help: string;
}

const limit = (env: string, kind: Kind, group: keyof Limits, key: string, min: number, help: string): LimitOption => ({ env, kind, group, key, min, help });

export const limitOptions = {
  'max-payload-depth': limit('MAX_PAYLOAD_DEPTH', 'count', 'telemetry', 'maxPayloadDepth', 1, 'levels of objects and arrays in a device message (default 16)'),
  'max-payload-keys': limit('MAX_PAYLOAD_KEYS', 'count', 'telemetry', 'maxPayloadKeys', 1, 'keys and array items in one device message (default 1000)'),
  'max-keys-per-device': limit('MAX_KEYS_PER_DEVICE', 'count', 'telemetry', 'maxKeysPerDevice', 1, 'distinct telemetry keys of one device (default 1000)'),
  'max-attributes-per-device': limit('MAX_ATTRIBUTES_PER_DEVICE', 'count', 'telemetry', 'maxAttributesPerDevice', 1, 'distinct client attributes of one device (default 1000)'),
  'rules-recent-values-bytes': limit('RULES_RECENT_VALUES_BYTES', 'bytes', 'telemetry', 'recentValuesMaxBytes', 0, 'parsed values kept for the rules group (default 32MiB)'),
  'mqtt-max-connections': limit('MQTT_MAX_CONNECTIONS', 'count', 'mqtt', 'maxConnections', 1, 'MQTT connections at once (default: from ulimit -n, at most 50000)'),
  'mqtt-max-connections-per-address': limit('MQTT_MAX_CONNECTIONS_PER_ADDRESS', 'count', 'mqtt', 'maxConnectionsPerAddress', 1, 'MQTT connections from one address, IPv6 by /64 (default 1000)'),
  'mqtt-connect-timeout': limit('MQTT_CONNECT_TIMEOUT', 'duration', 'mqtt', 'connectTimeoutMs', 1, 'time from accept to a whole CONNECT (default 10s)'),
  'mqtt-max-connect-bytes': limit('MQTT_MAX_CONNECT_BYTES', 'bytes', 'mqtt', 'maxConnectBytes', 64, 'largest CONNECT packet, before authentication (default 64KiB)'),
  'mqtt-packet-headroom-bytes': limit('MQTT_PACKET_HEADROOM_BYTES', 'bytes', 'mqtt', 'packetHeadroomBytes', 0, 'room above max-payload-bytes for topic and properties (default 4KiB)'),
  'mqtt-max-qos2-awaiting-release': limit('MQTT_MAX_QOS2_AWAITING_RELEASE', 'count', 'mqtt', 'maxQos2AwaitingRelease', 1, 'QoS 2 messages of a session awaiting PUBREL (default 100)'),
  'mqtt-max-queued-messages': limit('MQTT_MAX_QUEUED_MESSAGES', 'count', 'mqtt', 'maxQueuedMessagesPerSession', 0, 'messages queued for an offline session (default 1000)'),
  'mqtt-session-expiry': limit('MQTT_SESSION_EXPIRY', 'duration', 'mqtt', 'sessionExpiryMs', 1, 'offline persistent sessions are dropped after (default 1d)'),
  'mqtt-max-offline-sessions-per-device': limit('MQTT_MAX_OFFLINE_SESSIONS_PER_DEVICE', 'count', 'mqtt', 'maxOfflineSessionsPerDevice', 1, 'offline persistent sessions of one device (default 10)'),
  'rule-eval-budget': limit('RULE_EVAL_BUDGET', 'count', 'rules', 'evalBudget', 100, 'steps one expression evaluation may take (default 100000)'),
  'rule-eval-max-value-size': limit('RULE_EVAL_MAX_VALUE_SIZE', 'count', 'rules', 'maxValueSize', 16, 'characters or elements an expression may build (default 100000)'),
  'rule-regex-max-length': limit('RULE_REGEX_MAX_LENGTH', 'count', 'rules', 'regexMaxLength', 1, 'characters of a matches() pattern (default 512)'),
  'rule-regex-max-program-size': limit('RULE_REGEX_MAX_PROGRAM_SIZE', 'count', 'rules', 'regexMaxProgramSize', 10, 'RE2 program size of a pattern (default 1000)'),
  'window-max-per-event': limit('WINDOW_MAX_PER_EVENT', 'count', 'rules', 'maxWindowsPerEvent', 1, 'windows one event may fall into (size/slide; default 100)'),
  'window-max-open': limit('WINDOW_MAX_OPEN', 'count', 'rules', 'maxOpenWindows', 1, 'open windows of one window node (default 10000)'),
  'window-max-groups': limit('WINDOW_MAX_GROUPS', 'count', 'rules', 'maxWindowGroups', 1, 'groups with open windows per window node (default 10000)'),
  'dedupe-max-keys': limit('DEDUPE_MAX_KEYS', 'count', 'rules', 'dedupeMaxKeys', 1, 'keys one deduplicate node remembers (default 100000)'),
  'webhook-max-timeout': limit('WEBHOOK_MAX_TIMEOUT', 'duration', 'rules', 'webhookMaxTimeoutMs', 1, 'longest wait for a webhook answer (default 10s)'),
  'webhook-max-in-flight': limit('WEBHOOK_MAX_IN_FLIGHT', 'count', 'webhooks', 'maxInFlightPerTarget', 1, 'webhook calls in flight per target (default 16)'),
  'webhook-max-queued': limit('WEBHOOK_MAX_QUEUED', 'count', 'webhooks', 'maxQueuedPerTarget', 0, 'webhook calls queued per target (default 1000)'),
  'webhook-max-pending': limit('WEBHOOK_MAX_PENDING', 'count', 'webhooks', 'maxPending', 1, 'webhook calls pending over all targets (default 10000)'),
  'alarm-webhook-max-in-flight': limit('ALARM_WEBHOOK_MAX_IN_FLIGHT', 'count', 'alarmWebhooks', 'maxInFlightPerTarget', 1, 'alarm notifications in flight per URL (default 4)'),
  'alarm-webhook-timeout': limit('ALARM_WEBHOOK_TIMEOUT', 'duration', 'alarmWebhooks', 'timeoutMs', 1, 'longest wait for an alarm webhook answer (default 10s)'),
  'fleet-latest-keys': limit('FLEET_LATEST_KEYS', 'count', 'api', 'fleetLatestKeysPerDevice', 1, 'latest values per device in GET /api/devices?include=latest (default 100)'),
  'rejected-topic-chars': limit('REJECTED_TOPIC_CHARS', 'count', 'rejected', 'topicChars', 16, 'characters of a topic kept in the rejected list (default 256)'),
  'rejected-reason-chars': limit('REJECTED_REASON_CHARS', 'count', 'rejected', 'reasonChars', 16, 'characters of a reason kept in the rejected list (default 512)'),
} as const satisfies Record<string, LimitOption>;

export type LimitOptionName = keyof typeof limitOptions;

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const byteUnits: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** One limit's text → its number; a string is what is wrong with it. */
function parseLimit(name: string, o: LimitOption, text: string): number | string {
  let value: number;
  if (o.kind === 'duration') {
    const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
    if (!m) return `${name} must be a duration like 10s or 1d, got "${text}"`;
    value = Number(m[1]) * durationUnits[m[2]!]!;
  } else if (o.kind === 'bytes') {
    const m = /^(\d+)(B|KiB|MiB|GiB)?$/.exec(text);
    if (!m) return `${name} must be a size like 64KiB, got "${text}"`;
    value = Number(m[1]) * byteUnits[m[2] ?? '']!;
  } else {
    if (!/^\d+$/.test(text)) return `${name} must be a whole number, got "${text}"`;
    value = Number(text);
  }
  if (!Number.isSafeInteger(value) || value < o.min) return `${name} must be at least ${o.min}, got "${text}"`;
  return value;
}

/** The texts given (by flag or environment) → Limits; throws the first problem as a string. */
export function limitsFrom(given: Partial<Record<LimitOptionName, string>>): Limits {
  const limits = noLimitOverrides();
  for (const [name, o] of Object.entries(limitOptions) as [LimitOptionName, LimitOption][]) {
    const text = given[name];
    if (text === undefined) continue;
    const value = parseLimit(name, o, text);
    if (typeof value === 'string') throw new LimitError(name, value);
    (limits[o.group] as Record<string, number>)[o.key] = value;
  }
  return limits;
}

export class LimitError extends Error {
  constructor(readonly option: LimitOptionName, message: string) {
    super(message);
  }
}

export function noLimitOverrides(): Limits {
  return { telemetry: {}, mqtt: {}, rejected: {}, rules: {}, webhooks: {}, alarmWebhooks: {}, api: {} };
}
