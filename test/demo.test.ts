import { describe, expect, it } from 'vitest';
import { startChildSluice } from './support/child-server.js';
import { tempDir, waitFor } from './support/test-server.js';

describe('npm run demo (--demo)', () => {
  it('starts a simulated fleet of 50 devices whose telemetry is stored, and still stops cleanly on SIGTERM', async () => {
    const server = await startChildSluice(tempDir(), ['--demo', '--admin-token', 'demo-admin-token-1']);
    const api = (route: string) => fetch(`http://127.0.0.1:${server.ports.http}${route}`, { headers: { authorization: 'Bearer demo-admin-token-1' } })
      .then((r) => r.json() as Promise<unknown>);
    try {
      const devices = await waitFor('50 demo devices', async () => {
        const list = await api('/api/devices') as { items?: Array<{ id: string; name: string }> } | Array<{ id: string; name: string }>;
        const items = Array.isArray(list) ? list : list.items ?? [];
        return items.filter((d) => d.name.startsWith('demo-')).length === 50 ? items : undefined;
      }, 20_000);
      const first = devices.find((d) => d.name === 'demo-1')!;
      const latest = await waitFor('demo-1 telemetry', async () => {
        const values = await api(`/api/devices/${first.id}/telemetry/latest`) as Record<string, unknown>;
        return Object.keys(values).length > 0 ? values : undefined;
      }, 20_000);
      expect(Object.keys(latest).length).toBeGreaterThan(0);
      // The example rules in rules/ act on the simulated machines.
      const stats = await waitFor('the machine-health rule to see messages', async () => {
        const s = await api('/api/rules/machine-health/stats') as { nodes?: { id: string; in: number; errors: number }[] };
        return (s.nodes?.[0]?.in ?? 0) > 0 ? s.nodes! : undefined;
      }, 20_000);
      expect(stats.every((n) => n.errors === 0)).toBe(true);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/demo: devices: 50 created/);
  });
});
