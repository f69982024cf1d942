/**
 * Guards a connection's byte stream before any MQTT parser sees it: reads each packet's fixed
 * header (MQTT 3.1.1 §2.2 — a type byte, then the "remaining length" in 1–4 bytes) as the bytes
 * arrive and closes the connection as soon as a header declares more than allowed, instead of
 * letting a parser buffer the packet whole first. Packet bodies are skipped by count, never
 * copied or looked at, so the cost is a few operations per packet. Each connection
 * (mqtt/connection.ts) scans every chunk with it before its parser sees the chunk, and closes
 * on a refusal: MQTT 3.1.1 has no packet to say "too large" — a CONNECT no return code applies to
 * is closed without a CONNACK [MQTT-3.2.2-6], a later packet closes the connection; MQTT 5 says
 * DISCONNECT 0x95 (packet too large) first.
 */

/** The largest remaining length 4 bytes can carry (MQTT 3.1.1 §2.2.3): 268,435,455. */
export const MAX_REMAINING_LENGTH = 268_435_455;
/** What a CONNECT may declare before the device is known (client id, will, token, password). */
export const DEFAULT_MAX_CONNECT_BYTES = 64 * 1024;
/** Time from accept until the whole CONNECT has arrived. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Room above --max-payload-bytes for the rest of a PUBLISH (topic, packet id, MQTT 5 properties)
 * and for other packets: a payload a little over the limit still arrives, is rejected as
 * `too_large` and acknowledged, so the device's developer finds it in GET /api/rejected.
 */
export const DEFAULT_PACKET_HEADROOM_BYTES = 4096;

/** Why the guard closed a connection. */
export type FrameRefusal =
  | 'connect_timeout' //   the CONNECT did not arrive in time
  | 'not_connect_first' // [MQTT-3.1.0-1] the first packet must be CONNECT
  | 'connect_too_large' // the CONNECT declares more than maxConnectBytes
  | 'malformed_length' //  [MQTT-2.2.3] a remaining length of more than 4 bytes
  | 'packet_too_large'; // a later packet declares more than maxPacketBytes

const CONNECT = 1;

/**
 * The state machine: feed it every chunk in order; it answers a refusal the moment a header
 * breaks a limit, else undefined. It keeps only counters across chunks, so a header or a body
 * may be split anywhere.
 */
export class FixedHeaderScanner {
  /** Body bytes of the current packet still to pass. */
  private skip = 0;
  /** -1: the next byte starts a packet; 0..3: remaining-length bytes read so far. */
  private lengthBytes = -1;
  private length = 0;
  private multiplier = 1;
  private connectSeen = false;
  /** True once the first packet, the CONNECT, has arrived whole. */
  connectArrived = false;

  constructor(private readonly maxConnectBytes: number, private readonly maxPacketBytes: number) {}

  scan(chunk: Uint8Array): FrameRefusal | undefined {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const left = n - i;
        if (this.skip > left) {
          this.skip -= left;
          return undefined;
        }
        i += this.skip;
        this.skip = 0;
        if (!this.connectArrived) this.connectArrived = true; // the first body to end is the CONNECT's
        continue;
      }
      const byte = chunk[i++]!;
      if (this.lengthBytes < 0) {
        // [MQTT-3.1.0-1] The first packet from the client MUST be a CONNECT.
        if (!this.connectSeen && byte >> 4 !== CONNECT) return 'not_connect_first';
        this.lengthBytes = 0;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      if (byte & 0x80) {
        // [MQTT-2.2.3] At most four bytes: a fourth with the continuation bit set is malformed.
        if (++this.lengthBytes === 4) return 'malformed_length';
        this.multiplier *= 128;
        continue;
      }
      // The header is complete: check what it declares before a byte of the body is taken.
      this.lengthBytes = -1;
      if (!this.connectSeen) {
        if (this.length > this.maxConnectBytes) return 'connect_too_large';
        this.connectSeen = true;
        if (this.length === 0) this.connectArrived = true;
      } else if (this.length > this.maxPacketBytes) {
        return 'packet_too_large';
      }
      this.skip = this.length;
    }
    return undefined;
  }
}
