import net from 'node:net';
import { Aedes, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Device, DeviceRegistry } from '../storage/device-registry.js';
import { deviceMaySubscribe, kindOfDeviceTopic, publishTopicList } from './device-topics.js';
import type { Ingest } from './ingest.js';
import { InflightGate } from './inflight-gate.js';

/** CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3). */
const SERVER_UNAVAILABLE = 3;
const BAD_USERNAME_OR_PASSWORD = 4;
/** Device messages being appended at once before connections are held back (about 1 KB of memory each). */
const DEFAULT_MAX_INFLIGHT_MESSAGES = 100_000;

export interface MqttBroker {
  server: net.Server;
  /** Publishes from the server itself (rule republish), to whoever subscribed. */
  publish(topic: string, payload: string, qos: 0 | 1, retain: boolean): void;
  close(): Promise<void>;
}

export interface MqttBrokerOptions {
  registry: DeviceRegistry;
  ingest: Ingest;
  metrics: Metrics;
  logger: Logger;
  /** Device messages in flight (arrived, not yet in the log) before connections stop being read. */
  maxInflightMessages?: number;
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

  const broker = await Aedes.createBroker({
    // A session's client id is the device's business; ThingsBoard clients send long ones.
    maxClientsIdLength: 256,
    authenticate(client, username, _password, done) {
      const device = username ? registry.findByToken(username) : undefined;
      if (!device) {
        metrics.authFailures.inc({ transport: 'mqtt' });
        logger.info({ clientId: client.id }, 'MQTT connection refused: unknown or empty access token');
        const err = Object.assign(new Error('unknown or empty access token'), { returnCode: BAD_USERNAME_OR_PASSWORD });
        return done(err as never, false);
      }
      if (ingest.isLogFull()) {
        // Back-pressure: no new publishers while the disk is full; devices retry later.
        logger.debug({ clientId: client.id }, 'MQTT connection refused: the log is out of disk space');
        const err = Object.assign(new Error('server unavailable: disk full'), { returnCode: SERVER_UNAVAILABLE });
        return done(err as never, false);
      }
      devices.set(client, device);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      const device = client ? devices.get(client) : undefined;
      // The broker's own publishes ($SYS heartbeats) come without a client.
      if (!client || !device) return done(null);
      // Nothing a device sends is kept as a retained message [MQTT-3.3.1-5 does not apply].
      packet.retain = false;
      // [MQTT-4.3.3-2] A QoS 2 PUBLISH whose packet id is still awaiting PUBREL is a retransmission:
      // it was appended the first time, so it must not be appended again (aedes answers PUBREC).
      gate.enter();
      // Per message: QoS 0 and 1 go straight to the append, one promise each. (Inline callbacks:
      // a named closure per message costs a name definition under tsx, measurably.)
      let appended: Promise<unknown>;
      try {
        appended = packet.qos !== 2 ? handleDevicePublish(device, packet)
          : isNewQos2(client, packet).then((isNew) => (isNew ? handleDevicePublish(device, packet) : undefined));
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

  function isNewQos2(client: Client, packet: PublishPacket): Promise<boolean> {
    const persistence = (broker as unknown as { persistence: { incomingGetPacket(c: Client, p: { messageId?: number }): Promise<unknown> } }).persistence;
    return persistence.incomingGetPacket(client, packet).then(() => false, () => true);
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
  };
  registry.on('deleted', onDeleted);

  const server = net.createServer(broker.handle);
  return {
    server,
    publish(topic, payload, qos, retain) {
      route({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false } as PublishPacket, null);
    },
    async close() {
      registry.off('deleted', onDeleted);
      // Stop accepting first; server.close() resolves only once the broker has closed every client.
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await serverClosed;
    },
  };
}
