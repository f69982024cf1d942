import { Readable } from 'node:stream';
import aedesPersistence from 'aedes-persistence';
import type { Qos2Receipts } from './qos2-receipts.js';

/**
 * The broker's session state (aedes' persistence interface) with bounds: subscriptions,
 * retained messages and wills stay in aedes' in-memory persistence; this store keeps the two
 * parts that grow with traffic itself —
 * - each session's queue of outgoing QoS 1/2 messages, capped for sessions that are offline
 *   (MQTT 3.1.1 §4.1 leaves the capacity to the server): at the cap the NEWEST message is dropped,
 *   what was queued first is kept and delivered in order — as Mosquitto's max_queued_messages;
 * - the QoS 2 receipts, without payloads (see Qos2Receipts);
 * and it can drop a whole session (expiry, a deleted device).
 */

/** Messages queued for one offline persistent session before new ones are dropped. */
export const DEFAULT_MAX_QUEUED_MESSAGES_PER_SESSION = 1000;

/** The part of aedes' packet this store reads. */
interface StoredPacket {
  brokerId: string;
  brokerCounter: number;
  messageId?: number;
  [field: string]: unknown;
}
interface SessionRef {
  id: string;
  closed?: boolean;
}
type AnyMethod = (...args: unknown[]) => unknown;
/** aedes' in-memory persistence (a CommonJS function; its typings describe an ES default export). */
const memoryPersistence = aedesPersistence as unknown as () => Record<string, AnyMethod>;

export interface SessionStoreOptions {
  receipts: Qos2Receipts;
  maxQueuedPerSession: number;
  /** True while a client holds the session: its queue is then bounded by the connection instead. */
  isOnline(clientId: string): boolean;
  /** A message was not queued for `clientId`: its offline queue is full. */
  onQueueFull(clientId: string): void;
}

export class BoundedSessionStore {
  private readonly inner = memoryPersistence();
  private readonly outgoing = new Map<string, StoredPacket[]>();

  constructor(private readonly options: SessionStoreOptions) {}

  // aedes checks that setup is an async function.
  async setup(broker: unknown): Promise<void> {
    await this.inner.setup!(broker);
  }

  async destroy(): Promise<void> {
    await this.inner.destroy!();
  }

  // Retained messages, subscriptions and wills: aedes' memory persistence.
  storeRetained(packet: unknown) { return this.inner.storeRetained!(packet); }
  createRetainedStream(pattern: unknown) { return this.inner.createRetainedStream!(pattern); }
  createRetainedStreamCombi(patterns: unknown) { return this.inner.createRetainedStreamCombi!(patterns); }
  addSubscriptions(client: unknown, subs: unknown) { return this.inner.addSubscriptions!(client, subs); }
  removeSubscriptions(client: unknown, subs: unknown) { return this.inner.removeSubscriptions!(client, subs); }
  subscriptionsByClient(client: unknown) { return this.inner.subscriptionsByClient!(client); }
  subscriptionsByTopic(pattern: unknown) { return this.inner.subscriptionsByTopic!(pattern); }
  cleanSubscriptions(client: unknown) { return this.inner.cleanSubscriptions!(client); }
  countOffline() { return this.inner.countOffline!(); }
  putWill(client: unknown, packet: unknown) { return this.inner.putWill!(client, packet); }
  getWill(client: unknown) { return this.inner.getWill!(client); }
  delWill(client: unknown) { return this.inner.delWill!(client); }
  streamWill(brokers: unknown) { return this.inner.streamWill!(brokers); }
  getClientList(topic: unknown) { return this.inner.getClientList!(topic); }

  // Outgoing queues: the semantics of aedes-persistence's memory store, with the cap.
  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    this.enqueue(sub.clientId, packet);
  }

  async outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void> {
    for (const sub of subs) this.enqueue(sub.clientId, packet);
  }

  private enqueue(clientId: string, packet: StoredPacket): void {
    let queue = this.outgoing.get(clientId);
    if ((queue?.length ?? 0) >= this.options.maxQueuedPerSession && !this.options.isOnline(clientId)) {
      this.options.onQueueFull(clientId);
      return;
    }
    if (!queue) this.outgoing.set(clientId, (queue = []));
    // A copy per session: each gets its own packet id when it is sent [MQTT-2.3.1-1].
    queue.push({ ...packet, messageId: undefined });
  }

  /** A queued message is being sent: records the packet id it goes out with. */
  async outgoingUpdate(client: SessionRef, packet: StoredPacket): Promise<void> {
    const queue = this.outgoing.get(client.id) ?? [];
    for (let i = 0; i < queue.length; i++) {
      const queued = queue[i]!;
      if (queued.brokerId === packet.brokerId) {
        if (queued.brokerCounter === packet.brokerCounter) {
          queued.messageId = packet.messageId;
          return;
        }
      } else if (queued.messageId === packet.messageId) {
        queue[i] = packet;
        return;
      }
    }
    throw new Error('no such packet');
  }

  /** Acknowledged (PUBACK / PUBCOMP) or not to be sent: removes it from the queue. */
  async outgoingClearMessageId(client: SessionRef, packet: { messageId?: number }): Promise<StoredPacket | undefined> {
    const queue = this.outgoing.get(client.id);
    if (!queue) return undefined;
    const i = queue.findIndex((queued) => queued.messageId === packet.messageId);
    if (i < 0) return undefined;
    const [removed] = queue.splice(i, 1);
    if (queue.length === 0) this.outgoing.delete(client.id);
    return removed;
  }

  outgoingStream(client: SessionRef): Readable {
    return Readable.from([...(this.outgoing.get(client.id) ?? [])]);
  }

  /** Messages queued for `clientId` now. */
  queued(clientId: string): number {
    return this.outgoing.get(clientId)?.length ?? 0;
  }

  // QoS 2 receipts. Sluice records them itself when a device's PUBLISH arrives; aedes stores one
  // here only for a PUBLISH it did not find — or late, for a connection already taken over
  // (its store must not land in the new session, so a closed connection's is dropped).
  async incomingStorePacket(client: SessionRef, packet: { messageId: number }): Promise<void> {
    if (client.closed) return;
    this.options.receipts.record(client.id, packet.messageId, Promise.resolve());
  }

  async incomingGetPacket(client: SessionRef, packet: { messageId: number }): Promise<{ cmd: 'publish'; messageId: number; qos: 2 }> {
    if (!this.options.receipts.get(client.id, packet.messageId)) throw new Error('no such packet');
    return { cmd: 'publish', messageId: packet.messageId, qos: 2 };
  }

  async incomingDelPacket(client: SessionRef, packet: { messageId: number }): Promise<void> {
    if (!this.options.receipts.release(client.id, packet.messageId)) throw new Error('no such packet');
  }

  async cleanIncoming(client: SessionRef): Promise<void> {
    this.options.receipts.clear(client.id);
  }

  /** Forgets everything of a session that is not connected: queue, receipts, subscriptions, will. */
  async dropSession(clientId: string): Promise<void> {
    this.outgoing.delete(clientId);
    this.options.receipts.clear(clientId);
    await this.inner.cleanSubscriptions!({ id: clientId });
    await this.inner.delWill!({ id: clientId });
  }
}
