import type { LogRecord, StoredRecord } from '../log/types.js';

/**
 * A device message as it travels in the `telemetry` log topic: key = device id, value = the
 * payload bytes exactly as the device sent them (validated at ingest), timestamp = when the
 * server received it (the time of values sent without "ts"), header `kind`.
 */
export type MessageKind = 'telemetry' | 'attributes';

export const TELEMETRY_TOPIC = 'telemetry';

/** Shared and frozen: the log encodes a frozen headers object once, not per record. */
const headersOf: Record<MessageKind, Record<string, string>> = {
  telemetry: Object.freeze({ kind: 'telemetry' }),
  attributes: Object.freeze({ kind: 'attributes' }),
};

/** MQTT 5 user properties of a PUBLISH, as mqtt-packet gives them: a repeated name has its values in an array. */
export type UserProperties = Record<string, string | string[]>;

/** The header that carries a message's MQTT 5 user properties (JSON), on the records that have any. */
const USER_PROPERTIES_HEADER = 'mqtt-user-properties';

export function toLogRecord(deviceId: string, kind: MessageKind, payload: Buffer, receivedAt: number, userPropertiesJson?: string): LogRecord {
  const headers = userPropertiesJson === undefined ? headersOf[kind] : { kind, [USER_PROPERTIES_HEADER]: userPropertiesJson };
  return { key: deviceId, value: payload, timestamp: receivedAt, headers };
}

/** The user properties a record carries, if any (and if its header is intact JSON of that shape). */
export function userPropertiesOf(record: StoredRecord): UserProperties | undefined {
  const text = record.headers?.[USER_PROPERTIES_HEADER];
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as UserProperties) : undefined;
  } catch {
    return undefined;
  }
}

export function messageKind(record: StoredRecord): MessageKind {
  return record.headers?.kind === 'attributes' ? 'attributes' : 'telemetry';
}
