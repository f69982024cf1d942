import type { Clock } from '../clock.js';
import { SluiceError } from '../errors.js';
import type { Log } from '../log/types.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Device } from '../storage/device-registry.js';
import { TELEMETRY_TOPIC, toLogRecord, type MessageKind } from '../telemetry/device-message.js';
import { parseTelemetryPayload, type RejectionCategory } from '../telemetry/payload.js';
import type { RejectedMessages } from './rejected-messages.js';

export type Transport = 'mqtt' | 'http';

export type IngestOutcome =
  | { accepted: true }
  | { accepted: false; reason: string; category: RejectionCategory };

/**
 * The ingestion node: validate a device message, then append it to the log. Resolves only once
 * the message is durable (that is when MQTT sends PUBACK and HTTP answers 200); a rejected
 * message is counted and listed, and the device's connection is left alone.
 */
export class Ingest {
  constructor(
    private readonly log: Log,
    private readonly rejectedMessages: RejectedMessages,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly maxPayloadBytes: number,
  ) {}

  async accept(device: Device, kind: MessageKind, payload: Buffer, transport: Transport, topic: string): Promise<IngestOutcome> {
    const receivedAt = this.clock.now();
    if (payload.length > this.maxPayloadBytes) {
      return this.reject(transport, topic, device.id, receivedAt, 'too_large',
        `payload of ${payload.length} bytes exceeds the ${this.maxPayloadBytes}-byte limit`);
    }
    const parsed = parseTelemetryPayload(payload, receivedAt);
    if (!parsed.ok) return this.reject(transport, topic, device.id, receivedAt, parsed.category, parsed.reason);
    try {
      await this.log.append(TELEMETRY_TOPIC, toLogRecord(device.id, kind, payload, receivedAt));
    } catch (err) {
      this.metrics.logAppendErrors.inc();
      this.logger.error({ err, deviceId: device.id }, 'could not append a device message to the log');
      throw err instanceof SluiceError ? err : new SluiceError('LOG_FULL', 'the log refused the message', { cause: err });
    }
    this.metrics.messagesIn.inc({ transport, kind });
    return { accepted: true };
  }

  /** Records a message that never reached validation (e.g. an unknown topic). */
  reject(transport: Transport, topic: string, deviceId: string | undefined, ts: number, category: RejectionCategory, reason: string): IngestOutcome {
    this.metrics.messagesRejected.inc({ transport, reason: category });
    this.rejectedMessages.add({ ts, deviceId, topic, reason });
    this.logger.debug({ deviceId, topic, reason }, 'rejected a device message');
    return { accepted: false, reason, category };
  }
}
