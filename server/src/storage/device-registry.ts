import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import { conflict, notFound } from '../errors.js';
import type { Db } from './database.js';
import {
  dormantToken, newAccessToken, viewOf, type CredentialsType, type CredentialsView, type NewCredentials, type StoredCredentials,
} from './device-credentials.js';

export type Attributes = Record<string, unknown>;

export interface Device {
  id: string;
  name: string;
  type: string;
  /** The access token; meaningless (and never accepted) while credentialsType is another kind. */
  token: string;
  attributes: Attributes;
  createdAt: number;
  updatedAt: number;
  /** How the device authenticates; the registry always sets it (absent: access_token). */
  credentialsType?: CredentialsType;
  /** A gateway speaks for sub-devices on v1/gateway/* (absent: false). */
  isGateway?: boolean;
  /** For a sub-device: the gateway it was created by and that may speak for it. */
  gatewayId?: string;
}

export interface NewDevice {
  name: string;
  type?: string;
  attributes?: Attributes;
  gateway?: boolean;
}

export interface DevicePatch {
  name?: string;
  type?: string;
  /** Merged into the stored attributes (JSON merge patch): a null value removes the key. */
  attributes?: Record<string, unknown>;
  /** false on a gateway unlinks its sub-devices: they stay, as devices of their own. */
  gateway?: boolean;
}

/** The device an MQTT basic credential belongs to, and its password hash when it has one. */
export interface MqttBasicMatch {
  device: Device;
  passwordHash?: string;
}

interface DeviceRow {
  id: string; name: string; type: string; token: string; attributes: string; created_at: number; updated_at: number;
  is_gateway: number; gateway_id: string | null;
}

interface CredentialsRow {
  device_id: string; type: 'mqtt_basic' | 'x509'; client_id: string | null; username: string | null; password_hash: string | null;
  fingerprint: string | null; certificate: string | null;
}

const toCredentials = (r: CredentialsRow): StoredCredentials => (r.type === 'x509'
  ? { type: 'x509', fingerprint: r.fingerprint!, certificate: r.certificate! }
  : {
    type: 'mqtt_basic', ...(r.client_id !== null ? { clientId: r.client_id } : {}), ...(r.username !== null ? { username: r.username } : {}),
    ...(r.password_hash !== null ? { passwordHash: r.password_hash } : {}),
  });

/** The key of an MQTT basic credential in the look-up map: (client id or none, username or none). */
const basicKey = (clientId: string | undefined, username: string | undefined) => JSON.stringify([clientId ?? null, username ?? null]);

/**
 * The device registry. Credential look-ups happen on every device connection and HTTP post, so
 * devices are cached by id, name, token, certificate fingerprint and MQTT basic credential;
 * every change goes through here and keeps the caches true.
 * Emits `deleted` (device) so connections of a removed device can be closed, and `revoked`
 * (device id) when a device's credentials change or it is deleted: its live connections must
 * close at once, since what they authenticated with is no longer valid.
 */
export class DeviceRegistry extends EventEmitter<{ deleted: [Device]; revoked: [string] }> {
  private readonly byToken = new Map<string, Device>();
  private readonly byId = new Map<string, Device>();
  private readonly byName = new Map<string, Device>();
  private readonly credentials = new Map<string, StoredCredentials>();
  private readonly byFingerprint = new Map<string, string>();
  private readonly byBasic = new Map<string, string>();
  private readonly subDeviceIds = new Map<string, Set<string>>();
  private readonly statements;

