import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { PayloadForm } from './messages.js';

/** Command line (and ADMIN_TOKEN) → one checked options object for a simulator run. */

export interface SimOptions {
  /** Sluice's HTTP base URL, for the REST API. */
  url: string;
  mqttUrl: string;
  /** Needed to create devices; a complete tokens file does without. */
  adminToken: string | undefined;
  devices: number;
  /** Messages per second per device; 'max' (load mode only) as fast as the server takes them. */
  rate: number | 'max';
  qos: 0 | 1;
  /** Seconds to run; undefined runs until stopped. */
  durationSec: number | undefined;
  seed: number;
  prefix: string;
  form: PayloadForm;
  /** Fractions of messages, each 0..1: timestamps 1–60 s in the past; not JSON; a spike in one value. */
  late: number;
  malformed: number;
  anomalies: number;
  /** Load mode: lean connections, payloads drawn in advance, `rate` may be 'max'. */
  load: boolean;
  /** Load mode: QoS 1 messages in flight per connection (QoS 0 at max rate: messages per write). */
  inflight: number;
  /** Where device tokens are kept between runs; undefined: ask the REST API each run. */
  tokensFile: string | undefined;
  /** Longest wait between reconnection attempts, ms. */
  reconnectMaxMs: number;
  /** Print the summary as one line of JSON (for scripts). */
  json: boolean;
}

export class OptionError extends Error {
  override readonly name = 'OptionError';
}

export const ADMIN_TOKEN_FILE = path.join('data', 'admin-token');
export const MAX_DEVICES = 50_000;
export const MAX_INFLIGHT = 16_000;
export const MAX_RATE = 1000;
/** setTimeout cannot wait longer than 2^31-1 ms. */
export const MAX_DURATION_SEC = Math.floor((2 ** 31 - 1) / 1000);
const MAX_PREFIX_LENGTH = 100;

const flags = {
  url: { type: 'string', default: 'http://localhost:8080', help: 'Sluice HTTP base URL (REST API)' },
  'mqtt-url': { type: 'string', default: 'mqtt://localhost:1883', help: 'Sluice MQTT URL' },
  'admin-token': { type: 'string', default: undefined, help: `operator token (else ADMIN_TOKEN, else ./${ADMIN_TOKEN_FILE})` },
  devices: { type: 'string', default: '10', help: `number of devices, 1..${MAX_DEVICES}` },
  rate: { type: 'string', default: '1', help: 'messages per second per device (fractions allowed); with --load also "max"' },
  qos: { type: 'string', default: '1', help: 'MQTT QoS of the telemetry messages: 0 or 1' },
  duration: { type: 'string', default: undefined, help: 'seconds to run (default: until SIGINT/SIGTERM)' },
  seed: { type: 'string', default: '1', help: 'seed of the random values: the same seed gives the same values' },
  prefix: { type: 'string', default: 'sim-', help: 'device name prefix: devices are <prefix>1, <prefix>2, ...' },
  form: { type: 'string', default: 'ts', help: 'payload form: ts ({"ts","values"}), flat ({k: v}, server time) or array ([{"ts","values"}])' },
  late: { type: 'string', default: '0', help: 'fraction of messages (0..1) with a timestamp 1-60 s in the past' },
  malformed: { type: 'string', default: '0', help: 'fraction of messages (0..1) that are not JSON (Sluice rejects them)' },
  anomalies: { type: 'string', default: '0', help: 'fraction of messages (0..1) with a spike in one value (x3), for alarm rules' },
  'tokens-file': { type: 'string', default: undefined, help: 'JSON file of device tokens: read if it exists (no REST calls for the devices it lists), written after creating devices' },
  'reconnect-max': { type: 'string', default: '30', help: 'longest wait between reconnection attempts, seconds (waits start at 0.5 s and double)' },
  load: { type: 'boolean', default: undefined, help: 'load mode: lean MQTT connections for benchmarks, thousands of them, --rate up to "max"' },
  inflight: { type: 'string', default: '16', help: 'load mode: QoS 1 messages in flight per connection (QoS 0 with --rate max: messages per write)' },
  json: { type: 'boolean', default: undefined, help: 'print the summary as one line of JSON' },
} as const;

export function usage(): string {
  const lines = Object.entries(flags).map(([flag, f]) =>
    `  --${flag.padEnd(14)} ${f.help}${f.default === undefined ? '' : ` (default ${f.default})`}`);
  return [
    'Usage: npm run sim -- [options]',
    '',
    'Creates devices in Sluice over its REST API (reusing those that exist by name), connects each',
    'as its own MQTT client and publishes telemetry. Profiles alternate: room-sensor, machine, tracker.',
    '',
    ...lines,
    `  --${'help'.padEnd(14)} this text`,
  ].join('\n');
}

export type ParsedCommandLine = { help: true } | { help: false; options: SimOptions };

export interface OptionSources {
  env: NodeJS.ProcessEnv;
  /** The admin token Sluice stored, if any; by default read from ./data/admin-token. */
  readStoredAdminToken?: () => string | undefined;
}

