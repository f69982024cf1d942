import { parseArgs } from 'node:util';
import path from 'node:path';
import { z } from 'zod';
import { LimitError, limitOptions, limitsFrom, noLimitOverrides, type LimitOptionName, type Limits } from './limit-options.js';

/**
 * Flags and environment → one typed, validated config object. The only module that reads
 * process.env. A flag wins over its environment variable; both win over the default.
 */

export type FsyncPolicy = { mode: 'always' } | { mode: 'never' } | { mode: 'interval'; intervalMs: number };

export interface Config {
  mqttPort: number;
  httpPort: number;
  host: string;
  dataDir: string;
  adminToken: string | undefined;
  partitions: number;
  rulesDir: string;
  maxPayloadBytes: number;
  fsync: FsyncPolicy;
  /** Log retention defaults for every topic: age (ms) and size per partition (bytes); null: keep. */
  logRetentionMs: number | null;
  logRetentionBytes: number | null;
  logSegmentBytes: number;
  logLevel: string;
  prettyLogs: boolean;
  /** A consumer group with records to read that has not moved for this long makes /healthz 503. */
  healthStallAfterMs: number;
  /** Backoff of alarm webhook retries (not a flag: tests shorten it). */
  alarmRetry: { firstMs: number; maxMs: number };
  demo: boolean;
  /** TLS for devices (MQTT over TLS, WSS) and, when asked, HTTPS; absent without --tls-cert/--tls-key. */
  tls?: TlsConfig;
  /** Per-message, per-device, per-connection and per-rule bounds set by flags (docs/limits.md); unset ones keep their defaults. */
  limits: Limits;
}

export interface TlsConfig {
  /** PEM files, read at start and again on SIGHUP or when they change. */
  certFile: string;
  keyFile: string;
  /** MQTT over TLS (8883 unless given; 0 picks a free one). */
  mqttPort: number;
  /** HTTPS (and WSS) instead of HTTP on the HTTP port, with the same certificate. */
  https: boolean;
}

const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Each option: its flag, its environment variable, its default and its help text. */
const options = {
  'mqtt-port': { env: 'MQTT_PORT', default: '1883', help: 'MQTT TCP port (0 picks a free one)' },
  'http-port': { env: 'HTTP_PORT', default: '8080', help: 'HTTP port: REST, dashboard, socket.io (0 picks a free one)' },
  host: { env: 'HOST', default: '0.0.0.0', help: 'address to listen on' },
  'data-dir': { env: 'DATA_DIR', default: './data', help: 'where all state lives' },
  'admin-token': { env: 'ADMIN_TOKEN', default: undefined, help: 'operator token (generated and stored in the data dir when absent)' },
  partitions: { env: 'PARTITIONS', default: '4', help: 'partitions of the telemetry log topic' },
  'rules-dir': { env: 'RULES_DIR', default: 'rules/', help: 'folder of rule documents loaded at start' },
  'max-payload-bytes': { env: 'MAX_PAYLOAD_BYTES', default: '65536', help: 'largest device message accepted' },
  fsync: { env: 'FSYNC', default: 'interval:50', help: 'log flush policy: always | never | interval:<ms>' },
  'log-retention': { env: 'LOG_RETENTION', default: '7d', help: 'delete log segments older than this: <n>ms|s|m|h|d, or none' },
  'log-retention-bytes': { env: 'LOG_RETENTION_BYTES', default: 'none', help: 'keep at most this much log per partition: <n>[KiB|MiB|GiB], or none' },
  'log-segment-bytes': { env: 'LOG_SEGMENT_BYTES', default: '64MiB', help: 'log segment size: <n>[KiB|MiB|GiB], 1KiB..1GiB' },
  'health-stall-after': { env: 'HEALTH_STALL_AFTER', default: '60s', help: '/healthz fails when a consumer group has records to read and has not moved for this long: <n>ms|s|m|h' },
  'tls-cert': { env: 'TLS_CERT', default: undefined, help: 'PEM certificate (chain) for MQTT over TLS, and HTTPS with --http-tls' },
  'tls-key': { env: 'TLS_KEY', default: undefined, help: 'PEM private key of --tls-cert' },
  'mqtt-tls-port': { env: 'MQTT_TLS_PORT', default: undefined, help: 'MQTT over TLS port (default 8883 when --tls-cert/--tls-key are given; 0 picks a free one)' },
  'http-tls': { env: 'HTTP_TLS', default: 'off', help: 'on: HTTPS (and WSS for /mqtt) on the HTTP port with --tls-cert/--tls-key' },
  'log-level': { env: 'LOG_LEVEL', default: 'info', help: logLevels.join(' | ') },
  'log-format': { env: 'LOG_FORMAT', default: 'auto', help: 'pretty | json | auto (pretty on a terminal)' },
} as const;

