/**
 * Which device holds each MQTT client id's session, and how long offline ones are kept.
 *
 * - A client id is scoped to the device that holds its session: another device's CONNECT with
 *   it is refused (identifier rejected) instead of taking the session over and disconnecting
 *   the holder; the same device connecting again takes its session over [MQTT-3.1.4-2].
 * - A persistent session (MQTT 3.1.1 clean session 0, or MQTT 5 with a Session Expiry Interval)
 *   whose client is gone is kept for its expiry — `expireAfterMs` for MQTT 3.1.1 (§4.1 leaves how
 *   long to the server), the client's Session Expiry Interval clamped to it for MQTT 5 — then
 *   dropped. A device reconnecting after that gets Session Present 0: an expired session is
 *   dropped when its client id is claimed again, whenever the timer last ran.
 * - A device keeps at most `maxOfflinePerDevice` offline sessions: one that keeps inventing
 *   client ids cannot pile up queues and subscriptions; the one offline longest goes first.
 */

/** Offline persistent sessions are dropped after this long. */
export const DEFAULT_SESSION_EXPIRY_MS = 86_400_000;
/** Offline persistent sessions one device may hold (a device usually has one). */
export const DEFAULT_MAX_OFFLINE_SESSIONS_PER_DEVICE = 10;

export type SessionDropReason = 'expired' | 'device_limit' | 'device_deleted';

interface Session {
  deviceId: string;
  /** The connection that holds it; undefined while it is offline. */
  holder: object | undefined;
}

export interface ClientSessionsOptions {
  expireAfterMs: number;
  maxOfflinePerDevice: number;
  /** Forget the session's state (queue, receipts, subscriptions). */
  drop(clientId: string, reason: SessionDropReason): void;
  now?: () => number;
}

export class ClientSessions {
  private readonly sessions = new Map<string, Session>();
  /** Offline persistent sessions, in the order they went offline (Map order), with when each expires. */
  private readonly offline = new Map<string, number>();
  private readonly offlineByDevice = new Map<string, Set<string>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly options: ClientSessionsOptions) {
    this.now = options.now ?? Date.now;
    const every = Math.min(60_000, Math.max(10, Math.floor(options.expireAfterMs / 4)));
    this.sweeper = setInterval(() => this.expire(), every);
    this.sweeper.unref();
  }

  /**
   * At CONNECT, once the device is known: false if another device holds `clientId`'s session
   * (online, or offline and not yet expired); else `holder` holds it from now on.
   */
  claim(clientId: string, deviceId: string, holder: object): boolean {
    const expiresAt = this.offline.get(clientId);
    if (expiresAt !== undefined && expiresAt <= this.now()) this.drop(clientId, 'expired');
    const session = this.sessions.get(clientId);
    if (session && session.deviceId !== deviceId) return false;
    this.markOnline(clientId, deviceId);
    this.sessions.set(clientId, { deviceId, holder });
    return true;
  }

  /** True while a connection holds `clientId`'s session. */
  isOnline(clientId: string): boolean {
    return this.sessions.get(clientId)?.holder !== undefined;
  }

  /**
   * `holder`'s connection closed. A session with no expiry (a clean session) ends with it
   * [MQTT-3.1.2-6]: true, the caller forgets its state. A persistent one goes offline for
   * `expireAfterMs` (at most the configured expiry). Nothing happens if another connection took
   * it over meanwhile.
   */
  release(clientId: string, holder: object, expireAfterMs: number): boolean {
    const session = this.sessions.get(clientId);
    if (!session || session.holder !== holder) return false;
    if (expireAfterMs <= 0) {
      this.sessions.delete(clientId);
      return true;
    }
    session.holder = undefined;
    this.offline.set(clientId, this.now() + Math.min(expireAfterMs, this.options.expireAfterMs));
    let ofDevice = this.offlineByDevice.get(session.deviceId);
    if (!ofDevice) this.offlineByDevice.set(session.deviceId, (ofDevice = new Set()));
    ofDevice.add(clientId);
    if (ofDevice.size > this.options.maxOfflinePerDevice) {
      // The oldest of this device's offline sessions: Set order is the order they went offline.
      this.drop(ofDevice.values().next().value!, 'device_limit');
    }
    return false;
  }

  /** Drops every session of a deleted device, online or not (the broker closes its connections); returns their client ids. */
  dropDevice(deviceId: string): string[] {
    const held: string[] = [];
    for (const [clientId, session] of this.sessions) {
      if (session.deviceId !== deviceId) continue;
      held.push(clientId);
      this.drop(clientId, 'device_deleted');
    }
    return held;
  }

  /** Offline persistent sessions now. */
  offlineCount(): number {
    return this.offline.size;
  }

  /** Drops the offline sessions that are past their time (also run by a timer). */
  expire(): void {
    const now = this.now();
    for (const [clientId, expiresAt] of this.offline) {
      if (expiresAt <= now) this.drop(clientId, 'expired');
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private drop(clientId: string, reason: SessionDropReason): void {
    const session = this.sessions.get(clientId);
    if (!session) return;
    this.markOnline(clientId, session.deviceId);
    this.sessions.delete(clientId);
    this.options.drop(clientId, reason);
  }

  /** No longer offline: out of the ageing lists. */
  private markOnline(clientId: string, deviceId: string): void {
    if (!this.offline.delete(clientId)) return;
    const ofDevice = this.offlineByDevice.get(deviceId);
    ofDevice?.delete(clientId);
    if (ofDevice?.size === 0) this.offlineByDevice.delete(deviceId);
  }
}
