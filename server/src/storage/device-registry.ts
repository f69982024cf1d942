import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import { conflict, notFound } from '../errors.js';
import type { Db } from './database.js';

export type Attributes = Record<string, unknown>;

export interface Device {
  id: string;
  name: string;
  type: string;
  token: string;
  attributes: Attributes;
  createdAt: number;
  updatedAt: number;
}

export interface NewDevice {
  name: string;
  type?: string;
  attributes?: Attributes;
}

export interface DevicePatch {
  name?: string;
  type?: string;
  /** Merged into the stored attributes (JSON merge patch): a null value removes the key. */
  attributes?: Record<string, unknown>;
}

interface DeviceRow {
  id: string; name: string; type: string; token: string; attributes: string; created_at: number; updated_at: number;
}

const toDevice = (r: DeviceRow): Device => ({
  id: r.id, name: r.name, type: r.type, token: r.token, attributes: JSON.parse(r.attributes) as Attributes,
  createdAt: r.created_at, updatedAt: r.updated_at,
});

/** Access tokens: 20 random URL-safe characters (120 bits). */
const newToken = () => randomBytes(15).toString('base64url');

/**
 * The device registry. Token look-ups happen on every device connection and HTTP post, so
 * devices are cached by token and by id; every change goes through here and keeps the cache true.
 * Emits `deleted` (device) so connections of a removed device can be closed.
 */
export class DeviceRegistry extends EventEmitter<{ deleted: [Device] }> {
  private readonly byToken = new Map<string, Device>();
  private readonly byId = new Map<string, Device>();
  private readonly statements;

  constructor(private readonly db: Db, private readonly clock: Clock) {
    super();
    this.statements = {
      insert: db.prepare('INSERT INTO devices (id, name, type, token, attributes, created_at, updated_at) VALUES (@id, @name, @type, @token, @attributes, @createdAt, @updatedAt)'),
      update: db.prepare('UPDATE devices SET name = @name, type = @type, attributes = @attributes, updated_at = @updatedAt WHERE id = @id'),
      delete: db.prepare('DELETE FROM devices WHERE id = ?'),
      deletePoints: db.prepare('DELETE FROM ts_points WHERE series IN (SELECT id FROM ts_series WHERE device_id = ?)'),
      deleteSeries: db.prepare('DELETE FROM ts_series WHERE device_id = ?'),
      deleteLatest: db.prepare('DELETE FROM ts_latest WHERE device_id = ?'),
      all: db.prepare('SELECT * FROM devices ORDER BY created_at, name'),
      nameTaken: db.prepare('SELECT id FROM devices WHERE name = ?'),
    };
    for (const row of this.statements.all.all() as DeviceRow[]) this.remember(toDevice(row));
  }

  create(input: NewDevice): Device {
    this.assertNameFree(input.name);
    const now = this.clock.now();
    const device: Device = {
      id: randomUUID(), name: input.name, type: input.type ?? 'default', token: newToken(),
      attributes: input.attributes ?? {}, createdAt: now, updatedAt: now,
    };
    this.statements.insert.run({ ...device, attributes: JSON.stringify(device.attributes) });
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

  exists(id: string): boolean {
    return this.byId.has(id);
  }

  findByToken(token: string): Device | undefined {
    return this.byToken.get(token);
  }

  update(id: string, patch: DevicePatch): Device {
    const current = this.get(id);
    if (patch.name !== undefined && patch.name !== current.name) this.assertNameFree(patch.name);
    const attributes = { ...current.attributes };
    for (const [k, v] of Object.entries(patch.attributes ?? {})) {
      if (v === null) delete attributes[k];
      else attributes[k] = v;
    }
    const updated: Device = {
      ...current, name: patch.name ?? current.name, type: patch.type ?? current.type, attributes, updatedAt: this.clock.now(),
    };
    this.statements.update.run({ id, name: updated.name, type: updated.type, attributes: JSON.stringify(attributes), updatedAt: updated.updatedAt });
    this.remember(updated);
    return updated;
  }

  /** Removes the device, its telemetry and attributes; its token stops working at once. */
  delete(id: string): void {
    const device = this.get(id);
    this.db.transaction(() => {
      this.statements.deletePoints.run(id);
      this.statements.deleteSeries.run(id);
      this.statements.deleteLatest.run(id);
      this.statements.delete.run(id);
    }).immediate(); // the write lock first: the storage worker writes beside this connection
    this.byId.delete(id);
    this.byToken.delete(device.token);
    this.emit('deleted', device);
  }

  private assertNameFree(name: string): void {
    if (this.statements.nameTaken.get(name)) throw conflict(`name: a device named "${name}" already exists`);
  }

  private remember(device: Device): void {
    this.byId.set(device.id, device);
    this.byToken.set(device.token, device);
  }
}
