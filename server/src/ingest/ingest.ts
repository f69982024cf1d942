import type { Clock } from '../clock.js';
import { SluiceError } from '../errors.js';
import type { AppendResult, Log } from '../log/types.js';
import { LogRateLimit } from '../log-rate-limit.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Device } from '../storage/device-registry.js';
import { TELEMETRY_TOPIC, toLogRecord, type MessageKind, type UserProperties } from '../telemetry/device-message.js';
import {
  DEFAULT_MAX_PAYLOAD_DEPTH, DEFAULT_MAX_PAYLOAD_KEYS, parseTelemetryPayload, type ParsedTelemetry, type PayloadLimits, type RejectionCategory,
} from '../telemetry/payload.js';
import type { DeviceTelemetryKeys } from './device-telemetry-keys.js';
import type { RejectedMessages } from './rejected-messages.js';

export type Transport = 'mqtt' | 'http';

/**
 * Called with each telemetry message once it is in the durable log: the device, its values as
 * ingest parsed them, where it is in the log and the payload's size.
 */
export type TelemetryListener = (device: Device, parsed: ParsedTelemetry, appended: AppendResult, payloadBytes: number) => void;

export interface IngestOptions {
  /** How deep and how many keys a payload may have (DEFAULT_MAX_PAYLOAD_DEPTH, DEFAULT_MAX_PAYLOAD_KEYS). */
  payloadLimits?: Partial<PayloadLimits>;
  /** The cap on distinct telemetry keys per device; none without. */
  deviceKeys?: DeviceTelemetryKeys;
  /** The cap on distinct client attributes per device; none without. */
  deviceAttributes?: DeviceTelemetryKeys;
}

export type IngestOutcome =
  | { accepted: true }
  | { accepted: false; reason: string; category: RejectionCategory };

/** Rejections of a whole message beyond its payload's own: a gateway speaking for a device not its own, one sub-device too many. */
export type MessageRejectionCategory = RejectionCategory | 'not_authorized' | 'too_many_devices';

/**
 * The ingestion node: validate a device message, then append it to the log. Resolves only once
 * the message is durable (that is when MQTT sends PUBACK and HTTP answers 200); a rejected
 * message is counted and listed, and the device's connection is left alone.
 */
const LOG_FULL_HOLD_MS = 1000;

/**
 * MQTT 5 user properties a message may carry into the log (as JSON, in a record header, for the
 * rules' metadata): names and values together. The packet size limit bounds them too, but it
 * grows with --max-payload-bytes; this does not.
 */
export const MAX_USER_PROPERTIES_BYTES = 4096;

const ACCEPTED: IngestOutcome = Object.freeze({ accepted: true });

export class Ingest {
  private logFullUntil = 0;
  private telemetryListener: TelemetryListener | undefined;
  private lastAppendErrorLoggedAt = -Infinity;
  private readonly listenerErrorLogLimit = new LogRateLimit();
  private readonly payloadLimits: Readonly<PayloadLimits>;
  private readonly deviceKeys: DeviceTelemetryKeys | undefined;
  private readonly deviceAttributes: DeviceTelemetryKeys | undefined;
  constructor(
    private readonly log: Log,
    private readonly rejectedMessages: RejectedMessages,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly maxPayloadBytes: number,
    options: IngestOptions = {},
  ) {
    this.payloadLimits = Object.freeze({
      maxDepth: options.payloadLimits?.maxDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH,
      maxKeys: options.payloadLimits?.maxKeys ?? DEFAULT_MAX_PAYLOAD_KEYS,
    });
    this.deviceKeys = options.deviceKeys;
    this.deviceAttributes = options.deviceAttributes;
  }

