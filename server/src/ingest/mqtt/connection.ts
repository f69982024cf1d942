import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Device } from '../../storage/device-registry.js';
import type { ConnectCredentials, ConnectVerdict, DeviceTransportKind, PublishOutcome } from '../device-connect.js';
import { deviceMaySubscribe } from '../device-topics.js';
import { FixedHeaderScanner, type FrameRefusal } from '../mqtt-frame-guard.js';
import type { OutboundMessage, Session, SessionHolder } from '../session-store.js';
import {
  connackV3, createParser, encode, encodeWithReason, PINGRESP, PUBACK, PUBCOMP, PUBREC, reasonCodeOf, type PacketParser, type ParseError, type ProtocolVersion,
} from './codec.js';
import { RC, REFUSE, rejectionReasonCode, V3, type ConnackRefusal } from './reason-codes.js';
import type { TransportCore } from './transport-core.js';
import { filterMatches, validTopicFilter, validTopicName } from './topic-tree.js';

/**
 * One MQTT connection (3.1, 3.1.1 or 5, decided by its CONNECT), from accept to close: the
 * state machine between the byte stream and the rest of Sluice.
 *
 * Per message it does the least it can: the fixed-header scan, mqtt-packet's parse, a topic
 * look-up, the append (`TransportCore.route`), and — once the append is durable — the PUBACK or
 * PUBREC, written in PUBLISH order [MQTT-4.6.0-2] into a buffer flushed once per tick. Everything
 * else (credentials, session, limits that depend on the client) is settled at CONNECT.
 */

export interface ConnectionInfo {
  transport: DeviceTransportKind;
  remoteAddress?: string;
  certificateFingerprint?: string;
}

/** Why the stream is paused; it reads again once no reason is left. */
const PAUSED_FOR_CONNECT = 1; // the CONNECT is being authenticated: later packets wait
const PAUSED_FOR_GATE = 2; //    too many device messages in flight (InflightGate)
const PAUSED_FOR_DRAIN = 4; //   the client does not read what is written to it

/** How long a closing connection may take to let its last packet (CONNACK, DISCONNECT) go. */
const CLOSE_LINGER_MS = 1000;
/** The ack buffer: acknowledgements of one tick are copied into one of these and written at once. */
const ACK_BUFFER_BYTES = 1024;
/** Packets after a CONNECT that arrived while it was being authenticated (one socket read at most). */
const MAX_EARLY_PACKETS = 10_000;

/** A QoS 1/2 PUBLISH from the client waiting for its outcome, so that acks go out in PUBLISH order. */
interface PendingAck {
  type: number; // PUBACK or PUBREC
  id: number;
  ready: boolean;
  code: number;
  reason: string | undefined;
}

type State = 'awaiting_connect' | 'connecting' | 'connected' | 'closed';

interface AnyPacket {
  cmd: string;
  [field: string]: unknown;
}
interface PublishPacket {
  cmd: 'publish';
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  dup: boolean;
  messageId?: number;
  properties?: {
    topicAlias?: number;
    responseTopic?: string;
    correlationData?: Buffer;
    userProperties?: Record<string, string | string[]>;
  };
}
interface ConnectPacket {
  cmd: 'connect';
  protocolVersion: number;
  clientId: string;
  clean: boolean;
  keepalive: number;
  username?: string;
  password?: Buffer;
  will?: { qos: number; topic: string };
  properties?: {
    sessionExpiryInterval?: number;
    receiveMaximum?: number;
    maximumPacketSize?: number;
    topicAliasMaximum?: number;
    requestProblemInformation?: boolean;
    authenticationMethod?: string;
    authenticationData?: Buffer;
  };
}

export class MqttConnection implements SessionHolder {
  readonly id: number;
  private state: State = 'awaiting_connect';
  private readonly parser: PacketParser;
  private readonly scanner: FixedHeaderScanner;
  private connectTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private keepaliveMs = 0;
  private lastActivity = Date.now();
  private paused = 0;
  private early: AnyPacket[] | undefined;

  // Settled at CONNECT.
  version: ProtocolVersion = 4;
  device: Device | undefined;
  clientId = '';
  session: Session | undefined;
  connectedAt = 0;
  private expiryMs = 0;
  private problemInfo = true;
  private clientReceiveMaximum = 65_535;
  private clientMaxPacketSize = Infinity;
  private outboundWindow = 0;
  private aliases: (string | undefined)[] | undefined;

  // Inbound flow: acks in PUBLISH order.
  private readonly acks: (PendingAck | undefined)[] = [];
  private ackHead = 0;
  private unackedQos1 = 0;

  // Output: what one tick writes goes out together.
  private out: Buffer[] = [];
  private ackBuf: Buffer | undefined;
  private ackLen = 0;
  private flushScheduled = false;

