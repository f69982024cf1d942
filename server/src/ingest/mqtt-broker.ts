import type { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Device, DeviceRegistry } from '../storage/device-registry.js';
import { ClientSessions, DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE, DEFAULT_SESSION_EXPIRY_MS } from './client-sessions.js';
import { ConnectionAdmission, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, defaultMaxConnections, openFilesSoftLimit } from './connection-admission.js';
import type { DeviceAuthenticator, DeviceTransportKind, GatewayTopics, PublishOutcome } from './device-connect.js';
import { kindOfDeviceTopic, publishTopicList } from './device-topics.js';
import type { Ingest, MessageRejectionCategory } from './ingest.js';
import { InflightGate } from './inflight-gate.js';
import { packetSize } from './mqtt/codec.js';
import { MqttConnection, type ConnectionInfo } from './mqtt/connection.js';
import { RC } from './mqtt/reason-codes.js';
import { RetainedMessages, DEFAULT_MAX_RETAINED_MESSAGES } from './mqtt/retained.js';
import type { PublishProperties, TransportCore, TransportLimits } from './mqtt/transport-core.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_CONNECT_BYTES, DEFAULT_PACKET_HEADROOM_BYTES } from './mqtt-frame-guard.js';
import { Qos2Receipts } from './qos2-receipts.js';
import { DEVICE_RPC_REQUEST_PREFIX, sessionLimitsReply } from './session-limits-rpc.js';
import { BoundedSessionStore, DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION, type OutboundMessage } from './session-store.js';
import { ThrottledLog } from './throttled-log.js';

/** Device messages being appended at once before connections are held back (about 1 KB of memory each). */
const DEFAULT_MAX_INFLIGHT_MESSAGES = 100_000;
/** The default of --max-payload-bytes. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 65_536;
/**
 * QoS 2 messages one session may have awaiting PUBREL (MQTT 3.1.1), and MQTT 5's Receive
 * Maximum: QoS 1 and 2 messages a client may have unacknowledged.
 */
export const DEFAULT_MAX_QOS2_AWAITING_RELEASE = 100;
/** MQTT 5 topic aliases a client may set on one connection. */
export const DEFAULT_TOPIC_ALIAS_MAXIMUM = 16;
/** QoS 1 messages in flight to one client (MQTT 5: also at most its Receive Maximum); beyond, they are queued. */
export const DEFAULT_MAX_OUTBOUND_INFLIGHT = 100;
/** Bytes written to a client and not yet taken by it, beyond which QoS 0 messages to it are dropped. */
export const DEFAULT_MAX_OUTBOUND_BUFFER_BYTES = 1024 * 1024;
/** Client ids longer than this are refused (ThingsBoard clients send long ones). */
const MAX_CLIENT_ID_LENGTH = 256;
/** Where the ThingsBoard gateway API's topics start. */
const GATEWAY_TOPIC_PREFIX = 'v1/gateway/';

export {
  DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_CONNECT_BYTES, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE,
  DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION, DEFAULT_MAX_RETAINED_MESSAGES, DEFAULT_PACKET_HEADROOM_BYTES, DEFAULT_SESSION_EXPIRY_MS, defaultMaxConnections,
};

/** One device's MQTT connections, for the device list and view. In memory, one entry per device that connected since start. */
export interface DeviceConnections {
  /** Connections open now. */
  connected: number;
  /** Of the last connection to get its CONNACK. */
  protocolVersion: 3 | 4 | 5;
  transport: DeviceTransportKind;
  lastConnectAt: number;
  lastDisconnectAt?: number;
}

export interface MqttBroker {
  server: net.Server;
  /** Publishes from the server itself (rule republish, alarm notifications), to whoever subscribed. */
  publish(topic: string, payload: string, qos: 0 | 1, retain: boolean): void;
  /** Serves MQTT on a stream another listener accepted (TLS socket, WebSocket stream). */
  handle(stream: Duplex, info: ConnectionInfo): void;
  /** Per device: connected now, protocol version, transport, last connect and disconnect. */
  connections(): ReadonlyMap<string, Readonly<DeviceConnections>>;
  close(): Promise<void>;
}

