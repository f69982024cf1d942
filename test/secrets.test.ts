import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokensEqual } from '../server/src/api/auth.js';
import { redactDevicePath, redactUrl } from '../server/src/redact.js';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { tempDir, waitFor } from './support/test-server.js';

/** Every file and folder below `dir`, with its permission bits. */
function modes(dir: string): [string, number][] {
  const out: [string, number][] = [];
  for (const entry of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    out.push([entry, fs.statSync(path.join(dir, entry)).mode & 0o777]);
  }
  return out;
}

/** Once the start-up lines, the admin token's last among them, are out (they follow ports.json). */
const startedUp = (server: ChildServer) => waitFor('the start-up log lines', () => (server.output().includes('"msg":"admin token') ? true : undefined), 10_000);

describe('secrets', () => {
  it('prints a configured admin token never, and a generated one only at the start that made it', async () => {
    const configured = tempDir();
    const a = await startChildSluice(configured, ['--admin-token', 'configured-secret-123']);
    await startedUp(a);
    a.child.kill('SIGTERM');
    await a.exited;
    expect(a.output()).not.toContain('configured-secret-123');
    expect(a.output()).toContain('admin token: as configured (--admin-token / ADMIN_TOKEN)');

    const generated = tempDir();
    const first = await startChildSluice(generated);
    await startedUp(first);
    first.child.kill('SIGTERM');
    await first.exited;
    const token = fs.readFileSync(path.join(generated, 'admin-token'), 'utf8').trim();
    expect(first.output()).toContain(token);
    const second = await startChildSluice(generated);
    await startedUp(second);
    second.child.kill('SIGTERM');
    await second.exited;
    expect(second.output()).not.toContain(token);
    expect(second.output()).toContain(`admin token: in ${generated}/admin-token`);
    for (const dir of [configured, generated]) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every file in the data dir readable by its owner only (device tokens are in the database)', async () => {
    const dataDir = tempDir();
    const server = await startChildSluice(dataDir, ['--admin-token', 'an-admin-token']);
    try {
      const headers = { authorization: 'Bearer an-admin-token', 'content-type': 'application/json' };
      const base = `http://127.0.0.1:${server.ports.http}`;
      const device = (await (await fetch(`${base}/api/devices`, { method: 'POST', headers, body: '{"name":"d"}' })).json()) as { token: string };
      expect((await fetch(`${base}/api/v1/${device.token}/telemetry`, { method: 'POST', body: '{"t":1}' })).status).toBe(200);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const found = modes(dataDir);
    expect(found.map(([f]) => f)).toEqual(expect.arrayContaining(['sluice.db', 'ports.json']));
    expect(found.filter(([, mode]) => (mode & 0o077) !== 0)).toEqual([]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('compares tokens in full: a prefix, one character more, or another case is refused', () => {
    const token = 'TIak26PjgzuJOlRTIeDRYOz22tC69MWL';
    expect(tokensEqual(token, token)).toBe(true);
    for (const near of [token.slice(0, -1), `${token}x`, token.toLowerCase(), '', ` ${token}`]) expect(tokensEqual(near, token), near).toBe(false);
  });

  it('keeps device tokens and webhook credentials out of what it logs', () => {
    expect(redactDevicePath('/api/v1/WECQPKyJcSpZ_oPA7C3T/telemetry')).toBe('/api/v1/***/telemetry');
    expect(redactDevicePath('/api/devices/abc')).toBe('/api/devices/abc');
    expect(redactUrl('https://user:pw@hooks.example.com:8443/services/T000/B000/XXXX?token=s3cret')).toBe('https://hooks.example.com:8443/services/…?…');
    expect(redactUrl('http://127.0.0.1:9/')).toBe('http://127.0.0.1:9/');
    expect(redactUrl('not a url')).toBe('(not a URL)');
  });
});
