import type { Qos2Receipts } from './qos2-receipts.js';
import { TopicTree } from './mqtt/topic-tree.js';

/**
 * The MQTT sessions' state, bounded: each session's subscriptions (also indexed in one topic
 * tree for matching), its queue of outgoing QoS 1 messages and those in flight, and — in
 * Qos2Receipts, without payloads — the QoS 2 packet ids it has awaiting PUBREL. Which device
 * holds a client id and when an offline session expires is ClientSessions' business; this store
 * forgets a session when told (dropSession).
 *
 * The queue holds what could not be sent yet: beyond the client's Receive Maximum while it is
 * connected, everything while it is offline. It is capped (MQTT 3.1.1 §4.1 leaves the capacity to
 * the server): at the cap the NEWEST message is dropped, what was queued first is kept and
 * delivered in order — as Mosquitto's max_queued_messages.
 */

/** Messages queued for one session before new ones are dropped. */
export const DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION = 1000;

/** A message from the server to a client (rule republish, alarm notification). */
export interface OutboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

export interface SessionSubscription {
  /** The QoS granted: what the subscriber gets is at most this. */
  qos: number;
}

/** What holds a session while its client is connected: the connection, which sends what the session has. */
export interface SessionHolder {
  /** A message for the session, at its QoS for this subscriber (already the lower of the message's and the subscription's). */
  deliver(session: Session, message: OutboundMessage): void;
}

export class Session {
  readonly subscriptions = new Map<string, SessionSubscription>();
  /** QoS 1 messages not sent yet, oldest first. */
  readonly queue: OutboundMessage[] = [];
  /** QoS 1 messages sent and not yet acknowledged (PUBACK), by packet id, in the order sent. */
  readonly inflight = new Map<number, OutboundMessage>();
  holder: SessionHolder | undefined;
  private nextPacketId = 1;

  constructor(readonly clientId: string, readonly deviceId: string) {}

  /** A packet id not in flight [MQTT-2.3.1-2]; the caller keeps fewer than 65,535 in flight. */
  allocatePacketId(): number {
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65_535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }
}

export interface SessionStoreOptions {
  receipts: Qos2Receipts;
  maxQueuedPerSession: number;
  /** A message was not queued for `clientId`: its queue is full. */
  onQueueFull(clientId: string): void;
}

export class BoundedSessionStore {
  private readonly sessions = new Map<string, Session>();
  /** Every session's subscriptions, for matching a published topic. */
  readonly subscriptions = new TopicTree<Session>();

  constructor(private readonly options: SessionStoreOptions) {}

  get(clientId: string): Session | undefined {
    return this.sessions.get(clientId);
  }

  /** The session of `clientId`, made if there is none. */
  open(clientId: string, deviceId: string): Session {
    let session = this.sessions.get(clientId);
    if (!session) this.sessions.set(clientId, (session = new Session(clientId, deviceId)));
    return session;
  }

  subscribe(session: Session, filter: string, subscription: SessionSubscription): boolean {
    const isNew = !session.subscriptions.has(filter);
    session.subscriptions.set(filter, subscription);
    this.subscriptions.add(filter, session, subscription.qos);
    return isNew;
  }

  unsubscribe(session: Session, filter: string): boolean {
    if (!session.subscriptions.delete(filter)) return false;
    this.subscriptions.remove(filter, session);
    return true;
  }

  /** Queues a QoS 1 message for `session`; false (and counted by onQueueFull) if its queue is full. */
  enqueue(session: Session, message: OutboundMessage): boolean {
    if (session.queue.length >= this.options.maxQueuedPerSession) {
      this.options.onQueueFull(session.clientId);
      return false;
    }
    session.queue.push(message);
    return true;
  }

  /** Messages queued for `clientId` now (not counting those in flight). */
  queued(clientId: string): number {
    return this.sessions.get(clientId)?.queue.length ?? 0;
  }

  /** Sessions kept now, online or not. */
  get size(): number {
    return this.sessions.size;
  }

  /** Forgets everything of a session: subscriptions, queue, messages in flight, QoS 2 receipts. */
  dropSession(clientId: string): void {
    const session = this.sessions.get(clientId);
    this.options.receipts.clear(clientId);
    if (!session) return;
    for (const filter of session.subscriptions.keys()) this.subscriptions.remove(filter, session);
    session.subscriptions.clear();
    session.queue.length = 0;
    session.inflight.clear();
    session.holder = undefined;
    this.sessions.delete(clientId);
  }
}
