import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConnectCredentials, ConnectVerdict } from '../server/src/ingest/device-connect.js';
import { migrations, openDatabase } from '../server/src/storage/database.js';
import { createDeviceAuthenticator, type AuthenticatorOptions } from '../server/src/storage/device-credentials-authenticator.js';
import { hashPassword, parseCertificate, prepareCredentials, verifyPassword, type CredentialsInput } from '../server/src/storage/device-credentials.js';
import { DeviceRegistry, type Device } from '../server/src/storage/device-registry.js';
import { makeCertificate } from './support/tls-certs.js';
import { tempDir } from './support/test-server.js';

/**
 * Device credentials over a real SQLite in a temp dir: what the registry stores and finds, and
 * what the authenticator the MQTT transport calls lets in (ThingsBoard's three kinds and its
 * MQTT basic matching rules).
 */
const T0 = 1_700_000_000_000;

describe('device credentials', () => {
  let dir: string;
  let db: Database.Database;
  let registry: DeviceRegistry;
  const clock = { t: T0, now() { return this.t; } };
  const set = async (device: Device, input: CredentialsInput) => registry.setCredentials(device.id, await prepareCredentials(input));
  const connect = (c: Partial<ConnectCredentials>, options?: AuthenticatorOptions) =>
    Promise.resolve(createDeviceAuthenticator(registry, options)({ clientId: 'c', transport: 'tcp', ...c }));
  const deviceOf = (v: ConnectVerdict) => (v.ok ? v.device.name : v.refusal);
  const pw = (s: string) => Buffer.from(s);

  beforeEach(() => {
    dir = tempDir('sluice-credentials-');
    db = openDatabase(dir);
    registry = new DeviceRegistry(db, clock);
  });
  afterEach(() => { db.close(); });

  describe('in the registry', () => {
    it('puts a new device on an access token that finds it', () => {
      const d = registry.create({ name: 'a' });
      expect(d.credentialsType).toBe('access_token');
      expect(registry.findByToken(d.token)?.id).toBe(d.id);
      expect(registry.credentialsOf(d.id)).toEqual({ type: 'access_token', token: d.token });
    });

    it('stores an MQTT basic password hashed with a salt of its own, never the password', async () => {
      const a = registry.create({ name: 'a' });
      const b = registry.create({ name: 'b' });
      await set(a, { type: 'mqtt_basic', username: 'ua', password: 'same secret' });
      await set(b, { type: 'mqtt_basic', username: 'ub', password: 'same secret' });
      const rows = db.prepare('SELECT device_id, password_hash FROM device_credentials').all() as { device_id: string; password_hash: string }[];
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row.password_hash).toMatch(/^scrypt\$16384\$8\$1\$[\w-]+\$[\w-]+$/);
        expect(row.password_hash).not.toContain('same secret');
        expect(row.password_hash).not.toContain(Buffer.from('same secret').toString('base64url'));
      }
      expect(rows[0]!.password_hash).not.toBe(rows[1]!.password_hash);
      expect(registry.credentialsOf(a.id)).toEqual({ type: 'mqtt_basic', username: 'ua', hasPassword: true });
    });

    it('checks a password against its hash exactly', async () => {
      const hash = await hashPassword('correct horse');
      expect(await verifyPassword(pw('correct horse'), hash)).toBe(true);
      expect(await verifyPassword(pw('correct hors'), hash)).toBe(false);
      expect(await verifyPassword(pw('correct horse '), hash)).toBe(false);
      expect(await verifyPassword(pw('Correct horse'), hash)).toBe(false);
      expect(await verifyPassword(pw('correct horse'), 'not a hash')).toBe(false);
    });

    it('stops the old token at once when a device moves to other credentials, and says so with revoked', async () => {
      const d = registry.create({ name: 'a' });
      const revoked: string[] = [];
      registry.on('revoked', (id) => revoked.push(id));
      await set(d, { type: 'mqtt_basic', clientId: 'client-a' });
      expect(registry.findByToken(d.token)).toBeUndefined();
      expect(registry.findByToken(`#${d.id}`)).toBeUndefined();
      expect(registry.get(d.id)).toMatchObject({ credentialsType: 'mqtt_basic' });
      expect(revoked).toEqual([d.id]);
    });

    it('rotates an access token: the new one works and the old one fails at once', () => {
      const d = registry.create({ name: 'a' });
      const revoked: string[] = [];
      registry.on('revoked', (id) => revoked.push(id));
      const rotated = registry.rotateToken(d.id);
      expect(rotated.type).toBe('access_token');
      const token = (rotated as { token: string }).token;
      expect(token).toMatch(/^[\w-]{20}$/);
      expect(token).not.toBe(d.token);
      expect(registry.findByToken(d.token)).toBeUndefined();
      expect(registry.findByToken(token)?.id).toBe(d.id);
      expect(revoked).toEqual([d.id]);
    });

    it('refuses to rotate a token for a device on other credentials', async () => {
      const d = registry.create({ name: 'a' });
      await set(d, { type: 'mqtt_basic', username: 'u' });
      expect(() => registry.rotateToken(d.id)).toThrow(expect.objectContaining({ status: 409, message: expect.stringMatching(/mqtt_basic/) }));
    });

    it('identifies an X.509 device by the SHA-256 of its certificate, and refuses what is not a certificate', async () => {
      const cert = makeCertificate('sensor-1', dir);
      const d = registry.create({ name: 'a' });
      expect(await set(d, { type: 'x509', certificate: cert.cert })).toEqual({ type: 'x509', fingerprint: cert.fingerprint });
      expect(registry.findByFingerprint(cert.fingerprint)?.id).toBe(d.id);
      expect(registry.findByToken(d.token)).toBeUndefined();
      expect(() => parseCertificate('hello')).toThrow(/^certificate: must be a PEM certificate/);
      expect(() => parseCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toThrow(/^certificate: not a valid X.509 certificate/);
      expect(() => parseCertificate(cert.cert + cert.key)).toThrow(/^certificate: holds a private key/);
    });

    it('keeps tokens, MQTT basic pairs and certificates unique over all devices', async () => {
      const cert = makeCertificate('shared', dir);
      const a = registry.create({ name: 'a' });
      const b = registry.create({ name: 'b' });
      const c = registry.create({ name: 'c' });
      const conflict = (message: RegExp) => expect.objectContaining({ status: 409, message: expect.stringMatching(message) });
      await expect(set(b, { type: 'access_token', token: a.token })).rejects.toThrow(conflict(/^token: already the access token of another device/));
      await set(b, { type: 'mqtt_basic', clientId: 'cid', username: 'user' });
      await expect(set(c, { type: 'mqtt_basic', clientId: 'cid', username: 'user' })).rejects.toThrow(conflict(/^clientId, username: already/));
      // One side alone is another pair: (cid, none) and (none, user) are free.
      await set(c, { type: 'mqtt_basic', clientId: 'cid' });
      await expect(set(a, { type: 'mqtt_basic', clientId: 'cid' })).rejects.toThrow(conflict(/^clientId: already/));
      // A token and an MQTT username would hide one another.
      await expect(set(a, { type: 'access_token', token: 'user' })).rejects.toThrow(conflict(/^token: already the MQTT username/));
      const d = registry.create({ name: 'd' });
      await expect(set(a, { type: 'mqtt_basic', username: d.token })).rejects.toThrow(conflict(/^username: already the access token/));
      await set(a, { type: 'x509', certificate: cert.cert });
      await expect(set(d, { type: 'x509', certificate: cert.cert })).rejects.toThrow(conflict(/^certificate: already/));
      // Setting a device's own credentials again is no conflict.
      await set(a, { type: 'x509', certificate: cert.cert });
      await set(b, { type: 'mqtt_basic', clientId: 'cid', username: 'user', password: 'p' });
      expect(registry.findMqttBasic('cid', 'user')?.device.id).toBe(b.id);
    });

    it('keeps credentials across a restart', async () => {
      const cert = makeCertificate('kept', dir);
      const basic = registry.create({ name: 'basic' });
      const x509 = registry.create({ name: 'x509' });
      const token = registry.create({ name: 'token' });
      await set(basic, { type: 'mqtt_basic', clientId: 'cid', password: 'pw' });
      await set(x509, { type: 'x509', certificate: cert.cert });
      db.close();
      db = openDatabase(dir);
      registry = new DeviceRegistry(db, clock);
      expect(registry.findMqttBasic('cid', undefined)?.device.id).toBe(basic.id);
      expect(await verifyPassword(pw('pw'), registry.findMqttBasic('cid', undefined)!.passwordHash!)).toBe(true);
      expect(registry.findByFingerprint(cert.fingerprint)?.id).toBe(x509.id);
      expect(registry.findByToken(token.token)?.id).toBe(token.id);
      expect(registry.findByToken(basic.token)).toBeUndefined();
      expect(registry.get(x509.id).credentialsType).toBe('x509');
    });

    it('keeps the devices of a database made before credentials and gateways on their tokens', () => {
      const old = tempDir('sluice-credentials-old-');
      const before = new Database(path.join(old, 'sluice.db'));
      const v = migrations.findIndex((m) => m.includes('device_credentials'));
      for (const m of migrations.slice(0, v)) before.exec(m);
      before.pragma(`user_version = ${v}`);
      before.prepare("INSERT INTO devices (id, name, type, token, attributes, created_at, updated_at) VALUES ('d1', 'old', 't', 'old-token', '{}', 1, 1)").run();
      before.close();
      const reopened = openDatabase(old);
      try {
        const found = new DeviceRegistry(reopened, clock).findByToken('old-token');
        expect(found).toMatchObject({ id: 'd1', credentialsType: 'access_token', isGateway: false });
        expect(found).not.toHaveProperty('gatewayId');
      } finally {
        reopened.close();
      }
    });

    it('drops a deleted device\'s credentials and says revoked', async () => {
      const cert = makeCertificate('gone', dir);
      const d = registry.create({ name: 'a' });
      await set(d, { type: 'x509', certificate: cert.cert });
      const revoked: string[] = [];
      registry.on('revoked', (id) => revoked.push(id));
      registry.delete(d.id);
      expect(registry.findByFingerprint(cert.fingerprint)).toBeUndefined();
      expect(revoked).toEqual([d.id]);
      expect(db.prepare('SELECT count(*) FROM device_credentials').pluck().get()).toBe(0);
      // The certificate is free for another device.
      await set(registry.create({ name: 'b' }), { type: 'x509', certificate: cert.cert });
    });
  });

  describe('the authenticator', () => {
    it('takes an access token in the username whatever the password, and nothing near it', async () => {
      const d = registry.create({ name: 'tok' });
      expect(deviceOf(await connect({ username: d.token }))).toBe('tok');
      expect(deviceOf(await connect({ username: d.token, password: pw('anything') }))).toBe('tok');
      expect(await connect({ username: d.token.slice(0, -1) })).toEqual({ ok: false, refusal: 'bad_credentials', reason: expect.stringMatching(/unknown or wrong device credentials/) });
      expect(deviceOf(await connect({ username: d.token.toUpperCase() }))).toBe('bad_credentials');
      expect(deviceOf(await connect({}))).toBe('bad_credentials');
    });

    it('matches a client id alone by the client id, checking its password when it has one', async () => {
      await set(registry.create({ name: 'open' }), { type: 'mqtt_basic', clientId: 'open-cid' });
      await set(registry.create({ name: 'locked' }), { type: 'mqtt_basic', clientId: 'locked-cid', password: 's3cret!' });
      expect(deviceOf(await connect({ clientId: 'open-cid' }))).toBe('open');
      expect(deviceOf(await connect({ clientId: 'open-cid', username: 'whoever' }))).toBe('open');
      expect(deviceOf(await connect({ clientId: 'open-cid2' }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ clientId: 'Open-cid' }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ clientId: 'locked-cid', password: pw('s3cret!') }))).toBe('locked');
      expect(deviceOf(await connect({ clientId: 'locked-cid', password: pw('s3cret') }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ clientId: 'locked-cid' }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ clientId: 'other', password: pw('s3cret!') }))).toBe('bad_credentials');
    });

    it('matches a username alone by the username and its password, case and all', async () => {
      await set(registry.create({ name: 'u' }), { type: 'mqtt_basic', username: 'Sensor-User', password: 'pa55word' });
      expect(deviceOf(await connect({ clientId: 'any', username: 'Sensor-User', password: pw('pa55word') }))).toBe('u');
      expect(deviceOf(await connect({ clientId: '', username: 'Sensor-User', password: pw('pa55word') }))).toBe('u');
      expect(deviceOf(await connect({ username: 'sensor-user', password: pw('pa55word') }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ username: 'Sensor-User', password: pw('pa55') }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ username: 'Sensor-User', password: pw('pa55wordX') }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ username: 'Sensor-User' }))).toBe('bad_credentials');
    });

    it('needs both the client id and the username of a credential that has both', async () => {
      await set(registry.create({ name: 'both' }), { type: 'mqtt_basic', clientId: 'cid', username: 'user', password: 'pw' });
      expect(deviceOf(await connect({ clientId: 'cid', username: 'user', password: pw('pw') }))).toBe('both');
      expect(deviceOf(await connect({ clientId: 'cid', username: 'user2', password: pw('pw') }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ clientId: 'cid2', username: 'user', password: pw('pw') }))).toBe('bad_credentials');
      expect(deviceOf(await connect({ clientId: 'cid', password: pw('pw') }))).toBe('bad_credentials');
    });

    it('looks up the pair first, then the client id alone, then the username alone, as ThingsBoard does', async () => {
      await set(registry.create({ name: 'pair' }), { type: 'mqtt_basic', clientId: 'cid', username: 'user' });
      await set(registry.create({ name: 'by-client' }), { type: 'mqtt_basic', clientId: 'cid' });
      await set(registry.create({ name: 'by-user' }), { type: 'mqtt_basic', username: 'user' });
      expect(deviceOf(await connect({ clientId: 'cid', username: 'user' }))).toBe('pair');
      expect(deviceOf(await connect({ clientId: 'cid', username: 'someone' }))).toBe('by-client');
      expect(deviceOf(await connect({ clientId: 'x', username: 'user' }))).toBe('by-user');
    });

    it('identifies a TLS client by its certificate, and falls back to the other kinds for an unknown one', async () => {
      const known = makeCertificate('known', dir);
      const x = registry.create({ name: 'x' });
      await set(x, { type: 'x509', certificate: known.cert });
      const t = registry.create({ name: 't' });
      expect(deviceOf(await connect({ certificateFingerprint: known.fingerprint, transport: 'tls' }))).toBe('x');
      expect(deviceOf(await connect({ certificateFingerprint: known.fingerprint, username: t.token, transport: 'tls' }))).toBe('x');
      expect(deviceOf(await connect({ certificateFingerprint: 'ab'.repeat(32), username: t.token, transport: 'tls' }))).toBe('t');
      expect(deviceOf(await connect({ certificateFingerprint: 'ab'.repeat(32), transport: 'tls' }))).toBe('bad_credentials');
      // Without its certificate, an X.509 device cannot get in: its old token is gone.
      expect(deviceOf(await connect({ username: x.token }))).toBe('bad_credentials');
    });

    it('refuses as server busy a check beyond those running and queued', async () => {
      await set(registry.create({ name: 'p' }), { type: 'mqtt_basic', clientId: 'cid', password: 'pw' });
      const outcomes: string[] = [];
      const authenticate = createDeviceAuthenticator(registry, { maxConcurrentChecks: 1, maxQueuedChecks: 1, onPasswordCheck: (o) => outcomes.push(o) });
      const running = authenticate({ clientId: 'cid', password: pw('pw'), transport: 'tcp' });
      const queued = authenticate({ clientId: 'cid', password: pw('wrong'), transport: 'tcp' });
      const busy = authenticate({ clientId: 'cid', password: pw('pw'), transport: 'tcp' });
      expect(busy).toEqual({ ok: false, refusal: 'server_busy', reason: expect.stringMatching(/too many password checks/) });
      expect(deviceOf(await running)).toBe('p');
      expect(deviceOf(await queued)).toBe('bad_credentials');
      expect(outcomes).toEqual(['busy', 'good', 'wrong']);
      // Room again once they are done.
      expect(deviceOf(await authenticate({ clientId: 'cid', password: pw('pw'), transport: 'tcp' }))).toBe('p');
    });

    it('lets a device reconnect without hashing again, until its credentials change', async () => {
      const d = registry.create({ name: 'p' });
      await set(d, { type: 'mqtt_basic', clientId: 'cid', password: 'pw' });
      const outcomes: string[] = [];
      const authenticate = createDeviceAuthenticator(registry, { onPasswordCheck: (o) => outcomes.push(o) });
      const login = (password: string) => Promise.resolve(authenticate({ clientId: 'cid', password: pw(password), transport: 'tcp' })).then(deviceOf);
      expect(await login('pw')).toBe('p');
      expect(await login('pw')).toBe('p');
      expect(await login('pw!')).toBe('bad_credentials');
      expect(outcomes).toEqual(['good', 'cached', 'wrong']);
      await set(d, { type: 'mqtt_basic', clientId: 'cid', password: 'new' });
      expect(await login('pw')).toBe('bad_credentials');
      expect(await login('new')).toBe('p');
      expect(outcomes.slice(3)).toEqual(['wrong', 'good']);
    });

    it('refuses a password checked good while the device\'s credentials changed', async () => {
      const d = registry.create({ name: 'p' });
      await set(d, { type: 'mqtt_basic', clientId: 'cid', password: 'pw' });
      const next = await prepareCredentials({ type: 'mqtt_basic', clientId: 'cid', password: 'other' });
      const pending = connect({ clientId: 'cid', password: pw('pw') });
      registry.setCredentials(d.id, next);
      expect(deviceOf(await pending)).toBe('bad_credentials');
    });
  });
});
