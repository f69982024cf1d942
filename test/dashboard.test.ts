import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support/child-server.js';
import { TestServer } from './support/test-server.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const shots = path.join(repoRoot, 'test-output', 'dashboard');

/**
 * Polls a browser-side expression until it is truthy. Not page.waitForFunction: that compiles the
 * string with eval inside the page, which the dashboard's Content-Security-Policy forbids (as it
 * should); page.evaluate goes through the DevTools protocol, which the policy does not govern.
 */
async function waitInPage(page: Page, expression: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate<unknown>(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting in the page for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 25)); // the poll's interval; the deadline is above
  }
}

describe('dashboard in headless Chromium', () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  /** What the browser reported against the Content-Security-Policy while the views ran. */
  const policyViolations: string[] = [];

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(repoRoot, 'dashboard/build.mjs')]);
    fs.mkdirSync(shots, { recursive: true });
    server = await TestServer.start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) policyViolations.push(message.text());
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('refuses a wrong token, then logs in with the admin token', async () => {
    await page.goto(server.baseUrl);
    await page.fill('#token', 'wrong-token-123');
    await page.click('button[type=submit]');
    await page.waitForSelector('text=That token was refused');
    await page.fill('#token', server.sluice.adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('header nav');
    await page.waitForSelector('#status.live');
  });

  it('shows a message published over MQTT in the device view within a second', async () => {
    const device = await server.createDevice('dash-1', { type: 'room-sensor' });
    await page.goto(`${server.baseUrl}/#/devices`);
    await page.waitForSelector(`tr[data-id="${device.id}"]`);
    const client = await server.connectDevice(device.token);
    const sent = Date.now();
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ temperature: 23.25 }), { qos: 1 });
    await waitInPage(page, `document.querySelector('tr[data-id="${device.id}"] [data-values]')?.textContent?.includes('23.25')`, 1000);
    expect(Date.now() - sent).toBeLessThan(1000);
    expect(await page.textContent(`tr[data-id="${device.id}"]`)).toContain('online');
    await page.screenshot({ path: path.join(shots, 'devices.png') });

    await page.click(`tr[data-id="${device.id}"]`);
    await page.waitForSelector('.charts [data-key="temperature"] canvas');
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ temperature: 24.5 }), { qos: 1 });
    await page.waitForSelector('[data-latest="temperature"]:has-text("24.50")');
    await page.screenshot({ path: path.join(shots, 'device.png') });
    client.end(true);
  });

  it('renders the device table in throttled steps, not once per message', async () => {
    const device = await server.createDevice('dash-burst', { type: 'room-sensor' });
    await page.goto(`${server.baseUrl}/#/devices`);
    await page.waitForSelector(`tr[data-id="${device.id}"]`);
    // Browser code as strings: the test's own TypeScript has no DOM types.
    await page.evaluate(`window.renders = 0; new MutationObserver(() => { window.renders++; }).observe(document.querySelector('#rows'), { childList: true })`);
    const client = await server.connectDevice(device.token);
    await Promise.all(Array.from({ length: 200 }, (_, i) => client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ n: i }), { qos: 1 })));
    client.end(true);
    await waitInPage(page, `document.querySelector('tr[data-id="${device.id}"] [data-values]')?.textContent?.includes('199')`, 5000);
    const renders = await page.evaluate<number>('window.renders');
    expect(renders).toBeGreaterThan(0);
    expect(renders).toBeLessThan(20);
  });

  it('shows an alarm live and acknowledges it by a click', async () => {
    await server.json('POST', '/api/rules', { id: 'dash-alarm', devices: { types: ['room-sensor'] }, nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'Too warm', severity: 'MAJOR', create: 'values.temperature > 30' } }] });
    const device = await server.createDevice('dash-2', { type: 'room-sensor' });
    await page.goto(`${server.baseUrl}/#/alarms`);
    await page.waitForSelector('#count');
    const client = await server.connectDevice(device.token);
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ temperature: 35 }), { qos: 1 });
    client.end(true);
    const row = await page.waitForSelector('tr:has-text("Too warm")', { timeout: 5000 });
    expect(await row.textContent()).toContain('ACTIVE_UNACK');
    expect(await row.textContent()).toContain('dash-2');
    await page.screenshot({ path: path.join(shots, 'alarms.png') });
    await page.click('tr:has-text("Too warm") button[data-act=ack]');
    await page.waitForSelector('tr:has-text("Too warm") [data-status]:has-text("ACTIVE_ACK")');
    const [alarm] = await server.json<{ status: string }[]>('GET', `/api/alarms?device=${device.id}`);
    expect(alarm!.status).toBe('ACTIVE_ACK');
  });

  it('shows the server\'s error for an invalid rule, at the node and field', async () => {
    await page.goto(`${server.baseUrl}/#/rules`);
    await page.click('#new');
    await page.fill('#editor', JSON.stringify({ id: 'broken', nodes: [{ id: 'f', type: 'filter', if: 'values.t >' }] }));
    await page.click('#save');
    const error = await page.waitForSelector('#rule-error');
    expect(await error.textContent()).toMatch(/rule "broken", node "f" \(nodes\[0\]\.if\)/);
    // The editor selects the field at fault.
    const selected = await page.evaluate<string>(`(() => { const e = document.querySelector('#editor'); return e.value.slice(e.selectionStart, e.selectionEnd); })()`);
    expect(selected.startsWith('"if"')).toBe(true);
    await page.screenshot({ path: path.join(shots, 'rules.png') });
  });

  it('reconnects after the connection was lost, and catches up on what it missed', async () => {
    const device = await server.createDevice('dash-offline', { type: 'room-sensor' });
    await page.goto(`${server.baseUrl}/#/devices`);
    await page.waitForSelector(`tr[data-id="${device.id}"]`);
    await page.waitForSelector('#status.live');
    await page.context().setOffline(true);
    await page.waitForSelector('#status.down', { timeout: 10_000 });
    await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ missed: 7 }) });
    await server.sluice.storageCaughtUp();
    await page.context().setOffline(false);
    await page.waitForSelector('#status.live', { timeout: 15_000 });
    await waitInPage(page, `document.querySelector('tr[data-id="${device.id}"] [data-values]')?.textContent?.includes('missed')`, 5000);
  }, 40_000);

  it('stays responsive with 1,000 devices and a chart updated 20 times a second', async () => {
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => server.createDevice(`fleet-${i + j}`, { type: 'room-sensor' })));
    }
    await page.goto(`${server.baseUrl}/#/pipeline`);
    const started = Date.now();
    await page.goto(`${server.baseUrl}/#/devices`);
    await waitInPage(page, `Number(document.querySelector('#count')?.textContent?.split(' of ')[1]?.split(' ')[0] ?? 0) >= 1000`, 20_000);
    const loadMs = Date.now() - started;
    expect(loadMs).toBeLessThan(20_000);
    const device = await server.createDevice('fast-chart', { type: 'room-sensor' });
    await page.goto(`${server.baseUrl}/#/devices/${device.id}`);
    await page.waitForSelector('#latest');
    await page.evaluate(`window.longTasks = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.longTasks.push(e.duration); }).observe({ entryTypes: ['longtask'] })`);
    const client = await server.connectDevice(device.token);
    for (let i = 0; i < 60; i++) {
      await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ temperature: 20 + (i % 10) / 10 }), { qos: 0 });
      await new Promise((r) => setTimeout(r, 50)); // pacing, the load under test: 20 a second
    }
    client.end(true);
    await page.waitForSelector('.charts [data-key="temperature"] canvas');
    const longTasks = await page.evaluate<number[]>('window.longTasks');
    expect(longTasks.filter((d) => d > 200)).toEqual([]);
    await page.screenshot({ path: path.join(shots, 'fleet-chart.png') });
  }, 60_000);

  it('shows the pipeline: log partitions and consumer groups', async () => {
    await page.goto(`${server.baseUrl}/#/pipeline`);
    await page.waitForSelector('#partitions tr');
    expect(await page.textContent('#groups')).toContain('storage');
    await page.screenshot({ path: path.join(shots, 'pipeline.png') });
  });

  it('ran every view above without breaking its Content-Security-Policy', () => {
    expect(policyViolations).toEqual([]);
  });
});
