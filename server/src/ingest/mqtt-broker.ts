import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Device, DeviceRegistry } from '../storage/device-registry.js';
import { ClientSessions, DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE, DEFAULT_SESSION_EXPIRY_MS } from './client-sessions.js';
import { ConnectionAdmission, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, defaultMaxConnections, openFilesSoftLimit } from './connection-admission.js';
import { deviceMaySubscribe, kindOfDeviceTopic, publishTopicList } from './device-topics.js';
import type { Ingest } from './ingest.js';
import { InflightGate } from './inflight-gate.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_CONNECT_BYTES, DEFAULT_PACKET_HEADROOM_BYTES, guardMqttFrames } from './mqtt-frame-guard.js';
import { Qos2Receipts } from './qos2-receipts.js';
import { BoundedSessionStore, DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION } from './session-store.js';
import { ThrottledLog } from './throttled-log.js';

/** CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3). */
const IDENTIFIER_REJECTED = 2;
const SERVER_UNAVAILABLE = 3;
const BAD_USERNAME_OR_PASSWORD = 4;
/** Device messages being appended at once before connections are held back (about 1 KB of memory each). */
const DEFAULT_MAX_INFLIGHT_MESSAGES = 100_000;
/** The default of --max-payload-bytes. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 65_536;
/** QoS 2 messages one session may have awaiting PUBREL (MQTT 5 calls it Receive Maximum). */
export const DEFAULT_MAX_QOS2_AWAITING_RELEASE = 100;
export {
  DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_CONNECT_BYTES, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE,
  DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION, DEFAULT_PACKET_HEADROOM_BYTES, DEFAULT_SESSION_EXPIRY_MS, defaultMaxConnections,
};

export interface MqttBroker {
  server: net.Server;
  /** Publishes from the server itself (rule republish), to whoever subscribed. */
  publish(topic: string, payload: string, qos: 0 | 1, retain: boolean): void;
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
  /** QoS 2 messages per session awaiting PUBREL; one more disconnects the client. */
  maxQos2AwaitingRelease?: number;
  /** Messages queued for an offline persistent session; beyond, the newest are dropped. */
  maxQueuedMessagesPerSession?: number;
  /** Offline persistent sessions are dropped after this long. */
  sessionExpiryMs?: number;
  /** Offline persistent sessions per device; beyond, the one offline longest is dropped. */
  maxOfflineSessionsPerDevice?: number;
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
}

/**
 * Sluice's own MQTT broker. A device connects with its access token as username; every PUBLISH
 * is validated and appended to the log inside `authorizePublish`, so that aedes sends the PUBACK
 * of a QoS 1 message only once it is durable. Device messages are not relayed to subscribers.
 */