  constructor(private readonly core: TransportCore, readonly stream: Duplex, readonly info: ConnectionInfo) {
    this.id = core.nextConnectionId();
    const limits = core.limits;
    this.scanner = new FixedHeaderScanner(limits.maxConnectBytes, limits.maxPacketBytes);
    this.parser = createParser();
    this.parser.on('packet', this.onPacket);
    this.parser.on('error', this.onParseError);
    stream.on('data', this.onData);
    stream.on('error', this.onStreamError);
    stream.once('close', this.onClose);
    // The peer closed its side (a WebSocket stream emits no 'close' of its own until destroyed).
    stream.once('end', () => {
      this.flush();
      stream.destroy();
    });
    // Connections that never send a CONNECT (or dribble one) hold a descriptor each: bounded here.
    this.connectTimer = setTimeout(() => this.refuseFrame('connect_timeout'), limits.connectTimeoutMs);
    this.connectTimer.unref();
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** The session's client id as the client sees it, for log lines. */
  private get who(): Record<string, unknown> {
    return { clientId: this.clientId || undefined, deviceId: this.device?.id, remoteAddress: this.info.remoteAddress };
  }

  // ── input ──────────────────────────────────────────────────────────────────────────────────

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === 'closed') return;
    this.lastActivity = Date.now();
    const refusal = this.scanner.scan(chunk);
    if (refusal) return this.refuseFrame(refusal);
    if (this.connectTimer && this.scanner.connectArrived) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
    this.parser.parse(chunk);
  };

  private readonly onPacket = (packet: AnyPacket): void => {
    if (this.state === 'closed') return;
    if (this.state === 'connected') return this.handle(packet);
    if (this.state === 'awaiting_connect') return this.onConnect(packet as unknown as ConnectPacket);
    // Packets behind the CONNECT in the same read, while it is authenticated.
    if (this.early!.length >= MAX_EARLY_PACKETS) return this.protocolError('too many packets before CONNACK');
    this.early!.push(packet);
  };

  private handle(packet: AnyPacket): void {
    switch (packet.cmd) {
      case 'publish': return this.onPublish(packet as unknown as PublishPacket);
      case 'puback': return this.onPuback(packet.messageId as number);
      case 'pubrel': return this.onPubrel(packet.messageId as number);
      case 'pingreq': return this.write(PINGRESP);
      case 'subscribe': return this.onSubscribe(packet);
      case 'unsubscribe': return this.onUnsubscribe(packet);
      case 'disconnect': return this.onDisconnect(packet);
      // Sluice never sends QoS 2 messages: nothing to complete.
      case 'pubrec':
      case 'pubcomp':
        return;
      // Enhanced authentication is not offered [MQTT-4.12.0-1]: an AUTH is a protocol error.
      case 'auth': return this.protocolError('AUTH: enhanced authentication is not offered');
      // A second CONNECT [MQTT-3.1.0-2], or a packet only a server sends.
      default: return this.protocolError(`unexpected ${packet.cmd.toUpperCase()}`);
    }
  }

  private readonly onParseError = (err: ParseError): void => {
    if (this.state === 'closed') return;
    const code = reasonCodeOf(err);
    const reason = code === RC.UNSUPPORTED_PROTOCOL_VERSION ? 'unsupported_protocol_version' : code === RC.PROTOCOL_ERROR ? 'protocol_error' : 'malformed_packet';
    if (this.state === 'awaiting_connect') {
      // The CONNECT itself: answered if its version is known to be one a CONNACK can be sent in.
      this.core.metrics.mqttConnectionsRefused.inc({ reason });
      this.core.limitLog.note(reason, { ...this.who, err: err.message });
      if (code === RC.UNSUPPORTED_PROTOCOL_VERSION) return this.closeWith(connackV3(V3.UNACCEPTABLE_PROTOCOL_VERSION));
      if (this.parser.packet.protocolVersion === 5) {
        return this.closeWith(encodeWithReason({ cmd: 'connack', reasonCode: code, sessionPresent: false }, err.message, Infinity));
      }
      return this.destroy();
    }
    this.disconnectFor(reason, code, err.message);
  };

  // ── CONNECT ────────────────────────────────────────────────────────────────────────────────

  private onConnect(packet: ConnectPacket): void {
    if (packet.cmd !== 'connect') return this.destroy(); // the frame scanner lets only a CONNECT through first
    this.state = 'connecting';
    this.early = [];
    this.version = packet.protocolVersion as ProtocolVersion;
    const v5 = this.version === 5;
    const props = packet.properties ?? {};
    if (v5) {
      if (props.authenticationMethod !== undefined) {
        return this.refuseConnect('bad_authentication_method', { v5: RC.BAD_AUTHENTICATION_METHOD, v3: V3.NOT_AUTHORIZED },
          `authentication method "${props.authenticationMethod}" is not offered: connect with a user name (access token) and password`);
      }
      if (props.authenticationData !== undefined) return this.refuseConnect('protocol_error', { v5: RC.PROTOCOL_ERROR, v3: V3.NOT_AUTHORIZED }, 'authentication data without an authentication method');
      this.problemInfo = props.requestProblemInformation !== false;
      this.clientReceiveMaximum = props.receiveMaximum ?? 65_535;
      this.clientMaxPacketSize = props.maximumPacketSize ?? Infinity;
    }
    // [MQTT-3.1.2-12] Will QoS 3 is malformed. Wills are accepted and not published (docs/architecture.md).
    if (packet.will && packet.will.qos > 2) {
      if (!v5) {
        this.core.metrics.mqttConnectionsRefused.inc({ reason: 'malformed_packet' });
        return this.destroy();
      }
      return this.refuseConnect('malformed_packet', { v5: RC.MALFORMED_PACKET, v3: V3.NOT_AUTHORIZED }, 'will QoS 3');
    }
    const limits = this.core.limits;
    const clientId = packet.clientId;
    if (clientId.length > limits.maxClientIdLength) {
      return this.refuseConnect('client_id_invalid', REFUSE.client_id, `client id longer than ${limits.maxClientIdLength} characters`);
    }
    if (clientId.length === 0 && !v5 && (!packet.clean || this.version === 3)) {
      // [MQTT-3.1.3-8]: a persistent session needs a client id; MQTT 3.1 always wants one.
      return this.refuseConnect('client_id_invalid', REFUSE.client_id, 'an empty client id needs clean session 1');
    }
    this.pause(PAUSED_FOR_CONNECT);
    const credentials: ConnectCredentials = { clientId, transport: this.info.transport };
    if (packet.username !== undefined) credentials.username = packet.username;
    if (packet.password !== undefined) credentials.password = packet.password;
    if (this.info.certificateFingerprint !== undefined) credentials.certificateFingerprint = this.info.certificateFingerprint;
    if (this.info.remoteAddress !== undefined) credentials.remoteAddress = this.info.remoteAddress;
    let verdict: ConnectVerdict | Promise<ConnectVerdict>;
    try {
      verdict = this.core.authenticate(credentials);
    } catch (err) {
      verdict = Promise.reject(err as Error);
    }
    if (verdict instanceof Promise) {
      verdict.then((v) => this.authenticated(packet, clientId, v), (err: Error) => {
        this.core.logger.warn({ ...this.who, err: err.message }, 'MQTT authentication failed with an error');
        this.authenticated(packet, clientId, { ok: false, refusal: 'server_busy', reason: 'authentication failed; retry later' });
      });
    } else {
      this.authenticated(packet, clientId, verdict);
    }
  }

  private authenticated(packet: ConnectPacket, requestedId: string, verdict: ConnectVerdict): void {
    if (this.state !== 'connecting') return; // closed meanwhile
    const core = this.core;
    this.clientId = requestedId;
    if (!verdict.ok) {
      if (verdict.refusal === 'server_busy') {
        core.metrics.mqttConnectionsRefused.inc({ reason: 'server_busy' });
        core.limitLog.note('server_busy', this.who);
      } else {
        core.metrics.authFailures.inc({ transport: 'mqtt' });
        core.authFailureLog.note(verdict.refusal, this.who);
      }
      return this.refuseConnect(undefined, REFUSE[verdict.refusal], verdict.reason);
    }
    if (core.isLogFull()) {
      // Back-pressure: no new publishers while the disk is full; devices retry later.
      core.logger.debug(this.who, 'MQTT connection refused: the log is out of disk space');
      return this.refuseConnect(undefined, REFUSE.server_unavailable, 'server unavailable: disk full');
    }
    const device = verdict.device;
    const v5 = this.version === 5;
    let assigned: string | undefined;
    if (requestedId.length === 0) this.clientId = assigned = `sluice-${randomUUID()}`;
    const clientId = this.clientId;
    // A client id is scoped to the device holding its session: another device may not take it
    // over (and so disconnect the holder) [MQTT-3.1.3-9].
    if (!core.sessions.claim(clientId, device.id, this)) {
      core.metrics.mqttConnectionsRefused.inc({ reason: 'client_id_in_use' });
      core.limitLog.note('client_id_in_use', { ...this.who, deviceId: device.id });
      return this.refuseConnect(undefined, REFUSE.client_id, 'client id in use by another device');
    }
    this.device = device;
    // The same device connecting again takes its session over [MQTT-3.1.4-3].
    const previous = core.store.get(clientId)?.holder;
    if (previous instanceof MqttConnection && previous !== this) previous.takenOver();
    // Session expiry: MQTT 3.1.1 clean session 0 keeps it for the configured time; MQTT 5 for the
    // client's Session Expiry Interval, at most that.
    const maxExpiryMs = core.limits.sessionExpiryMs;
    let clampedSeconds: number | undefined;
    if (v5) {
      const asked = packet.properties?.sessionExpiryInterval ?? 0;
      this.expiryMs = Math.min(asked * 1000, maxExpiryMs);
      if (asked * 1000 > maxExpiryMs) clampedSeconds = Math.floor(maxExpiryMs / 1000);
    } else {
      this.expiryMs = packet.clean ? 0 : maxExpiryMs;
    }
    // Clean Start / clean session 1 discards what the session had [MQTT-3.1.2-6], QoS 2 receipts too.
    if (packet.clean) core.store.dropSession(clientId);
    const sessionPresent = core.store.get(clientId) !== undefined;
    const session = core.store.open(clientId, device.id);
    session.holder = this;
    this.session = session;
    this.outboundWindow = Math.min(this.clientReceiveMaximum, core.limits.maxOutboundInflight);

    if (v5) {
      const properties: Record<string, unknown> = {
        receiveMaximum: core.limits.receiveMaximum,
        maximumPacketSize: core.limits.maximumPacketSize,
        topicAliasMaximum: core.limits.topicAliasMaximum,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: false,
      };
      if (assigned !== undefined) properties.assignedClientIdentifier = assigned;
      if (clampedSeconds !== undefined) properties.sessionExpiryInterval = clampedSeconds;
      this.write(encode({ cmd: 'connack', reasonCode: RC.SUCCESS, sessionPresent, properties }, 5));
    } else {
      this.write(connackV3(V3.ACCEPTED, sessionPresent));
    }
    this.state = 'connected';
    this.connectedAt = Date.now();
    if (packet.keepalive > 0) {
      // [MQTT-3.1.2-24] one and a half times the keep alive without a packet closes the connection.
      this.keepaliveMs = packet.keepalive * 1500;
      this.keepaliveTimer = setTimeout(this.checkKeepalive, this.keepaliveMs);
    }
    core.connected(this);
    // What the session kept: messages in flight again, with DUP [MQTT-4.4.0-1], then the queue.
    for (const [id, message] of session.inflight) this.sendPublish(message, 1, id, true);
    this.fillWindow();
    const early = this.early!;
    this.early = undefined;
    for (const p of early) {
      if (this.state !== 'connected') break;
      this.handle(p);
    }
    this.resume(PAUSED_FOR_CONNECT);
  }

  /** Answers the CONNECT with a refusal and closes [MQTT-3.2.2-5]; `metric` counts it as refused (auth failures count themselves). */
  private refuseConnect(metric: string | undefined, refusal: ConnackRefusal, reason: string): void {
    if (metric) {
      this.core.metrics.mqttConnectionsRefused.inc({ reason: metric });
      this.core.limitLog.note(metric, { ...this.who, reason });
    }
    if (this.version === 5) {
      this.closeWith(encodeWithReason({ cmd: 'connack', reasonCode: refusal.v5, sessionPresent: false }, this.problemInfo ? reason : undefined, this.clientMaxPacketSize));
    } else {
      this.closeWith(connackV3(refusal.v3));
    }
  }

  // ── PUBLISH from the client ────────────────────────────────────────────────────────────────

  private onPublish(packet: PublishPacket): void {
    let topic = packet.topic;
    const props = packet.properties;
    if (props !== undefined && this.version === 5) {
      const alias = props.topicAlias;
      if (alias !== undefined) {
        const max = this.core.limits.topicAliasMaximum;
        if (alias === 0 || alias > max) return this.disconnectFor('topic_alias_invalid', RC.TOPIC_ALIAS_INVALID, `topic alias ${alias} is not between 1 and ${max}`);
        const aliases = (this.aliases ??= new Array<string | undefined>(max + 1));
        if (topic.length === 0) {
          const known = aliases[alias];
          if (known === undefined) return this.disconnectFor('protocol_error', RC.PROTOCOL_ERROR, `topic alias ${alias} was never set`);
          topic = known;
        } else {
          aliases[alias] = topic;
        }
      }
      if (props.responseTopic !== undefined && !validTopicName(props.responseTopic)) {
        return this.disconnectFor('protocol_error', RC.PROTOCOL_ERROR, 'a response topic may not contain wildcards');
      }
    }
    if (!validTopicName(topic)) {
      if (topic.length === 0) return this.disconnectFor('protocol_error', RC.PROTOCOL_ERROR, 'PUBLISH without a topic');
      return this.disconnectFor('topic_name_invalid', RC.TOPIC_NAME_INVALID, `topic "${topic}" has wildcards`);
    }
    const qos = packet.qos;
    const core = this.core;
    if (qos === 0) {
      core.gate.enter();
      let appended: Promise<PublishOutcome>;
      try {
        appended = core.route(this, topic, packet.payload, 0, props);
      } catch (err) {
        appended = Promise.reject(err as Error);
      }
      appended.then(this.qos0Settled, this.publishFailed);
      if (core.gate.full()) this.pause(PAUSED_FOR_GATE);
      return;
    }
    const id = packet.messageId!;
    const sessionId = this.clientId;
    const receipts = core.receipts;
    if (qos === 2) {
      // [MQTT-4.3.3-2] A packet id still awaiting PUBREL is a retransmission: not appended again,
      // and answered only once the first copy is durable (if that append fails, so does this).
      const first = receipts.get(sessionId, id);
      if (first) {
        const ack = this.pushAck(PUBREC, id);
        first.then((outcome) => this.settleDuplicate(ack, outcome as PublishOutcome), this.duplicateFailed);
        return;
      }
    }
    if (this.version === 5) {
      // MQTT 5 Receive Maximum [MQTT-3.3.4-7]: QoS 1 awaiting their PUBACK on this connection and
      // QoS 2 awaiting PUBREL in this session.
      if (this.unackedQos1 + receipts.count(sessionId) >= core.limits.receiveMaximum) {
        return this.disconnectFor('receive_maximum', RC.RECEIVE_MAXIMUM_EXCEEDED, `more than ${core.limits.receiveMaximum} QoS 1 and 2 messages unacknowledged`);
      }
    } else if (qos === 2 && receipts.count(sessionId) >= core.limits.maxQos2AwaitingRelease) {
      // MQTT 3.1.1 cannot tell a client how many it may leave unreleased: one more closes it,
      // counted per session, across reconnects (the receipts outlive the connection).
      return this.disconnectFor('qos2_receive_maximum', RC.RECEIVE_MAXIMUM_EXCEEDED, `more than ${core.limits.maxQos2AwaitingRelease} QoS 2 messages awaiting PUBREL`);
    }
    const ack = this.pushAck(qos === 1 ? PUBACK : PUBREC, id);
    if (qos === 1) this.unackedQos1++;
    core.gate.enter();
    let appended: Promise<PublishOutcome>;
    try {
      appended = core.route(this, topic, packet.payload, qos, props);
    } catch (err) {
      appended = Promise.reject(err as Error);
    }
    if (qos === 1) {
      appended.then((outcome) => this.settle(ack, outcome), this.publishFailed);
    } else {
      receipts.record(sessionId, id, appended);
      appended.then((outcome) => {
        // MQTT 5: a PUBREC with a failure code ends the exchange [MQTT-4.3.3-4]: no PUBREL follows.
        if (!outcome.accepted && this.version === 5) receipts.release(sessionId, id, appended);
        this.settle(ack, outcome);
      }, (err: Error) => {
        // Not stored: the retransmission must be appended then.
        receipts.release(sessionId, id, appended);
        this.publishFailed(err);
      });
    }
    if (core.gate.full()) this.pause(PAUSED_FOR_GATE);
  }

  private pushAck(type: number, id: number): PendingAck {
    const ack: PendingAck = { type, id, ready: false, code: RC.SUCCESS, reason: undefined };
    this.acks.push(ack);
    return ack;
  }

  private setOutcome(ack: PendingAck, outcome: PublishOutcome): void {
    // MQTT 3.1.1 has no failure code: a rejected message is acknowledged (the rejected list has it).
    if (!outcome.accepted && this.version === 5) {
      ack.code = rejectionReasonCode(outcome.category);
      if (this.problemInfo) ack.reason = outcome.reason;
    }
  }

  private settle(ack: PendingAck, outcome: PublishOutcome): void {
    this.setOutcome(ack, outcome);
    this.core.gate.leave(this.afterGate, ack);
  }

  private settleDuplicate(ack: PendingAck, outcome: PublishOutcome): void {
    this.setOutcome(ack, outcome);
    this.afterGate(ack);
  }

  private readonly qos0Settled = (): void => {
    this.core.gate.leave(this.afterGate, undefined);
  };

  /** The append failed (disk full, I/O): no ack, the connection closes, the device sends it again. */
  private readonly publishFailed = (err: Error & { code?: string }): void => {
    this.core.gate.leave(this.afterGate, undefined);
    if (this.state === 'closed') return;
    const full = err.code === 'LOG_FULL';
    this.core.logger.debug({ ...this.who, err: err.message }, 'a device message could not be stored: closing its connection');
    this.disconnect(full ? RC.SERVER_BUSY : RC.UNSPECIFIED_ERROR, err.message);
  };

  /** The first copy of a retransmitted QoS 2 message was not stored: neither is this one. */
  private readonly duplicateFailed = (err: Error & { code?: string }): void => {
    if (this.state === 'closed') return;
    this.disconnect(err.code === 'LOG_FULL' ? RC.SERVER_BUSY : RC.UNSPECIFIED_ERROR, err.message);
  };

  /** A message left the in-flight gate: its ack may go, and the connection may read on. */
  private readonly afterGate = (outcome: unknown): void => {
    const ack = outcome as PendingAck | undefined;
    if (ack) {
      ack.ready = true;
      if (this.acks[this.ackHead] === ack) this.flushAcks();
    }
    if (this.paused & PAUSED_FOR_GATE && !this.core.gate.full()) this.resume(PAUSED_FOR_GATE);
  };

  private flushAcks(): void {
    const acks = this.acks;
    while (this.ackHead < acks.length) {
      const ack = acks[this.ackHead]!;
      if (!ack.ready) break;
      acks[this.ackHead++] = undefined;
      if (ack.type === PUBACK) this.unackedQos1--;
      if (this.state === 'closed') continue;
      if (ack.code === RC.SUCCESS) this.writeAck(ack.type, ack.id);
      else this.write(encodeWithReason({ cmd: ack.type === PUBACK ? 'puback' : 'pubrec', messageId: ack.id, reasonCode: ack.code }, ack.reason, this.clientMaxPacketSize));
    }
    if (this.ackHead === acks.length) {
      acks.length = 0;
      this.ackHead = 0;
    } else if (this.ackHead >= 1024) {
      acks.splice(0, this.ackHead);
      this.ackHead = 0;
    }
  }

  private onPubrel(id: number): void {
    const released = this.core.receipts.release(this.clientId, id);
    if (released || this.version !== 5) this.writeAck(PUBCOMP, id);
    else this.write(encode({ cmd: 'pubcomp', messageId: id, reasonCode: RC.PACKET_IDENTIFIER_NOT_FOUND }, 5));
  }

  // ── PUBLISH to the client ──────────────────────────────────────────────────────────────────

  /** SessionHolder: a message for this session (QoS already the subscription's). */
  deliver(session: Session, message: OutboundMessage): void {
    if (this.state !== 'connected' || session !== this.session) {
      // Closing: a QoS 1 message waits in the session for the next connection (if it has one).
      if (message.qos === 1) this.core.store.enqueue(session, message);
      return;
    }
    if (message.qos === 0) {
      if (this.stream.writableLength > this.core.limits.maxOutboundBufferBytes) return this.core.outboundDropped('slow_subscriber', this.who);
      this.sendPublish(message, 0, undefined, false);
      return;
    }
    if (session.inflight.size < this.outboundWindow && session.queue.length === 0) {
      const id = session.allocatePacketId();
      session.inflight.set(id, message);
      this.sendPublish(message, 1, id, false);
    } else {
      this.core.store.enqueue(session, message);
    }
  }

  private sendPublish(message: OutboundMessage, qos: 0 | 1, id: number | undefined, dup: boolean): void {
    const packet = encode({ cmd: 'publish', topic: message.topic, payload: message.payload, qos, messageId: id, retain: message.retain, dup }, this.version);
    if (packet.length > this.clientMaxPacketSize) {
      // [MQTT-3.1.2-24] Never more than the client's Maximum Packet Size: dropped as if delivered.
      if (id !== undefined) this.session!.inflight.delete(id);
      this.core.outboundDropped('client_maximum_packet_size', { ...this.who, topic: message.topic, bytes: packet.length });
      return;
    }
    this.write(packet);
  }

  private onPuback(id: number): void {
    const session = this.session!;
    if (session.inflight.delete(id)) this.fillWindow();
  }

  /** Sends queued messages while the client's window has room. */
  private fillWindow(): void {
    const session = this.session!;
    while (session.queue.length > 0 && session.inflight.size < this.outboundWindow && this.state === 'connected') {
      const message = session.queue.shift()!;
      const id = session.allocatePacketId();
      session.inflight.set(id, message);
      this.sendPublish(message, 1, id, false);
    }
  }

  /** Whether this connection's session has a subscription matching `topic`, and its QoS. */
  subscribedQos(topic: string): number | undefined {
    let best: number | undefined;
    for (const [filter, subscription] of this.session?.subscriptions ?? []) {
      if (filterMatches(filter, topic) && (best === undefined || subscription.qos > best)) best = subscription.qos;
    }
    return best;
  }

  // ── SUBSCRIBE, UNSUBSCRIBE, DISCONNECT ─────────────────────────────────────────────────────

  private onSubscribe(packet: AnyPacket): void {
    const v5 = this.version === 5;
    const props = packet.properties as { subscriptionIdentifier?: number } | undefined;
    if (v5 && props?.subscriptionIdentifier !== undefined) {
      return this.disconnectFor('subscription_identifiers_not_supported', RC.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, 'subscription identifiers are not supported');
    }
    const session = this.session!;
    const store = this.core.store;
    const granted: number[] = [];
    const retainedFor: string[] = [];
    for (const sub of packet.subscriptions as { topic: string; qos: number; rh?: number }[]) {
      const filter = sub.topic;
      if (!validTopicFilter(filter)) {
        granted.push(v5 ? RC.TOPIC_FILTER_INVALID : 0x80);
      } else if (filter.startsWith('$share/')) {
        granted.push(v5 ? RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED : 0x80);
      } else if (!deviceMaySubscribe(filter)) {
        this.core.logger.debug({ ...this.who, topic: filter }, 'subscription refused');
        granted.push(v5 ? RC.NOT_AUTHORIZED : 0x80);
      } else {
        // Sluice sends at QoS 0 or 1: that is the most a subscription gets.
        const qos = Math.min(sub.qos, 1);
        const isNew = store.subscribe(session, filter, { qos });
        granted.push(qos);
        // Retain Handling: 0 send retained messages, 1 only for a new subscription, 2 never.
        const rh = sub.rh ?? 0;
        if (rh === 0 || (rh === 1 && isNew)) retainedFor.push(filter);
      }
    }
    this.write(encode({ cmd: 'suback', messageId: packet.messageId, granted }, this.version));
    for (const filter of retainedFor) {
      for (const message of this.core.retainedMatching(filter, session.subscriptions.get(filter)!.qos)) this.deliver(session, message);
    }
  }

  private onUnsubscribe(packet: AnyPacket): void {
    const session = this.session!;
    const codes = (packet.unsubscriptions as string[]).map((filter) => (this.core.store.unsubscribe(session, filter) ? RC.SUCCESS : RC.NO_SUBSCRIPTION_EXISTED));
    this.write(encode(this.version === 5 ? { cmd: 'unsuback', messageId: packet.messageId, granted: codes } : { cmd: 'unsuback', messageId: packet.messageId }, this.version));
  }

  private onDisconnect(packet: AnyPacket): void {
    if (this.version === 5) {
      const expiry = (packet.properties as { sessionExpiryInterval?: number } | undefined)?.sessionExpiryInterval;
      if (expiry !== undefined) {
        // [MQTT-3.14.2-2] A session that was to end with the connection cannot be given an expiry now.
        if (this.expiryMs === 0 && expiry > 0) return this.disconnectFor('protocol_error', RC.PROTOCOL_ERROR, 'a Session Expiry Interval at DISCONNECT after 0 at CONNECT');
        this.expiryMs = Math.min(expiry * 1000, this.core.limits.sessionExpiryMs);
      }
    }
    this.flush();
    this.stream.end();
    this.destroySoon();
    this.state = 'closed';
  }

  // ── keepalive, pausing, closing ────────────────────────────────────────────────────────────

  private readonly checkKeepalive = (): void => {
    this.keepaliveTimer = undefined;
    if (this.state !== 'connected') return;
    const idle = Date.now() - this.lastActivity;
    // A connection held back by Sluice itself is not idle.
    if (this.paused !== 0 || idle < this.keepaliveMs) {
      this.keepaliveTimer = setTimeout(this.checkKeepalive, this.paused !== 0 ? this.keepaliveMs : this.keepaliveMs - idle);
      return;
    }
    this.disconnectFor('keepalive_timeout', RC.KEEP_ALIVE_TIMEOUT, `no packet for ${this.keepaliveMs / 1000} s (1.5 × keep alive)`);
  };

  private pause(reason: number): void {
    if (this.paused === 0) this.stream.pause();
    this.paused |= reason;
  }

  private resume(reason: number): void {
    if ((this.paused & reason) === 0) return;
    this.paused &= ~reason;
    if (this.paused === 0 && this.state !== 'closed') {
      this.lastActivity = Date.now();
      this.stream.resume();
    }
  }

  /** The frame scanner found a header over a limit (or the CONNECT is late): closed before the body is read. */
  private refuseFrame(reason: FrameRefusal): void {
    if (this.state === 'closed') return;
    const arrived = this.scanner.connectArrived && reason !== 'connect_timeout';
    (arrived ? this.core.metrics.mqttDisconnects : this.core.metrics.mqttConnectionsRefused).inc({ reason });
    this.core.limitLog.note(reason, this.who);
    // MQTT 5 says "packet too large" (0x95); MQTT 3.1.1 has no packet for it: the connection closes.
    if (this.state === 'connected' && this.version === 5 && reason === 'packet_too_large') {
      return this.disconnect(RC.PACKET_TOO_LARGE, `a packet over the Maximum Packet Size of ${this.core.limits.maximumPacketSize} bytes`);
    }
    this.destroy();
  }

  /** A protocol error after CONNECT: MQTT 5 DISCONNECT 0x82, MQTT 3.1.1 closes [MQTT-4.8.0-1]. */
  private protocolError(reason: string): void {
    this.disconnectFor('protocol_error', RC.PROTOCOL_ERROR, reason);
  }

  /** Counts and logs a limit or protocol breach, then disconnects with its reason code. */
  private disconnectFor(metric: string, code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.core.metrics.mqttDisconnects.inc({ reason: metric });
    this.core.limitLog.note(metric, { ...this.who, reason });
    this.disconnect(code, reason);
  }

  /** Closes the connection: MQTT 5 with DISCONNECT `code` first (and why), MQTT 3.1.1 at once. */
  disconnect(code: number, reason?: string): void {
    if (this.state === 'closed') return;
    if (this.version === 5 && this.state === 'connected') {
      // A DISCONNECT may carry a reason string whatever Request Problem Information said [MQTT-3.1.2-29].
      return this.closeWith(encodeWithReason({ cmd: 'disconnect', reasonCode: code }, reason, this.clientMaxPacketSize));
    }
    this.destroy();
  }

  /** Another connection of the same device took this one's session [MQTT-3.1.4-3]. */
  takenOver(): void {
    this.session = undefined;
    this.disconnect(RC.SESSION_TAKEN_OVER, 'another connection took the session over');
  }

  /** Writes `last` and closes: half-closed at once, destroyed when the peer closes or after a second. */
  private closeWith(last: Buffer): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.write(last);
    this.flush();
    this.stream.end();
    this.destroySoon();
  }

  private destroySoon(): void {
    // Whatever the peer sends meanwhile is read and dropped (onData ignores it), so the last packet is not reset away.
    if (this.paused !== 0) this.stream.resume();
    setTimeout(() => this.stream.destroy(), CLOSE_LINGER_MS).unref();
  }

  destroy(): void {
    this.state = 'closed';
    this.stream.destroy();
  }

  private readonly onStreamError = (err: Error): void => {
    this.core.logger.debug({ ...this.who, err: err.message }, 'MQTT connection error');
  };

  private readonly onClose = (): void => {
    const wasConnected = this.connectedAt > 0;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    clearTimeout(this.keepaliveTimer);
    this.out = [];
    this.early = undefined;
    this.parser.removeAllListeners('packet');
    const session = this.session;
    if (session?.holder === this) session.holder = undefined;
    if (this.device && this.clientId) {
      // A session without expiry ends with its connection; a persistent one goes offline.
      if (this.core.sessions.release(this.clientId, this, this.expiryMs)) this.core.store.dropSession(this.clientId);
    }
    if (wasConnected) this.core.disconnected(this);
  };

  // ── output ─────────────────────────────────────────────────────────────────────────────────

  /** A four-byte ack (PUBACK, PUBREC, PUBCOMP with success), copied into this tick's ack buffer. */
  private writeAck(type: number, id: number): void {
    if (this.state === 'closed') return;
    let buf = this.ackBuf;
    if (!buf || this.ackLen + 4 > buf.length) {
      if (buf) this.out.push(buf.subarray(0, this.ackLen));
      buf = this.ackBuf = Buffer.allocUnsafe(ACK_BUFFER_BYTES);
      this.ackLen = 0;
    }
    buf[this.ackLen] = type;
    buf[this.ackLen + 1] = 2;
    buf[this.ackLen + 2] = id >> 8;
    buf[this.ackLen + 3] = id & 0xff;
    this.ackLen += 4;
    this.scheduleFlush();
  }

  write(packet: Buffer): void {
    if (this.ackLen > 0) {
      this.out.push(this.ackBuf!.subarray(0, this.ackLen));
      this.ackBuf = undefined;
      this.ackLen = 0;
    }
    this.out.push(packet);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.ackLen > 0) {
      this.out.push(this.ackBuf!.subarray(0, this.ackLen));
      this.ackBuf = undefined;
      this.ackLen = 0;
    }
    const out = this.out;
    if (out.length === 0 || this.stream.destroyed || this.stream.writableEnded) {
      out.length = 0;
      return;
    }
    this.out = [];
    let ok = true;
    if (out.length === 1) ok = this.stream.write(out[0]);
    else {
      this.stream.cork();
      for (const chunk of out) ok = this.stream.write(chunk);
      this.stream.uncork();
    }
    if (!ok && this.state !== 'closed' && (this.paused & PAUSED_FOR_DRAIN) === 0) {
      // The client does not read what it is sent: read nothing more from it until it does.
      this.pause(PAUSED_FOR_DRAIN);
      this.stream.once('drain', () => this.resume(PAUSED_FOR_DRAIN));
    }
  };
}
