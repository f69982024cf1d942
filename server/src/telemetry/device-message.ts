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

export function toLogRecord(deviceId: string, kind: MessageKind, payload: Buffer, receivedAt: number): LogRecord {
  return { key: deviceId, value: payload, timestamp: receivedAt, headers: headersOf[kind] };
}

export function messageKind(record: StoredRecord): MessageKind {
  return record.headers?.kind === 'attributes' ? 'attributes' : 'telemetry';
}
