import type { Clock } from '../clock.js';
import type { Metrics } from '../metrics.js';
import type { Device, DeviceRegistry } from '../storage/device-registry.js';
import type { DevicePublish, GatewayTopics, PublishOutcome } from './device-connect.js';
import {
  gatewayTopicOf, namesOf, nestsDeeperThan, parseGatewayMessage, type GatewayMessage, type GatewayTopic,
} from './gateway-payloads.js';
import type { Ingest, MessageRejectionCategory } from './ingest.js';

/** Sub-devices one gateway may have: it creates them by naming them, so this bounds what it can make. */
export const DEFAULT_MAX_SUB_DEVICES_PER_GATEWAY = 1000;
/** Devices one telemetry, attributes or claim message may name. */
export const DEFAULT_MAX_DEVICES_PER_GATEWAY_MESSAGE = 100;

export interface GatewayOptions {
  maxSubDevicesPerGateway?: number;
  maxDevicesPerMessage?: number;
}

const ACCEPTED: PublishOutcome = Object.freeze({ accepted: true });

/** Where a sub-device is online: the gateway and its connection that announced it. */
interface Presence {
  gatewayId: string;
  connectionId: number;
  since: number;
}

/**
 * ThingsBoard's gateway API (v1/gateway/*) for devices marked as gateways. A message is taken in
 * three steps:
 *  1. its envelope (gateway-payloads.ts), then whether the gateway may speak for every device it
 *     names (its own sub-devices, or names no device has yet), then whether the new ones fit its
 *     bound of sub-devices: a message failing any of these is rejected whole, once, under the
 *     gateway's id, and nothing of it is taken — a gateway naming a device not its own is
 *     misconfigured or hostile, and none of what it says in that message is trusted;
 *  2. names no device has are created as its sub-devices (type from connect, else "default");
 *  3. each sub-device's telemetry or attributes go through ingest as a direct device's do, keyed
 *     by the sub-device. Each part stands alone, as in ThingsBoard: the valid ones are appended,
 *     an invalid one is rejected (listed under its sub-device), and the message is answered with
 *     the first rejection — one faulty sensor does not hold back the gateway's others, and a
 *     rejection is not retried, so nothing is appended twice.
 * An append that fails (disk full) fails the whole message: the transport sends no ack and the
 * gateway sends it again (parts appended before the failure are then in the log twice).
 *
 * Sub-devices are online from a connect (or any message naming them, as in ThingsBoard) until a
 * disconnect or the close of the gateway connection that announced them; in memory only.
 */
export class GatewayApi implements GatewayTopics {
  private readonly presence = new Map<string, Presence>();
  private readonly byConnection = new Map<number, Set<string>>();
  private readonly maxSubDevices: number;
  private readonly maxDevicesPerMessage: number;

  constructor(
    private readonly registry: DeviceRegistry,
    private readonly ingest: Ingest,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    options: GatewayOptions = {},
  ) {
    this.maxSubDevices = options.maxSubDevicesPerGateway ?? DEFAULT_MAX_SUB_DEVICES_PER_GATEWAY;
    this.maxDevicesPerMessage = options.maxDevicesPerMessage ?? DEFAULT_MAX_DEVICES_PER_GATEWAY_MESSAGE;
  }

  async publish(m: DevicePublish): Promise<PublishOutcome> {
    const topic = gatewayTopicOf(m.topic);
    const outcome = await this.take(m, topic);
    this.metrics.gatewayMessages.inc({ topic: topic?.replace('/', '_') ?? 'other', outcome: outcome.accepted ? 'accepted' : 'rejected' });
    return outcome;
  }

