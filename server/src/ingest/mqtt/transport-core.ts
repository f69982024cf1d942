import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { ClientSessions } from '../client-sessions.js';
import type { DeviceAuthenticator, PublishOutcome } from '../device-connect.js';
import type { InflightGate } from '../inflight-gate.js';
import type { Qos2Receipts } from '../qos2-receipts.js';
import type { BoundedSessionStore, OutboundMessage } from '../session-store.js';
import type { ThrottledLog } from '../throttled-log.js';
import type { MqttConnection } from './connection.js';

/** Every bound a connection applies, resolved from MqttBrokerLimits and their defaults. */
export interface TransportLimits {
  /** Largest CONNECT (remaining length), before the device is known. */
  maxConnectBytes: number;
  /** Largest remaining length of every later packet: --max-payload-bytes plus the headroom. */
  maxPacketBytes: number;
  /** maxPacketBytes as MQTT 5's Maximum Packet Size counts it (the whole packet), advertised in CONNACK. */
  maximumPacketSize: number;
  connectTimeoutMs: number;
  /** MQTT 3.1.1: QoS 2 messages per session awaiting PUBREL. */
  maxQos2AwaitingRelease: number;
  /** MQTT 5 Receive Maximum advertised: QoS 1 and 2 messages a client may have unacknowledged. */
  receiveMaximum: number;
  /** MQTT 5 Topic Alias Maximum advertised. */
  topicAliasMaximum: number;
  maxClientIdLength: number;
  /** QoS 1 messages in flight to one client (also at most its Receive Maximum). */
  maxOutboundInflight: number;
  /** Bytes waiting to be written to one client before QoS 0 messages to it are dropped. */
  maxOutboundBufferBytes: number;
  /** The longest an offline session is kept (MQTT 5 Session Expiry Intervals are clamped to it). */
  sessionExpiryMs: number;
}

/** What every connection shares: the broker's state and Sluice's side of a device message. */
export interface TransportCore {
  readonly limits: TransportLimits;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Limits hit and protocol errors: one line a second. */
  readonly limitLog: ThrottledLog;
  /** Refused credentials: one line a second. */
  readonly authFailureLog: ThrottledLog;
  readonly gate: InflightGate<unknown>;
  readonly receipts: Qos2Receipts;
  readonly sessions: ClientSessions;
  readonly store: BoundedSessionStore;
  readonly authenticate: DeviceAuthenticator;
  nextConnectionId(): number;
  isLogFull(): boolean;
  /**
   * A device's PUBLISH: resolves once it is durable (or rejected, and listed); rejects if it could
   * not be stored. Called once per message: the hot path.
   */
  route(connection: MqttConnection, topic: string, payload: Buffer, qos: 0 | 1 | 2, properties: PublishProperties | undefined): Promise<PublishOutcome>;
  /** The retained messages a new subscription to `filter` gets, at most at `qos`. */
  retainedMatching(filter: string, qos: number): OutboundMessage[];
  /** A message to a client was dropped (counted, logged once a second). */
  outboundDropped(reason: 'client_maximum_packet_size' | 'slow_subscriber', details: Record<string, unknown>): void;
  /** A connection got its CONNACK / closed after it. */
  connected(connection: MqttConnection): void;
  disconnected(connection: MqttConnection): void;
}

/** The MQTT 5 properties of a PUBLISH that Sluice passes on. */
export interface PublishProperties {
  userProperties?: Record<string, string | string[]>;
  responseTopic?: string;
  correlationData?: Buffer;
}
