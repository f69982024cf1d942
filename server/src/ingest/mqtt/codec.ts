import type { EventEmitter } from 'node:events';
import mqttPacket from 'mqtt-packet';
import { RC } from './reason-codes.js';

/**
 * The device transport's codec: mqtt-packet's parser (one per connection; MQTT 3.1, 3.1.1 and 5
 * by the CONNECT's protocol level) with a strict reader of MQTT 5 properties in place of its own,
 * mqtt-packet's generator for the packets that carry properties, and hand-made bytes for the
 * acknowledgements sent per message.
 *
 * mqtt-packet reads properties leniently: a duplicate turns the value into an array (a CONNECT
 * with Session Expiry Interval twice crashed aedes 2 on that array), a 0/1 byte comes back as
 * any truthy value, a property of the wrong packet is kept, and a value may be read past the end
 * of the property block. The reader here refuses each of those with the reason code MQTT 5 gives
 * it: 0x81 malformed packet (unknown identifier, a value that runs past the block or the packet)
 * or 0x82 protocol error (a duplicate, a property that packet may not carry, a value out of range)
 * [MQTT-2.2.2-2], and otherwise yields the same shapes mqtt-packet does.
 */

/** What an error of the parser carries: the MQTT 5 reason code for it. */
export type ParseError = Error & { reasonCode?: number };

/** The parser's fields and steps this module uses (mqtt-packet 9's parser.js). */
interface InternalParser extends EventEmitter {
  packet: { cmd: string; length: number; clientId?: string; protocolVersion?: number };
  _list: {
    length: number;
    readUInt8(offset: number): number;
    readUInt16BE(offset: number): number;
    readUInt32BE(offset: number): number;
    toString(encoding: 'utf8', start: number, end: number): string;
    slice(start: number, end: number): Buffer;
  };
  _pos: number;
  _emitError(err: Error): void;
  _parseProperties(): Record<string, unknown> | false;
  parse(buf: Buffer): number;
  parser(options?: object): InternalParser;
}

export interface PacketParser extends EventEmitter {
  parse(buf: Buffer): number;
  /** The packet being parsed (its protocol version is known once a CONNECT's header is read). */
  readonly packet: { cmd: string; protocolVersion?: number };
}

type PropertyType = 'bool' | 'byte' | 'int16' | 'int32' | 'var' | 'string' | 'binary' | 'pair';

/** MQTT 5 §2.2.2.2: identifier → name (as mqtt-packet names it) and type. */
const PROPERTIES: Record<number, [string, PropertyType]> = {
  0x01: ['payloadFormatIndicator', 'bool'],
  0x02: ['messageExpiryInterval', 'int32'],
  0x03: ['contentType', 'string'],
  0x08: ['responseTopic', 'string'],
  0x09: ['correlationData', 'binary'],
  0x0b: ['subscriptionIdentifier', 'var'],
  0x11: ['sessionExpiryInterval', 'int32'],
  0x12: ['assignedClientIdentifier', 'string'],
  0x13: ['serverKeepAlive', 'int16'],
  0x15: ['authenticationMethod', 'string'],
  0x16: ['authenticationData', 'binary'],
  0x17: ['requestProblemInformation', 'bool'],
  0x18: ['willDelayInterval', 'int32'],
  0x19: ['requestResponseInformation', 'bool'],
  0x1a: ['responseInformation', 'string'],
  0x1c: ['serverReference', 'string'],
  0x1f: ['reasonString', 'string'],
  0x21: ['receiveMaximum', 'int16'],
  0x22: ['topicAliasMaximum', 'int16'],
  0x23: ['topicAlias', 'int16'],
  0x24: ['maximumQoS', 'byte'],
  0x25: ['retainAvailable', 'bool'],
  0x26: ['userProperties', 'pair'],
  0x27: ['maximumPacketSize', 'int32'],
  0x28: ['wildcardSubscriptionAvailable', 'bool'],
  0x29: ['subscriptionIdentifiersAvailable', 'bool'],
  0x2a: ['sharedSubscriptionAvailable', 'bool'],
};

