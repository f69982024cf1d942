import { X509Certificate, createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { invalidInput } from '../errors.js';

/**
 * Device credentials, the three kinds ThingsBoard has, one per device:
 *   access_token  the token is the MQTT username (or the `:token` of the device HTTP API)
 *   mqtt_basic    a client id and/or a username, with an optional password (stored hashed)
 *   x509          the device's certificate: a TLS client presenting it is that device
 */
export type CredentialsType = 'access_token' | 'mqtt_basic' | 'x509';

/** What the registry keeps for a device that is not on an access token (access tokens live on the device row). */
export type StoredCredentials =
  | { type: 'mqtt_basic'; clientId?: string; username?: string; passwordHash?: string }
  | { type: 'x509'; fingerprint: string; certificate: string };

/** Credentials ready to be stored: the token chosen, the password hashed, the certificate fingerprinted. */
export type NewCredentials = { type: 'access_token'; token: string } | StoredCredentials;

/** What an operator sends: a password in clear, a certificate as PEM. */
export type CredentialsInput =
  | { type: 'access_token'; token?: string }
  | { type: 'mqtt_basic'; clientId?: string; username?: string; password?: string }
  | { type: 'x509'; certificate: string };

/** What the API shows: never a password, nor its hash. */
export type CredentialsView =
  | { type: 'access_token'; token: string }
  | { type: 'mqtt_basic'; clientId?: string; username?: string; hasPassword: boolean }
  | { type: 'x509'; fingerprint: string };

export const MAX_TOKEN_BYTES = 256;
export const MAX_CLIENT_ID_BYTES = 256;
export const MAX_USERNAME_BYTES = 256;
export const MAX_PASSWORD_BYTES = 256;
export const MAX_CERTIFICATE_BYTES = 16 * 1024;

/**
 * An access token given by an operator: the characters a URL path segment takes as they are
 * (RFC 3986 pchar without %), since the token is also the `:token` of the device HTTP API.
 */
export const TOKEN_PATTERN = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/;

/** Access tokens made by the server: 20 random URL-safe characters (120 bits). */
export const newAccessToken = (): string => randomBytes(15).toString('base64url');

/**
 * What the device row's token column holds while the device is on other credentials: never a
 * token anyone can present ('#' is not in TOKEN_PATTERN), unique as the id is.
 */
export const dormantToken = (deviceId: string): string => `#${deviceId}`;

export function viewOf(token: string, stored: StoredCredentials | undefined): CredentialsView {
  if (!stored) return { type: 'access_token', token };
  if (stored.type === 'x509') return { type: 'x509', fingerprint: stored.fingerprint };
  return {
    type: 'mqtt_basic', ...(stored.clientId !== undefined ? { clientId: stored.clientId } : {}),
    ...(stored.username !== undefined ? { username: stored.username } : {}), hasPassword: stored.passwordHash !== undefined,
  };
}

// --- passwords -----------------------------------------------------------------------------------

export interface ScryptParams {
  /** CPU/memory cost, a power of two; memory is 128 · N · r bytes. */
  N: number;
  r: number;
  p: number;
}

/**
 * Node's own scrypt defaults: about 50 ms and 16 MiB a check. A device password is checked on
 * every connection that is not in the authenticator's cache, so a fleet reconnecting after a
 * restart pays this once per device; the parameters are stored with each hash, so raising them
 * later keeps the hashes made before working.
 */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ N: 16384, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;

function derive(password: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const maxmem = 128 * params.N * params.r * 2;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { ...params, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** `scrypt$N$r$p$<salt>$<key>` (base64url): a fresh random salt each time, so one password never hashes twice the same. */
export async function hashPassword(password: Buffer | string, params: Readonly<ScryptParams> = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(Buffer.from(password), salt, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Whether `password` is the one `stored` was made from; the keys are compared in constant time. */
export async function verifyPassword(password: Buffer, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0)) return false;
  const expected = Buffer.from(parts[5]!, 'base64url');
  const key = await derive(password, Buffer.from(parts[4]!, 'base64url'), { N, r, p });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

// --- certificates --------------------------------------------------------------------------------

/** Lower-case hex SHA-256 of a certificate's DER: how a TLS client's certificate is recognised. */
export const fingerprintOfDer = (der: Buffer): string => createHash('sha256').update(der).digest('hex');

/**
 * The certificate of a PEM text, as stored: its fingerprint and its own PEM (the first certificate
 * of the text, re-encoded). Throws a 400 naming `certificate` for anything that is not one.
 */
export function parseCertificate(pem: string): { fingerprint: string; certificate: string } {
  if (/PRIVATE KEY-----/.test(pem)) throw invalidInput('certificate: holds a private key; send the certificate alone');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw invalidInput('certificate: must be a PEM certificate (-----BEGIN CERTIFICATE-----…)');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw invalidInput(`certificate: not a valid X.509 certificate (${(err as Error).message})`);
  }
  return { fingerprint: fingerprintOfDer(cert.raw), certificate: cert.toString() };
}

/** The operator's input made ready to store: a token generated when none is given, the password hashed. */
export async function prepareCredentials(input: CredentialsInput, params: Readonly<ScryptParams> = DEFAULT_SCRYPT): Promise<NewCredentials> {
  switch (input.type) {
    case 'access_token':
      return { type: 'access_token', token: input.token ?? newAccessToken() };
    case 'x509':
      return { type: 'x509', ...parseCertificate(input.certificate) };
    case 'mqtt_basic':
      return {
        type: 'mqtt_basic',
        ...(input.clientId !== undefined ? { clientId: input.clientId } : {}),
        ...(input.username !== undefined ? { username: input.username } : {}),
        ...(input.password !== undefined ? { passwordHash: await hashPassword(input.password, params) } : {}),
      };
  }
}