type OptionName = keyof typeof options;

const port = (name: string) =>
  z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be a whole number`)
    .min(0, `${name} must be 0..65535`).max(65535, `${name} must be 0..65535`);

const fsyncPolicy = z.string().transform((value, ctx): FsyncPolicy => {
  if (value === 'always' || value === 'never') return { mode: value };
  const match = /^interval(?::(\d+))?$/.exec(value);
  if (match) return { mode: 'interval', intervalMs: match[1] === undefined ? 50 : Number(match[1]) };
  ctx.addIssue({ code: 'custom', message: `fsync must be always, never or interval:<ms>, got "${value}"` });
  return z.NEVER;
});

const durationUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const byteUnits = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 } as const;

const durationOrNone = (name: string, allowNone = true) => z.string().transform((value, ctx): number | null => {
  if (allowNone && value === 'none') return null;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  const ms = m ? Number(m[1]) * durationUnits[m[2] as keyof typeof durationUnits] : 0;
  if (ms > 0 && Number.isSafeInteger(ms)) return ms;
  ctx.addIssue({ code: 'custom', message: `${name} must be a positive duration like 12h or 7d${allowNone ? ', or none' : ''}; got "${value}"` });
  return z.NEVER;
});

const bytes = (name: string, allowNone: boolean, min: number, max: number) => z.string().transform((value, ctx): number | null => {
  if (allowNone && value === 'none') return null;
  const m = /^(\d+)(B|KiB|MiB|GiB)?$/.exec(value);
  const n = m ? Number(m[1]) * byteUnits[(m[2] ?? '') as keyof typeof byteUnits] : NaN;
  if (n >= min && n <= max) return n;
  ctx.addIssue({ code: 'custom', message: `${name} must be a size like 512MiB (${min}..${max} bytes)${allowNone ? ', or none' : ''}; got "${value}"` });
  return z.NEVER;
});

const schema = z.object({
  'mqtt-port': port('mqtt-port'),
  'http-port': port('http-port'),
  host: z.string().min(1),
  'data-dir': z.string().min(1, 'data-dir must not be empty'),
  'admin-token': z.string().min(8, 'admin-token must be at least 8 characters').optional(),
  partitions: z.coerce.number().int('partitions must be a whole number').min(1, 'partitions must be 1..1024').max(1024, 'partitions must be 1..1024'),
  'rules-dir': z.string().min(1),
  'max-payload-bytes': z.coerce.number().int().min(16, 'max-payload-bytes must be at least 16').max(16 * 1024 * 1024, 'max-payload-bytes must be at most 16 MiB'),
  fsync: fsyncPolicy,
  'log-retention': durationOrNone('log-retention'),
  'log-retention-bytes': bytes('log-retention-bytes', true, 1024, Number.MAX_SAFE_INTEGER),
  'log-segment-bytes': bytes('log-segment-bytes', false, 1024, 1024 ** 3),
  'health-stall-after': durationOrNone('health-stall-after', false),
  'tls-cert': z.string().min(1).optional(),
  'tls-key': z.string().min(1).optional(),
  'mqtt-tls-port': port('mqtt-tls-port').optional(),
  'http-tls': z.enum(['on', 'off'], { error: 'http-tls must be on or off' }),
  'log-level': z.enum(logLevels),
  'log-format': z.enum(['pretty', 'json', 'auto']),
});

export class ConfigError extends Error {}

export function helpText(): string {
  const lines = Object.entries(options).map(([flag, o]) =>
    `  --${flag.padEnd(20)} ${o.env.padEnd(20)} ${o.help}${o.default === undefined ? '' : ` (default ${o.default})`}`);
  return ['Usage: npm start -- [options]', '', '  flag                   environment', ...lines,
    `  --${'demo'.padEnd(20)} ${''.padEnd(20)} also run the device simulator on a small fleet`,
    '', '  limits (docs/limits.md; unset: the default shown)',
    ...Object.entries(limitOptions).map(([flag, o]) => `  --${flag.padEnd(36)} ${o.env.padEnd(36)} ${o.help}`),
    `  --${'help'.padEnd(20)} ${''.padEnd(20)} this text`].join('\n');
}

export interface ParsedCommandLine {
  help: boolean;
  config: Config;
}

/** Reads argv and env; throws ConfigError naming the option at fault. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv, isTty = false): ParsedCommandLine {
  const flagSpec = Object.fromEntries([...Object.keys(options), ...Object.keys(limitOptions)].map((k) => [k, { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...flagSpec, demo: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const raw: Record<string, string | undefined> = {};
  for (const [name, o] of Object.entries(options) as [OptionName, (typeof options)[OptionName]][]) {
    const fromFlag = (parsed.values as Record<string, string | boolean | undefined>)[name];
    // An empty variable counts as unset (compose passes `ADMIN_TOKEN: ${ADMIN_TOKEN:-}` through empty).
    const fromEnv = env[o.env] === '' ? undefined : env[o.env];
    raw[name] = typeof fromFlag === 'string' ? fromFlag : (fromEnv ?? o.default);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = String(issue.path[0] ?? '');
    const o = options[field as OptionName];
    throw new ConfigError(`--${field}${o ? ` / ${o.env}` : ''}: ${issue.message}`);
  }
  const v = result.data;
  const format = v['log-format'];
  const tls = tlsConfig(v['tls-cert'], v['tls-key'], v['mqtt-tls-port'], v['http-tls'] === 'on');
  const limitTexts: Partial<Record<LimitOptionName, string>> = {};
  for (const [name, o] of Object.entries(limitOptions) as [LimitOptionName, (typeof limitOptions)[LimitOptionName]][]) {
    const fromFlag = (parsed.values as Record<string, string | boolean | undefined>)[name];
    const fromEnv = env[o.env] === '' ? undefined : env[o.env];
    const text = typeof fromFlag === 'string' ? fromFlag : fromEnv;
    if (text !== undefined) limitTexts[name] = text;
  }
  let limits: Limits;
  try {
    limits = limitsFrom(limitTexts);
  } catch (err) {
    if (!(err instanceof LimitError)) throw err;
    throw new ConfigError(`--${err.option} / ${limitOptions[err.option].env}: ${err.message}`);
  }
  return {
    help: parsed.values.help === true,
    config: {
      mqttPort: v['mqtt-port'],
      httpPort: v['http-port'],
      host: v.host,
      dataDir: path.resolve(v['data-dir']),
      adminToken: v['admin-token'],
      partitions: v.partitions,
      rulesDir: path.resolve(v['rules-dir']),
      maxPayloadBytes: v['max-payload-bytes'],
      fsync: v.fsync,
      logRetentionMs: v['log-retention'],
      logRetentionBytes: v['log-retention-bytes'],
      logSegmentBytes: v['log-segment-bytes'] as number,
      healthStallAfterMs: v['health-stall-after'] as number,
      logLevel: v['log-level'],
      prettyLogs: format === 'pretty' || (format === 'auto' && isTty),
      demo: parsed.values.demo === true,
      ...(tls ? { tls } : {}),
      limits,
      alarmRetry: { firstMs: 500, maxMs: 30_000 },
    },
  };
}

/** TLS needs both files; a TLS port or HTTPS without them is a mistake worth saying. */
function tlsConfig(certFile: string | undefined, keyFile: string | undefined, mqttPort: number | undefined, https: boolean): TlsConfig | undefined {
  if (certFile === undefined && keyFile === undefined) {
    if (mqttPort !== undefined) throw new ConfigError('--mqtt-tls-port / MQTT_TLS_PORT: needs --tls-cert and --tls-key');
    if (https) throw new ConfigError('--http-tls / HTTP_TLS: needs --tls-cert and --tls-key');
    return undefined;
  }
  if (certFile === undefined) throw new ConfigError('--tls-cert / TLS_CERT: needed with --tls-key');
  if (keyFile === undefined) throw new ConfigError('--tls-key / TLS_KEY: needed with --tls-cert');
  return { certFile: path.resolve(certFile), keyFile: path.resolve(keyFile), mqttPort: mqttPort ?? 8883, https };
}

/** Defaults for embedding Sluice (tests, the simulator's demo): every port picked freely. */
export function testConfig(overrides: Partial<Config> & { dataDir: string }): Config {
  return {
    mqttPort: 0, httpPort: 0, host: '127.0.0.1', adminToken: 'test-admin-token', partitions: 4,
    // No rules unless a test brings its own: the examples in rules/ would act on every test's data.
    rulesDir: path.join(overrides.dataDir, 'rules'), maxPayloadBytes: 65536, fsync: { mode: 'interval', intervalMs: 50 },
    logRetentionMs: 7 * 86_400_000, logRetentionBytes: null, logSegmentBytes: 64 * 1024 ** 2, logLevel: 'silent', prettyLogs: false, healthStallAfterMs: 60_000, demo: false, limits: noLimitOverrides(), alarmRetry: { firstMs: 200, maxMs: 1000 }, ...overrides,
  };
}
