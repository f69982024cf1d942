import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from './support/test-server.js';

describe('the files the dashboard page loads', () => {
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
});
