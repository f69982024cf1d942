import fs from 'node:fs';
import { io as connectSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from './support/test-server.js';

describe('the dashboard over HTTP', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => {
    await server.stop();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('links an icon, and serves it both where the page says and where browsers look by default', async () => {
    const page = await (await fetch(`${server.baseUrl}/`)).text();
    expect(page).toContain('<link rel="icon" href="/favicon.svg" type="image/svg+xml">');
    for (const route of ['/favicon.svg', '/favicon.ico']) {
      const res = await fetch(`${server.baseUrl}${route}`);
      expect(res.status, route).toBe(200);
      expect(res.headers.get('content-type'), route).toMatch(/^image\/svg\+xml/);
      expect(await res.text(), route).toMatch(/^<svg /);
    }
  });

  it('sends a policy that allows only its own scripts and no framing, and nosniff on every answer', async () => {
    for (const route of ['/', '/api/devices', '/healthz', '/dist/app.js']) {
      const res = await fetch(`${server.baseUrl}${route}`);
      expect(res.headers.get('x-content-type-options'), route).toBe('nosniff');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, route).toContain("script-src 'self'");
      expect(csp, route).not.toMatch(/script-src[^;]*unsafe/);
      expect(csp, route).toContain("frame-ancestors 'none'");
      expect(res.headers.get('x-frame-options'), route).toBe('DENY');
    }
  });

  it('serves the page and its bundle, not its source, build script or source maps', async () => {
    expect((await fetch(`${server.baseUrl}/dist/app.js`)).status).toBe(200);
    expect((await fetch(`${server.baseUrl}/dist/uplot.css`)).status).toBe(200);
    for (const route of ['/dist/app.js.map', '/src/main.ts', '/build.mjs', '/tsconfig.json', '/dist/../build.mjs']) {
      expect((await fetch(`${server.baseUrl}${route}`)).status, route).toBe(404);
    }
  });

  it('refuses near-miss admin tokens over REST and socket.io', async () => {
    const token = server.sluice.adminToken;
    for (const near of [token.slice(0, -1), `${token}x`, token.toUpperCase()]) {
      const res = await fetch(`${server.baseUrl}/api/devices`, { headers: { authorization: `Bearer ${near}` } });
      expect(res.status, near).toBe(401);
      const socket = connectSocket(server.baseUrl, { auth: { token: near }, transports: ['websocket'], reconnection: false });
      const outcome = await new Promise<string>((resolve) => {
        socket.on('connect', () => resolve('connected'));
        socket.on('connect_error', (err) => resolve(err.message));
      });
      socket.close();
      expect(outcome, near).toMatch(/unauthorized/);
    }
  });
});
