import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, helpText, loadConfig } from '../server/src/config.js';
import { limitOptions } from '../server/src/limit-options.js';
import { repoRoot, startChildSluice } from './support/child-server.js';
import { connectMqtt, tempDir } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

/** The rows of docs/limits.md's table: each row's flags and environment variables. */
function documentedLimits(): { flags: string[]; envs: string[] }[] {
  const text = fs.readFileSync(path.join(repoRoot, 'docs/limits.md'), 'utf8');
  return text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| limit ') && !l.startsWith('| ---')).map((row) => {
    const flagCell = row.split(' | ')[1] ?? '';
    return { flags: [...flagCell.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]!), envs: [...flagCell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!) };
  });
}

describe('limits as flags', () => {
  it('are all in docs/limits.md with their environment variable, and the table names no flag that does not exist', () => {
    const rows = documentedLimits();
    const documented = new Set(rows.flatMap((r) => r.flags));
    const documentedEnvs = new Set(rows.flatMap((r) => r.envs));
    for (const [flag, o] of Object.entries(limitOptions)) {
      expect(documented.has(`--${flag}`), `--${flag} in docs/limits.md`).toBe(true);
      expect(documentedEnvs.has(o.env), `${o.env} in docs/limits.md`).toBe(true);
    }
    const known = new Set([...Object.keys(limitOptions), 'data-dir', 'max-payload-bytes'].map((f) => `--${f}`));
    expect([...documented].filter((f) => !known.has(f))).toEqual([]);
    expect(helpText()).toContain('--mqtt-max-connections-per-address');
  });

  it('take flags over environment, parse units, and leave what is unset to the defaults', () => {
    const { config } = loadConfig(['--max-payload-depth', '4', '--mqtt-session-expiry', '2h', '--rules-recent-values-bytes', '8MiB'],
      { MAX_PAYLOAD_DEPTH: '9', WINDOW_MAX_OPEN: '500', WEBHOOK_MAX_TIMEOUT: '1500ms', MQTT_MAX_QUEUED_MESSAGES: '' });
    expect(config.limits.telemetry).toEqual({ maxPayloadDepth: 4, recentValuesMaxBytes: 8 * 1024 * 1024 });
    expect(config.limits.mqtt).toEqual({ sessionExpiryMs: 7_200_000 });
    expect(config.limits.rules).toEqual({ maxOpenWindows: 500, webhookMaxTimeoutMs: 1500 });
  });

  for (const [args, env, message] of [
    [['--max-payload-depth', '0'], {}, '--max-payload-depth / MAX_PAYLOAD_DEPTH: max-payload-depth must be at least 1, got "0"'],
    [[], { MQTT_CONNECT_TIMEOUT: '10' }, '--mqtt-connect-timeout / MQTT_CONNECT_TIMEOUT: mqtt-connect-timeout must be a duration like 10s or 1d, got "10"'],
    [['--dedupe-max-keys', '1.5'], {}, '--dedupe-max-keys / DEDUPE_MAX_KEYS: dedupe-max-keys must be a whole number, got "1.5"'],
  ] as [string[], Record<string, string>, string][]) {
    it(`refuses ${args.join(' ') || JSON.stringify(env)} naming the flag`, () => {
      expect(() => loadConfig(args, env)).toThrow(new ConfigError(message));
    });
  }

  it('reach the running server: a depth flag rejects what the default accepts, a per-address limit refuses a second connection', async () => {
    const dataDir = tempDir();
    const server = await startChildSluice(dataDir, ['--admin-token', 'limits-admin-token', '--max-payload-depth', '2'], { MQTT_MAX_CONNECTIONS_PER_ADDRESS: '1' });
    const base = `http://127.0.0.1:${server.ports.http}`;
    try {
      const headers = { authorization: 'Bearer limits-admin-token', 'content-type': 'application/json' };
      const device = (await (await fetch(`${base}/api/devices`, { method: 'POST', headers, body: '{"name":"d"}' })).json()) as { token: string };
      const post = (body: string) => fetch(`${base}/api/v1/${device.token}/telemetry`, { method: 'POST', body });
      expect((await post('{"v":{"a":1}}')).status).toBe(200);
      const deep = await post('{"v":{"a":[1]}}');
      await expectApiError(deep, 400, /nested more than 2 levels/);
      const first = await connectMqtt(`mqtt://127.0.0.1:${server.ports.mqtt}`, { username: device.token });
      try {
        await expect(connectMqtt(`mqtt://127.0.0.1:${server.ports.mqtt}`, { username: device.token, clientId: 'second' })).rejects.toThrow(/unavailable|closed|Connection refused/i);
      } finally {
        first.end(true);
      }
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