/** Throws OptionError naming the option at fault. */
export function parseSimArgs(argv: string[], sources: OptionSources): ParsedCommandLine {
  let values: Record<string, string | boolean | undefined>;
  try {
    const spec = Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type }]));
    ({ values } = parseArgs({ args: argv, options: { ...spec, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new OptionError((err as Error).message);
  }
  if (values.help === true) return { help: true };
  const raw = (flag: keyof typeof flags): string | undefined => {
    const given = values[flag];
    return typeof given === 'string' ? given : flags[flag].default;
  };
  const load = values.load === true;

  const options: Omit<SimOptions, 'adminToken'> = {
    url: checkUrl('url', raw('url')!, ['http:', 'https:']),
    mqttUrl: checkUrl('mqtt-url', raw('mqtt-url')!, ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:']),
    devices: wholeNumber('devices', raw('devices')!, 1, MAX_DEVICES),
    rate: rate(raw('rate')!, load),
    qos: qos(raw('qos')!),
    durationSec: raw('duration') === undefined ? undefined : positiveNumber('duration', raw('duration')!, MAX_DURATION_SEC),
    seed: wholeNumber('seed', raw('seed')!, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    prefix: prefix(raw('prefix')!),
    form: form(raw('form')!),
    late: fraction('late', raw('late')!),
    malformed: fraction('malformed', raw('malformed')!),
    anomalies: fraction('anomalies', raw('anomalies')!),
    load,
    inflight: wholeNumber('inflight', raw('inflight')!, 1, MAX_INFLIGHT),
    tokensFile: raw('tokens-file'),
    reconnectMaxMs: Math.round(positiveNumber('reconnect-max', raw('reconnect-max')!, 3600) * 1000),
    json: values.json === true,
  };
  if (options.tokensFile === '') throw new OptionError('--tokens-file must name a file');
  const adminToken = nonEmpty(raw('admin-token')?.trim()) ?? nonEmpty(sources.env.ADMIN_TOKEN?.trim()) ?? (sources.readStoredAdminToken ?? readStoredAdminToken)();
  // Without a tokens file every run asks the REST API; with one, only a file missing devices does (checked then).
  if (adminToken === undefined && options.tokensFile === undefined) {
    throw new OptionError(`--admin-token: no admin token: pass --admin-token, set ADMIN_TOKEN, or run where Sluice wrote ./${ADMIN_TOKEN_FILE}`);
  }
  return { help: false, options: { ...options, adminToken } };
}

function readStoredAdminToken(): string | undefined {
  try {
    return nonEmpty(fs.readFileSync(ADMIN_TOKEN_FILE, 'utf8').trim());
  } catch {
    return undefined;
  }
}

const nonEmpty = (s: string | undefined) => (s === undefined || s === '' ? undefined : s);

function checkUrl(flag: string, value: string, protocols: string[]): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new OptionError(`--${flag} must be a URL, got "${value}"`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new OptionError(`--${flag} must start with ${protocols.map((p) => `${p}//`).join(', ')}; got "${value}"`);
  }
  return value.replace(/\/+$/, '');
}

function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new OptionError(`--${flag} must be a whole number, got "${value}"`);
  if (n < min || n > max) throw new OptionError(`--${flag} must be ${min}..${max}, got ${n}`);
  return n;
}

function positiveNumber(flag: string, value: string, max: number): number {
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n)) throw new OptionError(`--${flag} must be a number, got "${value}"`);
  if (n <= 0 || n > max) throw new OptionError(`--${flag} must be more than 0 and at most ${max}, got ${n}`);
  return n;
}

function rate(value: string, load: boolean): number | 'max' {
  if (value === 'max') {
    if (!load) throw new OptionError('--rate max needs --load (a realistic fleet publishes at a rate)');
    return 'max';
  }
  return positiveNumber('rate', value, load ? 1_000_000 : MAX_RATE);
}

function qos(value: string): 0 | 1 {
  if (value === '0' || value === '1') return Number(value) as 0 | 1;
  throw new OptionError(`--qos must be 0 or 1, got "${value}"`);
}

function prefix(value: string): string {
  // The server trims device names: a prefix with outer spaces would never be found again by name.
  if (value.trim() !== value || value === '') throw new OptionError(`--prefix must not be empty or start or end with spaces, got "${value}"`);
  if (value.length > MAX_PREFIX_LENGTH) throw new OptionError(`--prefix must be at most ${MAX_PREFIX_LENGTH} characters`);
  return value;
}

function form(value: string): PayloadForm {
  if (value === 'ts' || value === 'flat' || value === 'array') return value;
  throw new OptionError(`--form must be ts, flat or array, got "${value}"`);
}

function fraction(flag: string, value: string): number {
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new OptionError(`--${flag} must be a fraction 0..1, got "${value}"`);
  return n;
}

/** Options for a run inside another process (tests, the demo): the CLI's defaults, then `overrides`. */
export function simOptions(overrides: Partial<SimOptions>): SimOptions {
  const parsed = parseSimArgs([], { env: {}, readStoredAdminToken: () => 'unset' });
  if (parsed.help) throw new Error('unreachable');
  return { ...parsed.options, adminToken: undefined, ...overrides };
}
