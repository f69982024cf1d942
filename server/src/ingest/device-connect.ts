import type { Device } from '../storage/device-registry.js';

/**
 * What the device transport (server/src/ingest/mqtt-broker.ts) and the pieces around it — device
 * credentials, the gateway API, the TLS and WebSocket listeners — agree on. Types only.
 */
export type DeviceTransportKind = 'tcp' | 'tls' | 'ws' | 'wss';

/** What a CONNECT (and its socket) offers to identify a device. */
export interface ConnectCredentials {
  /** As sent ('' allowed for MQTT 5: the transport assigns one after). */
  clientId: string;
  username?: string;
  password?: Buffer;
  /** Lower-case hex SHA-256 of the client certificate's DER, when a TLS client presented one. */
  certificateFingerprint?: string;
  transport: DeviceTransportKind;
  remoteAddress?: string;
}

export type ConnectVerdict =
  | { ok: true; device: Device }
  | { ok: false; refusal: 'bad_credentials' | 'not_authorized' | 'server_busy'; reason: string };

/** Checks credentials; may be async (password hashing). */
export type DeviceAuthenticator = (credentials: ConnectCredentials) => ConnectVerdict | Promise<ConnectVerdict>;

/** One accepted PUBLISH of a device (topic aliases resolved). */
export interface DevicePublish {
  device: Device;
  /** Unique per connection in this process. */
  connectionId: number;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  protocolVersion: 3 | 4 | 5;
  userProperties?: Record<string, string | string[]>;
  responseTopic?: string;
  correlationData?: Buffer;
}

/** The outcome the transport turns into PUBACK/PUBREC reason codes (MQTT 5) or a plain ack (3.1.1). */
export type PublishOutcome =
  | { accepted: true }
  /** category: the rejected list's / metrics' category, e.g. 'bad_shape', 'not_json', 'too_large', 'too_complex', 'too_many_keys', 'unknown_topic', 'not_authorized'. */
  | { accepted: false; category: string; reason: string };

/** Handles `v1/gateway/...` topics for a device marked as a gateway. */
export interface GatewayTopics {
  publish(message: DevicePublish): Promise<PublishOutcome>;
  /** The gateway's connection closed: its sub-devices connected through it go offline. */
  connectionClosed(gateway: Device, connectionId: number): void;
}