const USER_PROPERTY = 0x26;
const acks = [0x1f, USER_PROPERTY];
/** Which properties a packet from a client may carry (MQTT 5 table 2-4); 'will' is the CONNECT's will properties. */
const ALLOWED_FROM_CLIENT: Record<string, ReadonlySet<number>> = {
  connect: new Set([0x11, 0x21, 0x27, 0x22, 0x19, 0x17, USER_PROPERTY, 0x15, 0x16]),
  will: new Set([0x18, 0x01, 0x02, 0x03, 0x08, 0x09, USER_PROPERTY]),
  // Subscription Identifier only ever goes from the server to a client [MQTT-3.3.4-6].
  publish: new Set([0x01, 0x02, 0x23, 0x08, 0x09, USER_PROPERTY, 0x03]),
  puback: new Set(acks),
  pubrec: new Set(acks),
  pubrel: new Set(acks),
  pubcomp: new Set(acks),
  subscribe: new Set([0x0b, USER_PROPERTY]),
  unsubscribe: new Set([USER_PROPERTY]),
  disconnect: new Set([0x11, 0x1f, USER_PROPERTY, 0x1c]),
  auth: new Set([0x15, 0x16, 0x1f, USER_PROPERTY]),
};

const fail = (parser: InternalParser, reasonCode: number, message: string): false => {
  parser._emitError(Object.assign(new Error(message), { reasonCode }));
  return false;
};

/** A variable byte integer at parser._pos, not past `end`; undefined if it is not one. */
function readVarInt(parser: InternalParser, end: number): number | undefined {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (parser._pos >= end) return undefined;
    const byte = parser._list.readUInt8(parser._pos++);
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return value;
    multiplier *= 128;
  }
  return undefined;
}