  private async take(m: DevicePublish, topic: GatewayTopic | undefined): Promise<PublishOutcome> {
    const gateway = m.device;
    const now = this.clock.now();
    const reject = (category: MessageRejectionCategory, reason: string) => this.ingest.rejectMessage('mqtt', m.topic, gateway.id, now, category, reason);
    if (topic === undefined) return reject('unknown_topic', `unknown gateway topic "${m.topic}"`);
    if (this.registry.find(gateway.id)?.isGateway !== true) return reject('not_authorized', `device "${gateway.name}" is not a gateway`);
    const { maxPayloadBytes, payloadLimits } = this.ingest.limits();
    if (m.payload.length > maxPayloadBytes) return reject('too_large', `payload of ${m.payload.length} bytes exceeds the ${maxPayloadBytes}-byte limit`);
    let json: unknown;
    try {
      json = JSON.parse(m.payload.toString('utf8'));
    } catch (err) {
      return reject('not_json', `payload is not valid JSON: ${(err as Error).message}`);
    }
    const message = parseGatewayMessage(topic, json, this.maxDevicesPerMessage);
    if ('reason' in message) return reject('bad_shape', message.reason);

    // Whom it speaks for: its own sub-devices, or names to create.
    const names = namesOf(message);
    const fresh: string[] = [];
    const devices = new Map<string, Device>();
    for (const name of names) {
      const device = this.registry.findByName(name);
      if (!device) {
        fresh.push(name);
        continue;
      }
      if (device.gatewayId === gateway.id) {
        devices.set(name, device);
        continue;
      }
      const what = device.id === gateway.id ? 'is this gateway itself'
        : device.isGateway === true ? 'is a gateway'
          : device.gatewayId !== undefined ? 'is a sub-device of another gateway' : 'is a device of its own, not a sub-device of this gateway';
      return reject('not_authorized', `gateway "${gateway.name}" may not speak for device "${name}": it ${what}`);
    }
    if (message.topic === 'disconnect') {
      const device = devices.get(message.device);
      if (device) this.goOffline(device.id, gateway.id);
      return ACCEPTED;
    }
    if (fresh.length > 0) {
      const have = this.registry.subDeviceCount(gateway.id);
      if (have + fresh.length > this.maxSubDevices) {
        return reject('too_many_devices', `gateway "${gateway.name}" has ${have} sub-devices; the ${fresh.length} new in this message would pass its limit of ${this.maxSubDevices}`);
      }
      const type = message.topic === 'connect' ? message.type ?? 'default' : 'default';
      for (const name of fresh) {
        devices.set(name, this.registry.createSubDevice(gateway.id, name, type));
        this.metrics.gatewaySubDevicesCreated.inc();
      }
    }
    for (const device of devices.values()) this.goOnline(device.id, gateway.id, m.connectionId, now);
    if (message.topic === 'telemetry' || message.topic === 'attributes') return this.appendParts(message, devices, m.topic, payloadLimits.maxDepth);
    // connect, attributes/request, rpc and claim: checked and taken; answering requests and RPC
    // replies is the device-control work (issue 20), and claims are not acted on yet.
    return ACCEPTED;
  }

  private async appendParts(message: Extract<GatewayMessage, { parts: unknown }>, devices: Map<string, Device>, topic: string, maxDepth: number): Promise<PublishOutcome> {
    const kind = message.topic === 'attributes' ? 'attributes' : 'telemetry';
    const outcomes = await Promise.all(message.parts.map(([name, value]) => {
      const device = devices.get(name)!;
      // Checked before serialising: a part nested thousands of levels deep must not reach JSON.stringify.
      if (nestsDeeperThan(value, maxDepth)) {
        return this.ingest.reject('mqtt', topic, device.id, this.clock.now(), 'too_complex',
          `the ${kind} of "${name}" nests objects and arrays more than ${maxDepth} levels deep`);
      }
      return this.ingest.accept(device, kind, Buffer.from(JSON.stringify(value)), 'mqtt', topic);
    }));
    const index = outcomes.findIndex((o) => !o.accepted);
    if (index === -1) return ACCEPTED;
    const first = outcomes[index] as Extract<PublishOutcome, { accepted: false }>;
    const rejected = outcomes.filter((o) => !o.accepted).length;
    const others = outcomes.length - rejected;
    return {
      accepted: false, category: first.category,
      reason: `device "${message.parts[index]![0]}": ${first.reason}${rejected > 1 ? ` (${rejected - 1} more device${rejected > 2 ? 's' : ''} rejected)` : ''}`
        + (others > 0 ? `; ${others > 1 ? `the other ${others} devices'` : "the other device's"} ${kind} ${kind === 'telemetry' ? 'was' : 'were'} appended` : ''),
    };
  }

  /** Its sub-devices announced on this connection go offline; those announced again on a newer one since are no longer in its set. */
  connectionClosed(_gateway: Device, connectionId: number): void {
    for (const id of this.byConnection.get(connectionId) ?? []) this.presence.delete(id);
    this.byConnection.delete(connectionId);
  }

  /** Whether the sub-device is online through its gateway. */
  isOnline(deviceId: string): boolean {
    const p = this.presence.get(deviceId);
    return p !== undefined && this.registry.find(deviceId)?.gatewayId === p.gatewayId;
  }

  /** Since when the sub-device is online, undefined when it is not. */
  onlineSince(deviceId: string): number | undefined {
    return this.isOnline(deviceId) ? this.presence.get(deviceId)!.since : undefined;
  }

  /** The ids of the gateway's sub-devices that are online. */
  connectedSubDevices(gatewayId: string): string[] {
    return this.registry.subDevices(gatewayId).filter((d) => this.presence.get(d.id)?.gatewayId === gatewayId).map((d) => d.id);
  }

  private goOnline(deviceId: string, gatewayId: string, connectionId: number, now: number): void {
    const p = this.presence.get(deviceId);
    if (p?.connectionId === connectionId) return;
    if (p) this.byConnection.get(p.connectionId)?.delete(deviceId);
    this.presence.set(deviceId, { gatewayId, connectionId, since: now });
    let ids = this.byConnection.get(connectionId);
    if (!ids) this.byConnection.set(connectionId, ids = new Set());
    ids.add(deviceId);
  }

  private goOffline(deviceId: string, gatewayId: string): void {
    const p = this.presence.get(deviceId);
    if (!p || p.gatewayId !== gatewayId) return;
    this.presence.delete(deviceId);
    this.byConnection.get(p.connectionId)?.delete(deviceId);
  }
}