export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const { registry, ingest, metrics, logger } = options;
  const devices = new WeakMap<Client, Device>();
  const clientsByDevice = new Map<string, Set<Client>>();
  const gate = new InflightGate(options.maxInflightMessages ?? DEFAULT_MAX_INFLIGHT_MESSAGES);
  const maxQos2AwaitingRelease = options.maxQos2AwaitingRelease ?? DEFAULT_MAX_QOS2_AWAITING_RELEASE;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  // Refusals come by the thousand from hostile clients: one log line a second each, every one counted.
  const authFailureLog = new ThrottledLog(logger, 'info', 'MQTT connection refused: unknown or empty access token');
  const limitLog = new ThrottledLog(logger, 'warn', 'MQTT connection refused or closed at a limit');
  const receipts = new Qos2Receipts();
  const sessions = new ClientSessions({
    expireAfterMs: options.sessionExpiryMs ?? DEFAULT_SESSION_EXPIRY_MS,
    maxOfflinePerDevice: options.maxOfflineSessionsPerDevice ?? DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE,
    drop(clientId, reason) {
      metrics.mqttSessionsDropped.inc({ reason });
      logger.debug({ clientId, reason }, 'MQTT session dropped');
      store.dropSession(clientId).catch((err: Error) => logger.warn({ clientId, err: err.message }, 'could not drop an MQTT session'));
    },
  });
  const store = new BoundedSessionStore({
    receipts,
    maxQueuedPerSession: options.maxQueuedMessagesPerSession ?? DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION,
    isOnline: (clientId) => sessions.isOnline(clientId),
    onQueueFull(clientId) {
      metrics.mqttQueuedDropped.inc();
      limitLog.note('session_queue_full', { clientId });
    },
  });

  const broker = await Aedes.createBroker({
    persistence: store,
    // aedes' own per-connection bound of the same; Sluice's, per session, is in authorizeQos2.
    maxInflightInbound: maxQos2AwaitingRelease,
    // The frame guard closes late CONNECTs; aedes' own timer is only a backstop behind it.
    connectTimeout: connectTimeoutMs * 2,
    // A session's client id is the device's business; ThingsBoard clients send long ones.
    maxClientsIdLength: 256,
    authenticate(client, username, _password, done) {
      const device = username ? registry.findByToken(username) : undefined;
      if (!device) {
        metrics.authFailures.inc({ transport: 'mqtt' });
        authFailureLog.note('unknown_token', { clientId: client.id });
        const err = Object.assign(new Error('unknown or empty access token'), { returnCode: BAD_USERNAME_OR_PASSWORD });
        return done(err as never, false);
      }
      if (ingest.isLogFull()) {
        // Back-pressure: no new publishers while the disk is full; devices retry later.
        logger.debug({ clientId: client.id }, 'MQTT connection refused: the log is out of disk space');
        const err = Object.assign(new Error('server unavailable: disk full'), { returnCode: SERVER_UNAVAILABLE });
        return done(err as never, false);
      }
      // A client id is scoped to the device holding its session: another device may not take it
      // over (and so disconnect the holder); [MQTT-3.1.3-9] answer 2, identifier rejected.
      if (!sessions.claim(client.id, device.id, client)) {
        metrics.mqttConnectionsRefused.inc({ reason: 'client_id_in_use' });
        limitLog.note('client_id_in_use', { clientId: client.id, deviceId: device.id });
        const err = Object.assign(new Error('client id in use by another device'), { returnCode: IDENTIFIER_REJECTED });
        return done(err as never, false);
      }
      const persistent = !client.clean;
      const conn = client.conn as unknown as Duplex;
      const release = () => sessions.release(client.id, client, persistent);
      if (conn.closed) release();
      else conn.once('close', release);
      devices.set(client, device);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      const device = client ? devices.get(client) : undefined;
      // The broker's own publishes ($SYS heartbeats) come without a client.
      if (!client || !device) return done(null);
      // Nothing a device sends is kept as a retained message [MQTT-3.3.1-5 does not apply].
      packet.retain = false;
      if (packet.qos === 2) return authorizeQos2(client, device, packet, done);
      gate.enter();
      // Per message: QoS 0 and 1 go straight to the append, one promise each. (Inline callbacks:
      // a named closure per message costs a name definition under tsx, measurably.)
      let appended: Promise<unknown>;
      try {
        appended = handleDevicePublish(device, packet);
      } catch (err) {
        appended = Promise.reject(err as Error); // never let a throw reach aedes
      }
      appended.then(() => gate.leave(done, null), (err: Error) => gate.leave(done, err));
    },
    authorizeSubscribe(client, subscription: Subscription, done) {
      if (client && devices.has(client) && !deviceMaySubscribe(subscription.topic)) {
        logger.debug({ clientId: client.id, topic: subscription.topic }, 'subscription refused');
        return done(null, null as never); // SUBACK 0x80: failure
      }
      done(null, subscription);
    },
    authorizeForward(client, packet) {
      return client && devices.has(client) && kindOfDeviceTopic(packet.topic) ? null : packet;
    },
  });

  // What a device publishes was ingested in authorizePublish and is never relayed to another
  // client (only devices connect, and authorizeForward blocks device topics), so it skips aedes'
  // routing — the subscription trie match and the emitter — which cost ~12% of the broker's CPU.
  // (aedes' typings show publish(packet, callback); internally it is publish(packet, client, done).)
  type InternalPublish = (packet: PublishPacket, client: Client | null, done?: (err?: Error) => void) => void;
  const internal = broker as unknown as { publish: InternalPublish };
  const route = internal.publish.bind(broker);
  internal.publish = (packet, client, done) => {
    if (client && devices.has(client)) return done?.();
    return route(packet, client, done);
  };

  /**
   * A device's QoS 2 PUBLISH. Its receipt is recorded here, when it arrives, so that aedes finds it
   * and answers PUBREC once `done` is called — after the append is durable.
   */
  function authorizeQos2(client: Client, device: Device, packet: PublishPacket, done: (err: Error | null) => void): void {
    const sessionId = client.id;
    const messageId = packet.messageId ?? 0;
    // [MQTT-4.3.3-2] A packet id still awaiting PUBREL is a retransmission: not appended again,
    // and answered only once the first copy is durable (if that append fails, so does this).
    const first = receipts.get(sessionId, messageId);
    if (first) {
      first.then(() => done(null), (err: Error) => done(err));
      return;
    }
    // MQTT 3.1.1 has no way to tell a client how many it may leave unreleased; MQTT 5's Receive
    // Maximum does, and a client that sends more is disconnected (DISCONNECT 0x93). So here,
    // counted per session, across reconnects: the receipts outlive the connection.
    if (receipts.count(sessionId) >= maxQos2AwaitingRelease) {
      metrics.mqttDisconnects.inc({ reason: 'qos2_receive_maximum' });
      limitLog.note('qos2_receive_maximum', { clientId: sessionId, deviceId: device.id });
      return done(new Error(`more than ${maxQos2AwaitingRelease} QoS 2 messages awaiting PUBREL`));
    }
    gate.enter();
    let appended: Promise<unknown>;
    try {
      appended = handleDevicePublish(device, packet);
    } catch (err) {
      appended = Promise.reject(err as Error);
    }
    receipts.record(sessionId, messageId, appended);
    appended.then(() => gate.leave(done, null), (err: Error) => {
      // Not stored: the device's retransmission must be appended then.
      receipts.release(sessionId, messageId, appended);
      gate.leave(done, err);
    });
  }

  function handleDevicePublish(device: Device, packet: PublishPacket): Promise<unknown> {
    const kind = kindOfDeviceTopic(packet.topic);
    if (!kind) {
      ingest.reject('mqtt', packet.topic, device.id, Date.now(), 'unknown_topic',
        `unknown topic "${packet.topic}": publish to ${publishTopicList.join(' or ')}`);
      return Promise.resolve();
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    return ingest.accept(device, kind, payload, 'mqtt', packet.topic);
  }

  broker.on('client', (client) => {
    metrics.mqttClients.inc();
    const device = devices.get(client);
    if (device) {
      let set = clientsByDevice.get(device.id);
      if (!set) clientsByDevice.set(device.id, (set = new Set()));
      set.add(client);
    }
  });
  broker.on('clientDisconnect', (client) => {
    metrics.mqttClients.dec();
    const device = devices.get(client);
    if (device) clientsByDevice.get(device.id)?.delete(client);
  });
  broker.on('clientError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'MQTT client error'));
  broker.on('connectionError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'MQTT connection error'));

  const onDeleted = (device: Device) => {
    for (const client of clientsByDevice.get(device.id) ?? []) client.close();
    clientsByDevice.delete(device.id);
    sessions.dropDevice(device.id);
  };
  registry.on('deleted', onDeleted);

  // Every connection passes admission at accept (a descriptor each), then the frame guard reads
  // its fixed headers on the way to aedes' parser. Both work on the socket alone.
  const admission = new ConnectionAdmission(
    options.maxConnections ?? defaultMaxConnections(openFilesSoftLimit()),
    options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  );
  const frameLimits = {
    maxConnectBytes: options.maxConnectBytes ?? DEFAULT_MAX_CONNECT_BYTES,
    maxPacketBytes: (options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES) + (options.packetHeadroomBytes ?? DEFAULT_PACKET_HEADROOM_BYTES),
    connectTimeoutMs,
  };
  const server = net.createServer((socket) => {
    const remoteAddress = socket.remoteAddress;
    const refusal = admission.admit(socket);
    if (refusal) {
      metrics.mqttConnectionsRefused.inc({ reason: refusal });
      limitLog.note(refusal, { remoteAddress });
      return;
    }
    broker.handle(socket);
    guardMqttFrames(socket, frameLimits, (reason, connectArrived) => {
      (connectArrived ? metrics.mqttDisconnects : metrics.mqttConnectionsRefused).inc({ reason });
      limitLog.note(reason, { remoteAddress, clientId: (socket as { client?: Client }).client?.id ?? undefined });
    });
  });
  return {
    server,
    publish(topic, payload, qos, retain) {
      route({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false } as PublishPacket, null);
    },
    async close() {
      registry.off('deleted', onDeleted);
      // Stop accepting first; server.close() resolves once every connection is closed: the
      // broker closes its clients, and those that never sent a CONNECT are closed here.
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      admission.destroyAll();
      sessions.close();
      authFailureLog.close();
      limitLog.close();
      await serverClosed;
    },
  };
}