/** Reads the properties at parser._pos strictly (replaces mqtt-packet's _parseProperties; `this` is the parser). */
function parseStrictProperties(this: InternalParser): Record<string, unknown> | false {
  const packet = this.packet;
  const list = this._list;
  const packetEnd = Math.min(packet.length, list.length);
  // Acks and DISCONNECT may end before their properties (MQTT 5 §3.4.2.2.1, §3.14.2.2.1).
  if (this._pos >= packetEnd) return {};
  const length = readVarInt(this, packetEnd);
  if (length === undefined) return fail(this, RC.MALFORMED_PACKET, 'malformed property length');
  const end = this._pos + length;
  if (end > packetEnd) return fail(this, RC.MALFORMED_PACKET, 'the properties run past the end of the packet');
  // The CONNECT's second property block, after the client id, is its will's.
  const kind = packet.cmd === 'connect' && packet.clientId !== undefined ? 'will' : packet.cmd;
  const allowed = ALLOWED_FROM_CLIENT[kind];
  const result: Record<string, unknown> = {};
  while (this._pos < end) {
    const id = readVarInt(this, end);
    const property = id === undefined ? undefined : PROPERTIES[id];
    if (id === undefined || !property) return fail(this, RC.MALFORMED_PACKET, `unknown property identifier ${id ?? '(malformed)'}`);
    const [name, type] = property;
    if (allowed && !allowed.has(id)) return fail(this, RC.PROTOCOL_ERROR, `${name} is not a property of ${kind === 'will' ? 'a will' : `a ${kind.toUpperCase()}`}`);
    if (id !== USER_PROPERTY && Object.hasOwn(result, name)) return fail(this, RC.PROTOCOL_ERROR, `${name} more than once`);
    const left = end - this._pos;
    let value: unknown;
    switch (type) {
      case 'bool':
      case 'byte': {
        if (left < 1) return fail(this, RC.MALFORMED_PACKET, `${name} cut short`);
        const byte = list.readUInt8(this._pos++);
        if (type === 'bool' && byte > 1) return fail(this, RC.PROTOCOL_ERROR, `${name} must be 0 or 1, not ${byte}`);
        value = type === 'bool' ? byte === 1 : byte;
        break;
      }
      case 'int16':
        if (left < 2) return fail(this, RC.MALFORMED_PACKET, `${name} cut short`);
        value = list.readUInt16BE(this._pos);
        this._pos += 2;
        break;
      case 'int32':
        if (left < 4) return fail(this, RC.MALFORMED_PACKET, `${name} cut short`);
        value = list.readUInt32BE(this._pos);
        this._pos += 4;
        break;
      case 'var':
        value = readVarInt(this, end);
        if (value === undefined) return fail(this, RC.MALFORMED_PACKET, `${name} is not a variable byte integer`);
        break;
      case 'string':
      case 'binary': {
        const bytes = readLengthPrefixed(this, end);
        if (bytes === undefined) return fail(this, RC.MALFORMED_PACKET, `${name} runs past the properties`);
        value = type === 'string' ? list.toString('utf8', bytes[0], bytes[1]) : list.slice(bytes[0], bytes[1]);
        break;
      }
      case 'pair': {
        const key = readLengthPrefixed(this, end);
        const val = key && readLengthPrefixed(this, end);
        if (!key || !val) return fail(this, RC.MALFORMED_PACKET, 'a user property runs past the properties');
        const pairs = (result.userProperties ??= Object.create(null)) as Record<string, string | string[]>;
        const k = list.toString('utf8', key[0], key[1]);
        const v = list.toString('utf8', val[0], val[1]);
        const had = pairs[k];
        pairs[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
        continue;
      }
    }
    if ((name === 'receiveMaximum' || name === 'maximumPacketSize' || name === 'subscriptionIdentifier') && value === 0) {
      return fail(this, RC.PROTOCOL_ERROR, `${name} of 0`);
    }
    result[name] = value;
  }
  return result;
}

/** [start, end) of a 2-byte-length-prefixed string or binary at parser._pos, not past `end`. */
function readLengthPrefixed(parser: InternalParser, end: number): [number, number] | undefined {
  if (end - parser._pos < 2) return undefined;
  const length = parser._list.readUInt16BE(parser._pos);
  const start = parser._pos + 2;
  if (start + length > end) return undefined;
  parser._pos = start + length;
  return [start, start + length];
}

/** A parser for one connection: mqtt-packet's, with the strict property reader. */
export function createParser(): PacketParser {
  const parser = mqttPacket.parser() as unknown as InternalParser;
  parser._parseProperties = parseStrictProperties;
  return parser as unknown as PacketParser;
}

/** The reason code for an error of the parser: its own, or what mqtt-packet's messages mean. */
export function reasonCodeOf(err: ParseError): number {
  if (err.reasonCode !== undefined) return err.reasonCode;
  if (/protocol version|protocolId/i.test(err.message)) return RC.UNSUPPORTED_PROTOCOL_VERSION;
  return RC.MALFORMED_PACKET;
}

// ── generating ───────────────────────────────────────────────────────────────────────────────

export type ProtocolVersion = 3 | 4 | 5;

const generateOptions: Record<ProtocolVersion, { protocolVersion: number }> = {
  3: { protocolVersion: 3 }, 4: { protocolVersion: 4 }, 5: { protocolVersion: 5 },
};

/** Any packet, by mqtt-packet's generator. */
export function encode(packet: object, version: ProtocolVersion): Buffer {
  return mqttPacket.generate(packet as mqttPacket.Packet, generateOptions[version]);
}

/**
 * An MQTT 5 packet with a reason code and, when the client wants problem information, a reason
 * string — left out if the packet would then be larger than the client's Maximum Packet Size
 * [MQTT-3.1.2-25].
 */
export function encodeWithReason(packet: { cmd: string; reasonCode: number; [field: string]: unknown }, reason: string | undefined, maximumPacketSize: number): Buffer {
  if (reason !== undefined) {
    const withReason = encode({ ...packet, properties: { reasonString: reason } }, 5);
    if (withReason.length <= maximumPacketSize) return withReason;
  }
  return encode(packet, 5);
}

/** PUBACK (0x40), PUBREC (0x50), PUBCOMP (0x70) with success: four bytes, in every version. */
export const PUBACK = 0x40;
export const PUBREC = 0x50;
export const PUBREL = 0x62;
export const PUBCOMP = 0x70;
export const PINGRESP = Buffer.from([0xd0, 0x00]);

/** The total size of a packet with `remaining` bytes after its fixed header. */
export function packetSize(remaining: number): number {
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining;
}

/** MQTT 3.1.1 CONNACK (also what a client of unknown version is answered with). */
export function connackV3(returnCode: number, sessionPresent = false): Buffer {
  return Buffer.from([0x20, 0x02, sessionPresent ? 1 : 0, returnCode]);
}