  accept(device: Device, kind: MessageKind, payload: Buffer, transport: Transport, topic: string, userProperties?: UserProperties): Promise<IngestOutcome> {
    const receivedAt = this.clock.now();
    if (payload.length > this.maxPayloadBytes) {
      return Promise.resolve(this.reject(transport, topic, device.id, receivedAt, 'too_large',
        `payload of ${payload.length} bytes exceeds the ${this.maxPayloadBytes}-byte limit`));
    }
    let userPropertiesJson: string | undefined;
    if (userProperties !== undefined) {
      userPropertiesJson = JSON.stringify(userProperties);
      const bytes = Buffer.byteLength(userPropertiesJson);
      if (bytes > MAX_USER_PROPERTIES_BYTES) {
        return Promise.resolve(this.reject(transport, topic, device.id, receivedAt, 'too_complex',
          `user properties take ${bytes} bytes as JSON, more than ${MAX_USER_PROPERTIES_BYTES}`));
      }
    }
    const parsed = parseTelemetryPayload(payload, receivedAt, this.payloadLimits);
    if (!parsed.ok) return Promise.resolve(this.reject(transport, topic, device.id, receivedAt, parsed.category, parsed.reason));
    const keyCap = kind === 'telemetry' ? this.deviceKeys : this.deviceAttributes;
    if (keyCap) {
      const tooMany = keyCap.admit(device.id, parsed.entries);
      if (tooMany !== undefined) return Promise.resolve(this.reject(transport, topic, device.id, receivedAt, 'too_many_keys', tooMany));
    }
    // Not an async function: one promise per message less (this runs for every message).
    return this.log.append(TELEMETRY_TOPIC, toLogRecord(device.id, kind, payload, receivedAt, userPropertiesJson)).then((appended) => {
      this.metrics.countMessageIn(transport, kind);
      if (kind === 'telemetry' && this.telemetryListener) this.notify(device, parsed, appended, payload.length);
      return ACCEPTED;
    }, (err: unknown) => {
      throw this.appendFailed(err, device.id);
    });
  }

  /**
   * Called with the values of each telemetry message once it is in the durable log, and where it
   * is there (the live push, the rules group): they were parsed for validation already, so these
   * get them without another parse. What it throws is logged and counted, never the device's
   * concern: its PUBACK or 200 depends on the durable append alone.
   */
  onTelemetry(listener: TelemetryListener): void {
    this.telemetryListener = listener;
  }

  private notify(device: Device, parsed: ParsedTelemetry, appended: AppendResult, payloadBytes: number): void {
    try {
      this.telemetryListener!(device, parsed, appended, payloadBytes);
    } catch (err) {
      this.metrics.telemetryListenerErrors.inc();
      const left = this.listenerErrorLogLimit.take();
      if (left !== undefined) {
        this.logger.error({ err, deviceId: device.id, partition: appended.partition, offset: appended.offset, alsoFailedSinceLastLine: left },
          'a telemetry listener failed after the append (the message is in the log and acknowledged)');
      }
    }
  }

  /**
   * True for a second after the log last refused a message for want of disk space: the broker
   * then refuses new connections (server unavailable) instead of taking on more publishers.
   */
  isLogFull(): boolean {
    return this.clock.now() < this.logFullUntil;
  }

  private appendFailed(err: unknown, deviceId: string): SluiceError {
    this.metrics.logAppendErrors.inc();
    const now = this.clock.now();
    const full = err instanceof SluiceError && err.code === 'LOG_FULL';
    if (full) this.logFullUntil = now + LOG_FULL_HOLD_MS;
    // A full disk fails every message: say so once a second, not once a message.
    if (now - this.lastAppendErrorLoggedAt >= 1000) {
      this.lastAppendErrorLoggedAt = now;
      this.logger.error({ err, deviceId }, full ? 'the log is out of disk space: refusing device messages' : 'could not append a device message to the log');
    }
    if (full) return new SluiceError('LOG_FULL', 'disk full: the server cannot store messages right now; retry later', { cause: err });
    return err instanceof SluiceError ? err : new SluiceError('LOG_IO', 'the log could not store the message', { cause: err });
  }

  /** The limits accept() applies, for callers that take a message apart first (the gateway API). */
  limits(): { maxPayloadBytes: number; payloadLimits: Readonly<PayloadLimits> } {
    return { maxPayloadBytes: this.maxPayloadBytes, payloadLimits: this.payloadLimits };
  }

  /** As reject(), for the categories a payload alone cannot have (MessageRejectionCategory): counted and listed the same. */
  rejectMessage(transport: Transport, topic: string, deviceId: string | undefined, ts: number, category: MessageRejectionCategory, reason: string): { accepted: false; reason: string; category: MessageRejectionCategory } {
    this.metrics.messagesRejected.inc({ transport, reason: category });
    const kept = this.rejectedMessages.add({ ts, deviceId, topic, reason });
    this.logger.debug({ deviceId, topic: kept.topic, reason: kept.reason }, 'rejected a device message');
    return { accepted: false, reason, category };
  }

  /** Records a message that never reached validation (e.g. an unknown topic). */
  reject(transport: Transport, topic: string, deviceId: string | undefined, ts: number, category: RejectionCategory, reason: string): IngestOutcome {
    this.metrics.messagesRejected.inc({ transport, reason: category });
    const kept = this.rejectedMessages.add({ ts, deviceId, topic, reason });
    this.logger.debug({ deviceId, topic: kept.topic, reason: kept.reason }, 'rejected a device message');
    return { accepted: false, reason, category };
  }
}
