import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSluice, startChildSluice } from './support/child-server.js';
import { tempDir } from './support/test-server.js';

describe('the sluice command', () => {
  it('starts on free ports, writes ports.json, generates and prints the admin token, and exits 0 on SIGTERM', async () => {
    const dataDir = tempDir();
    const server = await startChildSluice(dataDir);
    try {
      const health = await fetch(`http://127.0.0.1:${server.ports.http}/healthz`);
      expect(await health.json()).toMatchObject({ status: 'ok' });
      const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
      expect(token.length).toBeGreaterThanOrEqual(24);
      expect(server.output()).toContain(token);
      expect((fs.statSync(path.join(dataDir, 'admin-token')).mode & 0o777).toString(8)).toBe('600');
      const devices = await fetch(`http://127.0.0.1:${server.ports.http}/api/devices`, { headers: { authorization: `Bearer ${token}` } });
      expect(devices.status).toBe(200);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/stopped cleanly/);
  });

  it('exits 0 on SIGINT too', async () => {
    const server = await startChildSluice(tempDir());
    server.child.kill('SIGINT');
    expect(await server.exited).toBe(0);
  });

  it('lets a flag win over its environment variable, and uses the environment otherwise', async () => {
    const dataDir = tempDir();
    const server = await startChildSluice(dataDir, ['--admin-token', 'flag-token-123'], { ADMIN_TOKEN: 'env-token-456', PARTITIONS: '2' });
    try {
      const ok = await fetch(`http://127.0.0.1:${server.ports.http}/api/log`, { headers: { authorization: 'Bearer flag-token-123' } });
      expect(ok.status).toBe(200);
      const log = (await ok.json()) as { topics: { partitions: unknown[] }[] };
      expect(log.topics[0]!.partitions).toHaveLength(2);
      const env = await fetch(`http://127.0.0.1:${server.ports.http}/api/log`, { headers: { authorization: 'Bearer env-token-456' } });
      expect(env.status).toBe(401);
      expect(fs.existsSync(path.join(dataDir, 'admin-token'))).toBe(false);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  const badArgs: [string[], Record<string, string>, RegExp][] = [
    [['--mqtt-port', 'abc'], {}, /--mqtt-port \/ MQTT_PORT: mqtt-port must be a number/],
    [['--http-port', '70000'], {}, /--http-port \/ HTTP_PORT: http-port must be 0\.\.65535/],
    [[], { PARTITIONS: '0' }, /--partitions \/ PARTITIONS: partitions must be 1\.\.1024/],
    [['--fsync', 'sometimes'], {}, /fsync must be always, never or interval:<ms>/],
    [['--no-such-flag'], {}, /Unknown option '--no-such-flag'/],
  ];
  for (const [args, env, message] of badArgs) {
    it(`refuses ${[...args, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].join(' ')} with exit code 2 and a message`, async () => {
      const run = spawnSluice(['--data-dir', tempDir(), ...args], env);
      expect(await run.exited).toBe(2);
      expect(run.output()).toMatch(message);
      expect(run.output()).toMatch(/Usage: npm start/);
    });
  }

  it('prints help, with every log level the flag takes', async () => {
    const run = spawnSluice(['--help']);
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(/--mqtt-port\s+MQTT_PORT/);
    expect(run.output()).toMatch(/--log-level\s+LOG_LEVEL\s+trace \| debug \| info \| warn \| error \| fatal \| silent \(default info\)/);
  });

  it('takes an empty environment variable as unset (a generated admin token, not a refusal)', async () => {
    const dataDir = tempDir();
    const server = await startChildSluice(dataDir, [], { ADMIN_TOKEN: '', LOG_LEVEL: '' });
    try {
      expect(fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim().length).toBeGreaterThanOrEqual(24);
      expect(server.output()).toMatch(/"level":30/);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  for (const which of ['mqtt', 'http'] as const) {
    it(`says which server and which option when the ${which.toUpperCase()} port is in use, without a stack trace`, async () => {
      const first = await startChildSluice(tempDir());
      try {
        const ports = { mqtt: '0', http: '0', [which]: String(first.ports[which]) };
        const run = spawnSluice(['--data-dir', tempDir(), '--host', '127.0.0.1', '--mqtt-port', ports.mqtt, '--http-port', ports.http]);
        expect(await run.exited).toBe(1);
        const flag = which === 'mqtt' ? '--mqtt-port / MQTT_PORT' : '--http-port / HTTP_PORT';
        expect(run.output()).toContain(`sluice: failed to start: the ${which.toUpperCase()} port 127.0.0.1:${first.ports[which]} is already in use (another Sluice or broker?); choose another with ${flag}`);
        expect(run.output()).not.toMatch(/^\s+at /m);
      } finally {
        first.child.kill('SIGTERM');
        await first.exited;
      }
    });
  }
});