  constructor(private readonly db: Db, private readonly clock: Clock) {
    super();
    this.statements = {
      insert: db.prepare(`INSERT INTO devices (id, name, type, token, attributes, created_at, updated_at, is_gateway, gateway_id)
        VALUES (@id, @name, @type, @token, @attributes, @createdAt, @updatedAt, @isGateway, @gatewayId)`),
      update: db.prepare('UPDATE devices SET name = @name, type = @type, attributes = @attributes, is_gateway = @isGateway, updated_at = @updatedAt WHERE id = @id'),
      setToken: db.prepare('UPDATE devices SET token = @token, updated_at = @updatedAt WHERE id = @id'),
      unlinkSubDevices: db.prepare('UPDATE devices SET gateway_id = NULL, updated_at = @updatedAt WHERE gateway_id = @id'),
      delete: db.prepare('DELETE FROM devices WHERE id = ?'),
      deletePoints: db.prepare('DELETE FROM ts_points WHERE series IN (SELECT id FROM ts_series WHERE device_id = ?)'),
      deleteSeries: db.prepare('DELETE FROM ts_series WHERE device_id = ?'),
      deleteLatest: db.prepare('DELETE FROM ts_latest WHERE device_id = ?'),
      all: db.prepare('SELECT * FROM devices ORDER BY created_at, name'),
      allCredentials: db.prepare('SELECT * FROM device_credentials'),
      // An upsert on the device alone: a clash with another device's credentials is an error, never a replacement of theirs.
      putCredentials: db.prepare(`INSERT INTO device_credentials (device_id, type, client_id, username, password_hash, fingerprint, certificate)
        VALUES (@deviceId, @type, @clientId, @username, @passwordHash, @fingerprint, @certificate)
        ON CONFLICT (device_id) DO UPDATE SET type = excluded.type, client_id = excluded.client_id, username = excluded.username,
          password_hash = excluded.password_hash, fingerprint = excluded.fingerprint, certificate = excluded.certificate`),
      deleteCredentials: db.prepare('DELETE FROM device_credentials WHERE device_id = ?'),
      nameTaken: db.prepare('SELECT id FROM devices WHERE name = ?'),
    };
    for (const row of this.statements.allCredentials.all() as CredentialsRow[]) this.rememberCredentials(row.device_id, toCredentials(row));
    for (const r of this.statements.all.all() as DeviceRow[]) {
      this.remember({
        id: r.id, name: r.name, type: r.type, token: r.token, attributes: JSON.parse(r.attributes) as Attributes, createdAt: r.created_at, updatedAt: r.updated_at,
        credentialsType: this.credentials.get(r.id)?.type ?? 'access_token', isGateway: r.is_gateway === 1, ...(r.gateway_id !== null ? { gatewayId: r.gateway_id } : {}),
      });
    }
  }

  /** A device on a new access token; a gateway with `gateway: true`. */
  create(input: NewDevice): Device {
    return this.insert(input, undefined);
  }

  /** A device created by its gateway on first sight, linked to it: only that gateway may speak for it. */
  createSubDevice(gatewayId: string, name: string, type: string): Device {
    const gateway = this.get(gatewayId);
    if (gateway.isGateway !== true) throw conflict(`device "${gateway.name}" is not a gateway`);
    return this.insert({ name, type }, gatewayId);
  }

  private insert(input: NewDevice, gatewayId: string | undefined): Device {
    this.assertNameFree(input.name);
    const now = this.clock.now();
    const device: Device = {
      id: randomUUID(), name: input.name, type: input.type ?? 'default', token: newAccessToken(),
      attributes: input.attributes ?? {}, createdAt: now, updatedAt: now, credentialsType: 'access_token', isGateway: input.gateway === true,
      ...(gatewayId !== undefined ? { gatewayId } : {}),
    };
    this.statements.insert.run({ ...device, attributes: JSON.stringify(device.attributes), isGateway: device.isGateway ? 1 : 0, gatewayId: gatewayId ?? null });
    this.remember(device);
    return device;
  }

  list(): Device[] {
    return [...this.byId.values()];
  }

  get(id: string): Device {
    const device = this.byId.get(id);
    if (!device) throw notFound(`no device with id "${id}"`);
    return device;
  }

  /** The device, or undefined when there is none (no error: for per-message look-ups). */
  find(id: string): Device | undefined {
    return this.byId.get(id);
  }

  findByName(name: string): Device | undefined {
    return this.byName.get(name);
  }

  exists(id: string): boolean {
    return this.byId.has(id);
  }

  /** The device on this access token; devices on other credentials are never found by their token. */
  findByToken(token: string): Device | undefined {
    return this.byToken.get(token);
  }