/** What one connection, address and session may take (docs/limits.md); each has a DEFAULT_ constant. */
export interface MqttBrokerLimits {
  /** Connections open at once, from accept to close (default: from `ulimit -n`, see defaultMaxConnections). */
  maxConnections?: number;
  /** Connections open at once from one remote address (IPv6: one /64). */
  maxConnectionsPerAddress?: number;
  /** From accept until the whole CONNECT has arrived. */
  connectTimeoutMs?: number;
  /** Largest CONNECT (its remaining length). */
  maxConnectBytes?: number;
  /** Room above maxPayloadBytes for every later packet (topic, packet id, properties). */
  packetHeadroomBytes?: number;
  /** QoS 2 messages per session awaiting PUBREL; one more disconnects the client. MQTT 5: the Receive Maximum. */
  maxQos2AwaitingRelease?: number;
  /** Messages queued for a session (offline, or beyond its client's window); beyond, the newest are dropped. */
  maxQueuedMessagesPerSession?: number;
  /** Offline persistent sessions are dropped after this long (MQTT 5 Session Expiry Intervals are clamped to it). */
  sessionExpiryMs?: number;
  /** Offline persistent sessions per device; beyond, the one offline longest is dropped. */
  maxOfflineSessionsPerDevice?: number;
  /** MQTT 5 topic aliases per connection. */
  topicAliasMaximum?: number;
  /** Topics with a retained message (rule republishes with retain). */
  maxRetainedMessages?: number;
}

export interface MqttBrokerOptions extends MqttBrokerLimits {
  registry: DeviceRegistry;
  ingest: Ingest;
  metrics: Metrics;
  logger: Logger;
  /** Device messages in flight (arrived, not yet in the log) before connections stop being read. */
  maxInflightMessages?: number;
  /** --max-payload-bytes: a packet may declare this plus packetHeadroomBytes. */
  maxPayloadBytes?: number;
  /** Checks a CONNECT's credentials (default: the access token in the user name). */
  authenticate?: DeviceAuthenticator;
  /** Takes `v1/gateway/...` PUBLISHes of gateway devices; without it those topics are unknown. */
  gateway?: GatewayTopics;
  /** Emits `revoked` (device id) when a device's credentials change: its connections close at once. */
  revoked?: EventEmitter;
}

/**
 * Sluice's device transport: MQTT 3.1, 3.1.1 and 5 on one port, on mqtt-packet's codec
 * (docs/architecture.md, "Device transport"). A device connects with its credentials; every
 * PUBLISH is validated and appended to the log before its PUBACK / PUBREC is sent. Device
 * messages are not relayed to subscribers; what the server publishes (rules, alarms) is.
 */
