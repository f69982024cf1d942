import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConnectCredentials, ConnectVerdict, DeviceAuthenticator } from '../ingest/device-connect.js';
import { verifyPassword } from './device-credentials.js';
import type { Device, DeviceRegistry } from './device-registry.js';

/**
 * Password checks are CPU-bound (scrypt, on libuv's pool of 4 threads that file I/O shares): at
 * most this many run at once, so a reconnect storm leaves threads for the log's writes.
 */
export const DEFAULT_MAX_CONCURRENT_PASSWORD_CHECKS = 2;
/** Checks waiting for one of those; a CONNECT beyond is refused as server busy (the device retries). */
export const DEFAULT_MAX_QUEUED_PASSWORD_CHECKS = 256;
/** Passwords recently checked good, kept so a device reconnecting is not hashed again. */
export const DEFAULT_PASSWORD_CACHE_ENTRIES = 10_000;

export interface AuthenticatorOptions {
  maxConcurrentChecks?: number;
  maxQueuedChecks?: number;
  cacheEntries?: number;
  /** Told the outcome of each password check: a good one (`cached`: without hashing), a wrong one, or one refused as busy. */
  onPasswordCheck?: (outcome: 'good' | 'cached' | 'wrong' | 'busy') => void;
}

const BAD_CREDENTIALS = 'unknown or wrong device credentials (access token, MQTT basic or X.509 certificate)';
const refused = (reason = BAD_CREDENTIALS): ConnectVerdict => ({ ok: false, refusal: 'bad_credentials', reason });
const ok = (device: Device): ConnectVerdict => ({ ok: true, device });

/**
 * How a CONNECT is matched to a device, in ThingsBoard's order:
 *  1. a TLS client certificate whose fingerprint is a device's X.509 credentials: that device;
 *  2. else the username as an access token (the password is not looked at);
 *  3. else MQTT basic credentials: the device with this client id and username, else the one with
 *     this client id alone, else the one with this username alone (exact, case-sensitive); when
 *     it has a password, the CONNECT's must be it.
 * Anything else is refused as bad credentials, with one reason for all (it tells a prober nothing).
 */
export function createDeviceAuthenticator(registry: DeviceRegistry, options: AuthenticatorOptions = {}): DeviceAuthenticator {
  const checks = new PasswordChecks(registry, options);
  return (c: ConnectCredentials) => {
    if (c.certificateFingerprint !== undefined) {
      const device = registry.findByFingerprint(c.certificateFingerprint);
      if (device) return ok(device);
    }
    if (c.username !== undefined) {
      const device = registry.findByToken(c.username);
      if (device) return ok(device);
    }
    const match = registry.findMqttBasic(c.clientId, c.username);
    if (!match) return refused();
    if (match.passwordHash === undefined) return ok(match.device);
    if (c.password === undefined) return refused();
    return checks.check(match.device, match.passwordHash, c.password);
  };
}

/** Bounded scrypt checks, and a bounded cache of good ones (cleared for a device whose credentials change). */
class PasswordChecks {
  private running = 0;
  private readonly queue: (() => void)[] = [];
  /** `<device id> <hash>` → HMAC of the password under a key of this process: no password is kept in clear. */
  private readonly good = new Map<string, Buffer>();
  private readonly key = randomBytes(32);
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly cacheEntries: number;

  constructor(private readonly registry: DeviceRegistry, private readonly options: AuthenticatorOptions) {
    this.maxConcurrent = options.maxConcurrentChecks ?? DEFAULT_MAX_CONCURRENT_PASSWORD_CHECKS;
    this.maxQueued = options.maxQueuedChecks ?? DEFAULT_MAX_QUEUED_PASSWORD_CHECKS;
    this.cacheEntries = options.cacheEntries ?? DEFAULT_PASSWORD_CACHE_ENTRIES;
    registry.on('revoked', (id) => {
      for (const k of this.good.keys()) if (k.startsWith(`${id} `)) this.good.delete(k);
    });
  }

  check(device: Device, hash: string, password: Buffer): ConnectVerdict | Promise<ConnectVerdict> {
    const cacheKey = `${device.id} ${hash}`;
    const mac = createHmac('sha256', this.key).update(password).digest();
    const cached = this.good.get(cacheKey);
    if (cached && timingSafeEqual(cached, mac)) {
      this.good.delete(cacheKey); // most recently used last
      this.good.set(cacheKey, cached);
      this.options.onPasswordCheck?.('cached');
      return ok(device);
    }
    if (this.running >= this.maxConcurrent && this.queue.length >= this.maxQueued) {
      this.options.onPasswordCheck?.('busy');
      return { ok: false, refusal: 'server_busy', reason: 'too many password checks waiting; retry later' };
    }
    return this.slot(async () => {
      const right = await verifyPassword(password, hash);
      this.options.onPasswordCheck?.(right ? 'good' : 'wrong');
      if (!right) return refused();
      // The credentials may have changed while the hash was computed: the check is then void.
      const now = this.registry.storedCredentials(device.id);
      if (now?.type !== 'mqtt_basic' || now.passwordHash !== hash) return refused();
      this.good.set(cacheKey, mac);
      if (this.good.size > this.cacheEntries) this.good.delete(this.good.keys().next().value!);
      return ok(this.registry.find(device.id) ?? device);
    });
  }

  /** Runs `task` when fewer than maxConcurrent run; the caller checked there is room to wait. */
  private async slot<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next(); // the slot passes to it: running stays the same
      else this.running--;
    }
  }
}