  /** The device whose X.509 certificate has this fingerprint (lower-case hex SHA-256 of its DER). */
  findByFingerprint(fingerprint: string): Device | undefined {
    const id = this.byFingerprint.get(fingerprint);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /**
   * The MQTT basic credential a CONNECT names, as ThingsBoard looks it up: the one with both this
   * client id and this username, else the one with this client id alone, else the one with this
   * username alone. Exact matches (case and all); the password is the caller's to check.
   */
  findMqttBasic(clientId: string | undefined, username: string | undefined): MqttBasicMatch | undefined {
    const keys: string[] = [];
    if (clientId && username !== undefined) keys.push(basicKey(clientId, username));
    if (clientId) keys.push(basicKey(clientId, undefined));
    if (username !== undefined) keys.push(basicKey(undefined, username));
    for (const key of keys) {
      const id = this.byBasic.get(key);
      const device = id === undefined ? undefined : this.byId.get(id);
      const stored = id === undefined ? undefined : this.credentials.get(id);
      if (device && stored?.type === 'mqtt_basic') return { device, ...(stored.passwordHash !== undefined ? { passwordHash: stored.passwordHash } : {}) };
    }
    return undefined;
  }

  /** The device's credentials as the API shows them. */
  credentialsOf(id: string): CredentialsView {
    const device = this.get(id);
    return viewOf(device.token, this.credentials.get(id));
  }

  /** The stored MQTT basic or X.509 credentials (undefined on an access token): for checks, never for answers. */
  storedCredentials(id: string): StoredCredentials | undefined {
    return this.credentials.get(id);
  }

  /**
   * Replaces the device's credentials. Tokens, MQTT basic (client id, username) pairs and
   * certificate fingerprints are unique over all devices, and a token may not be another device's
   * MQTT username (nor the reverse: one would hide the other): 409 otherwise. Emits `revoked`.
   */
  setCredentials(id: string, next: NewCredentials): CredentialsView {
    const device = this.get(id);
    this.assertCredentialsFree(id, next);
    const updatedAt = this.clock.now();
    const token = next.type === 'access_token' ? next.token : dormantToken(id);
    this.db.transaction(() => {
      this.statements.setToken.run({ id, token, updatedAt });
      if (next.type === 'access_token') this.statements.deleteCredentials.run(id);
      else {
        this.statements.putCredentials.run({
          deviceId: id, type: next.type,
          clientId: next.type === 'mqtt_basic' ? next.clientId ?? null : null,
          username: next.type === 'mqtt_basic' ? next.username ?? null : null,
          passwordHash: next.type === 'mqtt_basic' ? next.passwordHash ?? null : null,
          fingerprint: next.type === 'x509' ? next.fingerprint : null,
          certificate: next.type === 'x509' ? next.certificate : null,
        });
      }
    })();
    this.forget(device);
    this.forgetCredentials(id);
    if (next.type !== 'access_token') this.rememberCredentials(id, next);
    this.remember({ ...device, token, updatedAt, credentialsType: next.type });
    this.emit('revoked', id);
    return this.credentialsOf(id);
  }

  /** A new access token for a device on one (409 for other credentials); the old one stops working at once. */
  rotateToken(id: string): CredentialsView {
    const device = this.get(id);
    if (device.credentialsType !== 'access_token') throw conflict(`credentials: device "${device.name}" is on ${device.credentialsType} credentials, not an access token; PUT new credentials instead`);
    return this.setCredentials(id, { type: 'access_token', token: newAccessToken() });
  }

  update(id: string, patch: DevicePatch): Device {
    const current = this.get(id);
    if (patch.name !== undefined && patch.name !== current.name) this.assertNameFree(patch.name);
    if (patch.gateway === true && current.gatewayId !== undefined) {
      throw conflict(`gateway: device "${current.name}" is a sub-device of gateway ${current.gatewayId} and cannot be a gateway itself`);
    }
    const attributes = { ...current.attributes };
    for (const [k, v] of Object.entries(patch.attributes ?? {})) {
      if (v === null) delete attributes[k];
      else attributes[k] = v;
    }
    const updated: Device = {
      ...current, name: patch.name ?? current.name, type: patch.type ?? current.type, attributes, isGateway: patch.gateway ?? current.isGateway === true,
      updatedAt: this.clock.now(),
    };
    const unlink = current.isGateway === true && updated.isGateway === false;
    this.db.transaction(() => {
      this.statements.update.run({
        id, name: updated.name, type: updated.type, attributes: JSON.stringify(attributes), isGateway: updated.isGateway ? 1 : 0, updatedAt: updated.updatedAt,
      });
      if (unlink) this.statements.unlinkSubDevices.run({ id, updatedAt: updated.updatedAt });
    })();
    if (unlink) this.unlinkSubDevices(id, updated.updatedAt);
    this.forget(current);
    this.remember(updated);
    return updated;
  }

  /** The gateway's sub-devices, oldest first. */
  subDevices(gatewayId: string): Device[] {
    return [...this.subDeviceIds.get(gatewayId) ?? []].map((id) => this.byId.get(id)!)
      .sort((a, b) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : 1));
  }