export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const { registry, ingest, metrics, logger, gateway } = options;
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const maxPacketBytes = maxPayloadBytes + (options.packetHeadroomBytes ?? DEFAULT_PACKET_HEADROOM_BYTES);
  const receiveMaximum = Math.min(65_535, options.maxQos2AwaitingRelease ?? DEFAULT_MAX_QOS2_AWAITING_RELEASE);
  const sessionExpiryMs = options.sessionExpiryMs ?? DEFAULT_SESSION_EXPIRY_MS;
  const limits: TransportLimits = {
    maxConnectBytes: options.maxConnectBytes ?? DEFAULT_MAX_CONNECT_BYTES,
    maxPacketBytes,
    maximumPacketSize: packetSize(maxPacketBytes),
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    maxQos2AwaitingRelease: receiveMaximum,
    receiveMaximum,
    topicAliasMaximum: Math.min(65_535, options.topicAliasMaximum ?? DEFAULT_TOPIC_ALIAS_MAXIMUM),
    maxClientIdLength: MAX_CLIENT_ID_LENGTH,
    maxOutboundInflight: DEFAULT_MAX_OUTBOUND_INFLIGHT,
    maxOutboundBufferBytes: DEFAULT_MAX_OUTBOUND_BUFFER_BYTES,
    sessionExpiryMs,
  };

  // Refusals come by the thousand from hostile clients: one log line a second each, every one counted.
  const authFailureLog = new ThrottledLog(logger, 'info', 'MQTT connection refused: bad credentials (an unknown or empty access token, or a wrong password or certificate)');
  const limitLog = new ThrottledLog(logger, 'warn', 'MQTT connection refused or closed at a limit');
  const receipts = new Qos2Receipts();
  const store = new BoundedSessionStore({
    receipts,
    maxQueuedPerSession: options.maxQueuedMessagesPerSession ?? DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION,
    onQueueFull(clientId) {
      metrics.mqttQueuedDropped.inc();
      limitLog.note('session_queue_full', { clientId });
    },
  });
  const sessions = new ClientSessions({
    expireAfterMs: sessionExpiryMs,
    maxOfflinePerDevice: options.maxOfflineSessionsPerDevice ?? DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE,
    drop(clientId, reason) {
      metrics.mqttSessionsDropped.inc({ reason });
      logger.debug({ clientId, reason }, 'MQTT session dropped');
      store.dropSession(clientId);
    },
  });
  const retained = new RetainedMessages(options.maxRetainedMessages ?? DEFAULT_MAX_RETAINED_MESSAGES, () => {
    metrics.mqttOutboundDropped.inc({ reason: 'retained_store_full' });
    limitLog.note('retained_store_full', {});
  });
  const gate = new InflightGate<unknown>(options.maxInflightMessages ?? DEFAULT_MAX_INFLIGHT_MESSAGES);
  const connectionsByDevice = new Map<string, Set<MqttConnection>>();
  const open = new Set<MqttConnection>();
  const presence = new Map<string, DeviceConnections>();
  let connectionIds = 0;

  const authenticate: DeviceAuthenticator = options.authenticate ?? (({ username }) => {
    const device = username ? registry.findByToken(username) : undefined;
    return device ? { ok: true, device } : { ok: false, refusal: 'bad_credentials', reason: 'unknown or empty access token' };
  });
  const sessionLimits = { maxPayloadBytes, maxInflightMessages: receiveMaximum };

  const reject = (device: Device, topic: string, category: MessageRejectionCategory, reason: string): Promise<PublishOutcome> =>
    Promise.resolve(ingest.rejectMessage('mqtt', topic, device.id, Date.now(), category, reason));

  const core: TransportCore = {
    limits, metrics, logger, limitLog, authFailureLog, gate, receipts, sessions, store, authenticate,
    nextConnectionId: () => ++connectionIds,
    isLogFull: () => ingest.isLogFull(),
    route(connection, topic, payload, qos, properties) {
      const device = connection.device!;
      // The hot path: telemetry and attributes straight to the append.
      const kind = kindOfDeviceTopic(topic);
      if (kind) return ingest.accept(device, kind, payload, 'mqtt', topic, properties?.userProperties);
      if (topic.startsWith(GATEWAY_TOPIC_PREFIX)) {
        if (!gateway) return reject(device, topic, 'unknown_topic', `unknown topic "${topic}": this server has no gateway API`);
        if (device.isGateway !== true) {
          return reject(device, topic, 'not_authorized', `"${topic}" is for gateways, and device "${device.name}" is not one`);
        }
        return gateway.publish({
          device, connectionId: connection.id, topic, payload, qos, protocolVersion: connection.version,
          ...(properties?.userProperties ? { userProperties: properties.userProperties } : {}),
          ...(properties?.responseTopic !== undefined ? { responseTopic: properties.responseTopic } : {}),
          ...(properties?.correlationData ? { correlationData: properties.correlationData } : {}),
        });
      }
      if (topic.startsWith(DEVICE_RPC_REQUEST_PREFIX)) {
        const reply = sessionLimitsReply(topic, payload, sessionLimits, device.isGateway === true);
        if (reply) {
          const qos = connection.subscribedQos(reply.topic);
          if (qos !== undefined && connection.session) {
            connection.deliver(connection.session, { topic: reply.topic, payload: Buffer.from(reply.payload), qos: qos === 0 ? 0 : 1, retain: false });
          }
          return Promise.resolve({ accepted: true });
        }
      }
      return reject(device, topic, 'unknown_topic', `unknown topic "${topic}": publish to ${publishTopicList.join(' or ')}`);
    },
    retainedMatching: (filter, qos) => retained.matching(filter, qos),
    outboundDropped(reason, details) {
      metrics.mqttOutboundDropped.inc({ reason });
      limitLog.note(reason, details);
    },
    connected(connection) {
      metrics.mqttClients.inc();
      const device = connection.device!;
      let set = connectionsByDevice.get(device.id);
      if (!set) connectionsByDevice.set(device.id, (set = new Set()));
      set.add(connection);
      const seen = presence.get(device.id);
      const now = connection.connectedAt;
      if (seen) {
        seen.connected++;
        seen.protocolVersion = connection.version;
        seen.transport = connection.info.transport;
        seen.lastConnectAt = now;
      } else {
        presence.set(device.id, { connected: 1, protocolVersion: connection.version, transport: connection.info.transport, lastConnectAt: now });
      }
    },
    disconnected(connection) {
      metrics.mqttClients.dec();
      const device = connection.device!;
      const set = connectionsByDevice.get(device.id);
      set?.delete(connection);
      if (set?.size === 0) connectionsByDevice.delete(device.id);
      const seen = presence.get(device.id);
      if (seen) {
        seen.connected = Math.max(0, seen.connected - 1);
        seen.lastDisconnectAt = Date.now();
      }
      if (gateway && device.isGateway === true) {
        try {
          gateway.connectionClosed(device, connection.id);
        } catch (err) {
          logger.warn({ deviceId: device.id, err: (err as Error).message }, 'the gateway API failed on a closed gateway connection');
        }
      }
    },
  };

  /** Closes every connection of a device at once: MQTT 5 says why (0x87 not authorized). */
  const closeDevice = (deviceId: string, reason: string) => {
    for (const connection of connectionsByDevice.get(deviceId) ?? []) connection.disconnect(RC.NOT_AUTHORIZED, reason);
  };
  const onDeleted = (device: Device) => {
    closeDevice(device.id, 'the device was deleted');
    sessions.dropDevice(device.id);
    presence.delete(device.id);
  };
  const onRevoked = (deviceId: string) => closeDevice(deviceId, 'the device\'s credentials changed');
  registry.on('deleted', onDeleted);
  options.revoked?.on('revoked', onRevoked);

  // Every connection passes admission first (a descriptor each, CONNECT or not).
  const admission = new ConnectionAdmission(
    options.maxConnections ?? defaultMaxConnections(openFilesSoftLimit()),
    options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  );
  let closing = false;
  const handle = (stream: Duplex, info: ConnectionInfo) => {
    if (closing) {
      stream.destroy();
      return;
    }
    const refusal = admission.admit(stream, info.remoteAddress);
    if (refusal) {
      metrics.mqttConnectionsRefused.inc({ reason: refusal });
      limitLog.note(refusal, { remoteAddress: info.remoteAddress });
      return;
    }
    const connection = new MqttConnection(core, stream, info);
    open.add(connection);
    stream.once('close', () => open.delete(connection));
  };
  const server = net.createServer((socket) => handle(socket, { transport: 'tcp', remoteAddress: socket.remoteAddress }));

  return {
    server,
    handle,
    publish(topic, payload, qos, retain) {
      // Device telemetry and attributes topics are never relayed to other clients.
      if (kindOfDeviceTopic(topic)) return;
      const bytes = Buffer.from(payload);
      if (retain) retained.put(topic, bytes, qos);
      const matched = store.subscriptions.match(topic);
      if (matched.size === 0) return;
      let atQos1: OutboundMessage | undefined;
      let atQos0: OutboundMessage | undefined;
      for (const [session, subscribedQos] of matched) {
        const message = qos === 1 && subscribedQos >= 1
          ? (atQos1 ??= { topic, payload: bytes, qos: 1, retain: false })
          : (atQos0 ??= { topic, payload: bytes, qos: 0, retain: false });
        if (session.holder) session.holder.deliver(session, message);
        else if (message.qos === 1) store.enqueue(session, message); // offline: QoS 0 is not kept
      }
    },
    connections: () => presence,
    async close() {
      closing = true;
      registry.off('deleted', onDeleted);
      options.revoked?.off('revoked', onRevoked);
      // Stop accepting first; server.close() resolves once every connection is closed.
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const connection of open) connection.disconnect(RC.SERVER_SHUTTING_DOWN, 'the server is stopping');
      for (const connection of open) connection.destroy();
      admission.destroyAll();
      sessions.close();
      authFailureLog.close();
      limitLog.close();
      await serverClosed;
    },
  };
}
