import fs from 'node:fs';
import type { Duplex } from 'node:stream';

/**
 * Admission at accept: bounds MQTT connections in total and per remote address, so that idle
 * or hostile connections cannot take every file descriptor of the process (and with them the
 * HTTP API, the log's segment files and SQLite). Counted from accept to close, CONNECT or not.
 */

/** Per remote address (an IPv6 client: per /64, what one subscriber is usually given). NAT gateways put many devices behind one. */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1000;
/** Used when the descriptor limit cannot be read (not Linux). */
export const FALLBACK_MAX_CONNECTIONS = 10_000;
/** Never more by default, whatever the descriptor limit: ~75 KB each (BENCHMARKS.md) makes 3.75 GB. */
export const MAX_DEFAULT_CONNECTIONS = 50_000;
/** Share of the descriptor limit left to everything else (HTTP clients, log segments and indexes, SQLite, workers). */
const DESCRIPTOR_HEADROOM = 0.25;
const MIN_DESCRIPTOR_HEADROOM = 256;

/** CONNACK with return code 3, server unavailable (MQTT 3.1.1 §3.2.2.3). */
const CONNACK_SERVER_UNAVAILABLE = Buffer.from([0x20, 0x02, 0x00, 0x03]);
/** At most this long for a refused connection's CONNACK to leave before it is destroyed anyway. */
const REFUSED_LINGER_MS = 1000;

export type AdmissionRefusal = 'max_connections' | 'max_connections_per_address';

/** The soft RLIMIT_NOFILE of this process (`ulimit -n`), from /proc; undefined where there is none. */
export function openFilesSoftLimit(limitsFile = '/proc/self/limits'): number | undefined {
  try {
    const line = fs.readFileSync(limitsFile, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Infinity;
    const n = Number(soft);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The default total for a descriptor limit (openFilesSoftLimit()): the limit less a quarter of
 * it (at least 256) for everything else, at most MAX_DEFAULT_CONNECTIONS: 15,000 with
 * `ulimit -n` 20000, 768 with 1024.
 */
export function defaultMaxConnections(descriptorLimit: number | undefined): number {
  if (descriptorLimit === undefined) return FALLBACK_MAX_CONNECTIONS;
  const headroom = Math.max(MIN_DESCRIPTOR_HEADROOM, Math.ceil(descriptorLimit * DESCRIPTOR_HEADROOM));
  return Math.max(1, Math.min(MAX_DEFAULT_CONNECTIONS, descriptorLimit - headroom));
}

/** The key one remote address counts under: IPv4 as is (also IPv4-mapped IPv6), IPv6 by its /64. */
export function addressKey(remoteAddress: string | undefined): string {
  if (!remoteAddress) return 'unknown';
  let address = remoteAddress;
  const zone = address.indexOf('%');
  if (zone >= 0) address = address.slice(0, zone);
  if (!address.includes(':')) return address;
  if (address.includes('.')) return address.slice(address.lastIndexOf(':') + 1); // ::ffff:192.0.2.1
  const [head = '', tail] = address.split('::');
  const front = head ? head.split(':') : [];
  const back = tail ? tail.split(':') : [];
  const groups = tail === undefined ? front : [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export class ConnectionAdmission {
  private readonly perAddress = new Map<string, number>();
  private readonly open = new Set<Duplex>();

  constructor(private readonly maxConnections: number, private readonly maxPerAddress: number) {}

  /**
   * Admits `socket` (a TCP or TLS socket, a WebSocket's stream) from `remoteAddress` and counts
   * it until it closes, or refuses it: writes CONNACK 3 (server unavailable), which a client of
   * any version reads as the answer to its CONNECT, and closes at once — the descriptor is given
   * back without waiting for the CONNECT.
   */
  admit(socket: Duplex, remoteAddress: string | undefined): AdmissionRefusal | undefined {
    const key = addressKey(remoteAddress);
    const fromAddress = this.perAddress.get(key) ?? 0;
    const refusal: AdmissionRefusal | undefined = this.open.size >= this.maxConnections ? 'max_connections'
      : fromAddress >= this.maxPerAddress ? 'max_connections_per_address' : undefined;
    if (refusal) {
      socket.on('error', () => {});
      socket.end(CONNACK_SERVER_UNAVAILABLE, () => socket.destroy());
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref(); // a peer that never takes the 4 bytes

      return refusal;
    }
    this.open.add(socket);
    this.perAddress.set(key, fromAddress + 1);
    socket.once('close', () => {
      this.open.delete(socket);
      const left = (this.perAddress.get(key) ?? 1) - 1;
      if (left > 0) this.perAddress.set(key, left);
      else this.perAddress.delete(key);
    });
    return undefined;
  }

  /** Connections open now. */
  get size(): number {
    return this.open.size;
  }

  /** Closes every admitted connection (on stop: those that never sent a CONNECT are not the broker's clients). */
  destroyAll(): void {
    for (const socket of this.open) socket.destroy();
  }
}
