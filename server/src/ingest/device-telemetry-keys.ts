import type { TelemetryEntry } from '../telemetry/payload.js';

/** Distinct telemetry keys a device may have: each is a series of its own in SQLite. */
export const DEFAULT_MAX_KEYS_PER_DEVICE = 1000;
/** Distinct client attributes a device may report: each is a row of its own, all shown with the device. */
export const DEFAULT_MAX_ATTRIBUTES_PER_DEVICE = 1000;
/** Keys held in memory over all devices (about 50 bytes each); devices beyond are loaded again when they send. */
export const DEFAULT_MAX_CACHED_DEVICE_KEYS = 1_000_000;

/** Where the keys a device already has are read from (the series in SQLite). */
export interface KnownKeysSource {
  /** Up to `limit` of the device's keys. */
  keysOf(deviceId: string, limit: number): string[];
  hasKey(deviceId: string, key: string): boolean;
}

interface DeviceKeys {
  keys: Set<string>;
  /** The source held more keys than the cap (they came before it): not all of them are in `keys`. */
  partial: boolean;
}

/**
 * The cap on distinct keys per device — telemetry keys, or client attributes (one instance
 * each, told apart by `what`) — checked at ingest: a message that would add keys
 * beyond it is refused. Each device's known keys are loaded from the database on its first
 * message and kept in a bounded cache (devices loaded first leave first; a device that left is
 * loaded again when it next sends).
 *
 * The database lags ingest by the storage group's few milliseconds, so a device loaded while new
 * keys of it are still on the way may end up with that many keys past the cap — a bounded slack.
 */
export class DeviceTelemetryKeys {
  private readonly devices = new Map<string, DeviceKeys>();
  private cached = 0;

  constructor(
    private readonly source: KnownKeysSource,
    readonly maxKeysPerDevice = DEFAULT_MAX_KEYS_PER_DEVICE,
    private readonly maxCachedKeys = DEFAULT_MAX_CACHED_DEVICE_KEYS,
    /** What the keys are, for the refusal: "telemetry keys", "client attributes". */
    private readonly what = 'telemetry keys',
  ) {}

  /**
   * Undefined when the message's keys fit the device's cap (its new keys are then counted as
   * known), else the reason it does not.
   */
  admit(deviceId: string, entries: readonly TelemetryEntry[]): string | undefined {
    const device = this.devices.get(deviceId) ?? this.load(deviceId);
    // The common case — every key known — allocates nothing.
    let fresh: Set<string> | undefined;
    for (const entry of entries) {
      for (const key in entry.values) {
        if (device.keys.has(key) || fresh?.has(key)) continue;
        if (device.partial && this.source.hasKey(deviceId, key)) continue;
        (fresh ??= new Set()).add(key);
      }
    }
    if (fresh === undefined) return undefined;
    const known = device.partial ? Math.max(device.keys.size, this.maxKeysPerDevice) : device.keys.size;
    if (known + fresh.size > this.maxKeysPerDevice) {
      const names = [...fresh].slice(0, 3).map((k) => JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k)).join(', ');
      return `device already has ${known} ${this.what}; this message would add ${fresh.size} more (${names}${fresh.size > 3 ? ', …' : ''}), `
        + `beyond the limit of ${this.maxKeysPerDevice} distinct ${this.what} per device`;
    }
    for (const key of fresh) device.keys.add(key);
    this.cached += fresh.size;
    this.evictBeyondBudget(deviceId);
    return undefined;
  }

  /** Drops what is known of a device (it was deleted). */
  forget(deviceId: string): void {
    const device = this.devices.get(deviceId);
    if (!device) return;
    this.cached -= device.keys.size;
    this.devices.delete(deviceId);
  }

  private load(deviceId: string): DeviceKeys {
    const stored = this.source.keysOf(deviceId, this.maxKeysPerDevice + 1);
    const device: DeviceKeys = { keys: new Set(stored), partial: stored.length > this.maxKeysPerDevice };
    this.devices.set(deviceId, device);
    this.cached += device.keys.size;
    this.evictBeyondBudget(deviceId);
    return device;
  }

  private evictBeyondBudget(keep: string): void {
    if (this.cached <= this.maxCachedKeys) return;
    for (const [id, device] of this.devices) {
      if (id === keep) continue;
      this.devices.delete(id);
      this.cached -= device.keys.size;
      if (this.cached <= this.maxCachedKeys) return;
    }
  }
}