  subDeviceCount(gatewayId: string): number {
    return this.subDeviceIds.get(gatewayId)?.size ?? 0;
  }

  /**
   * Removes the device, its telemetry, attributes and credentials; its credentials stop working
   * at once. A gateway's sub-devices stay, as devices of their own.
   */
  delete(id: string): void {
    const device = this.get(id);
    const now = this.clock.now();
    this.db.transaction(() => {
      this.statements.deletePoints.run(id);
      this.statements.deleteSeries.run(id);
      this.statements.deleteLatest.run(id);
      this.statements.unlinkSubDevices.run({ id, updatedAt: now });
      this.statements.delete.run(id); // device_credentials go with it (ON DELETE CASCADE)
    }).immediate(); // the write lock first: the storage worker writes beside this connection
    this.unlinkSubDevices(id, now);
    this.forget(device);
    this.forgetCredentials(id);
    this.emit('deleted', device);
    this.emit('revoked', id);
  }

  private unlinkSubDevices(gatewayId: string, updatedAt: number): void {
    for (const sub of this.subDevices(gatewayId)) {
      const { gatewayId: _gone, ...unlinked } = sub;
      this.forget(sub);
      this.remember({ ...unlinked, updatedAt });
    }
    this.subDeviceIds.delete(gatewayId);
  }

  private assertNameFree(name: string): void {
    if (this.byName.has(name) || this.statements.nameTaken.get(name)) throw conflict(`name: a device named "${name}" already exists`);
  }

  private assertCredentialsFree(id: string, next: NewCredentials): void {
    const others = (owner: string | undefined) => owner !== undefined && owner !== id;
    if (next.type === 'access_token') {
      if (others(this.byToken.get(next.token)?.id)) throw conflict('token: already the access token of another device');
      for (const [owner, stored] of this.credentials) {
        if (owner !== id && stored.type === 'mqtt_basic' && stored.username === next.token) throw conflict('token: already the MQTT username of another device');
      }
    } else if (next.type === 'mqtt_basic') {
      if (others(this.byBasic.get(basicKey(next.clientId, next.username)))) {
        throw conflict(`${next.clientId !== undefined && next.username !== undefined ? 'clientId, username' : next.clientId !== undefined ? 'clientId' : 'username'}: already the MQTT basic credentials of another device`);
      }
      if (next.username !== undefined && others(this.byToken.get(next.username)?.id)) throw conflict('username: already the access token of another device');
    } else if (others(this.byFingerprint.get(next.fingerprint))) {
      throw conflict('certificate: already the certificate of another device');
    }
  }

  private remember(device: Device): void {
    this.byId.set(device.id, device);
    this.byName.set(device.name, device);
    if (device.credentialsType === 'access_token') this.byToken.set(device.token, device);
    if (device.gatewayId !== undefined) {
      let subs = this.subDeviceIds.get(device.gatewayId);
      if (!subs) this.subDeviceIds.set(device.gatewayId, subs = new Set());
      subs.add(device.id);
    }
  }

  private rememberCredentials(id: string, stored: StoredCredentials): void {
    this.credentials.set(id, stored);
    if (stored.type === 'x509') this.byFingerprint.set(stored.fingerprint, id);
    else this.byBasic.set(basicKey(stored.clientId, stored.username), id);
  }

  /** Drops the device's cache entries but its credentials; remember() puts back what stays. */
  private forget(device: Device): void {
    this.byId.delete(device.id);
    this.byName.delete(device.name);
    if (this.byToken.get(device.token)?.id === device.id) this.byToken.delete(device.token);
    if (device.gatewayId !== undefined) this.subDeviceIds.get(device.gatewayId)?.delete(device.id);
  }

  private forgetCredentials(id: string): void {
    const stored = this.credentials.get(id);
    if (stored?.type === 'x509') this.byFingerprint.delete(stored.fingerprint);
    else if (stored) this.byBasic.delete(basicKey(stored.clientId, stored.username));
    this.credentials.delete(id);
  }
}
