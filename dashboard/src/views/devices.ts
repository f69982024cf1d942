import { ago, api, esc, fmt } from '../api.js';
import { throttled, type Live } from '../live.js';

interface Device { id: string; name: string; type: string; token: string; attributes: Record<string, unknown>; latest?: Latest }
type Latest = Record<string, { ts: number; value: unknown }>;

const ONLINE_MS = 60_000;

/** The fleet: searchable table with last seen and latest values, live; create a device. */
export async function devicesView(root: HTMLElement, live: Live): Promise<() => void> {
  root.innerHTML = `
    <div class="toolbar">
      <input id="search" placeholder="Search name, type or id" size="32">
      <span class="dim" id="count"></span>
      <span style="flex:1"></span>
      <input id="new-name" placeholder="new device name"><input id="new-type" placeholder="type (optional)" size="14">
      <button id="create">Create device</button>
    </div>
    <div id="created"></div>
    <div class="panel"><table><thead><tr><th>Name</th><th>Type</th><th>Status</th><th>Last seen</th><th>Latest values</th></tr></thead><tbody id="rows"></tbody></table></div>`;
  const rows = root.querySelector<HTMLElement>('#rows')!;
  const search = root.querySelector<HTMLInputElement>('#search')!;
  let devices: Device[] = [];
  const latest = new Map<string, { lastSeen: number; values: Record<string, unknown> }>();

  const load = async () => {
    devices = await api<Device[]>('GET', '/api/devices?include=latest');
    for (const d of devices) {
      const entries = Object.entries(d.latest ?? {});
      if (entries.length > 0) latest.set(d.id, { lastSeen: Math.max(...entries.map(([, p]) => p.ts)), values: Object.fromEntries(entries.map(([k, p]) => [k, p.value])) });
    }
    render();
  };
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = devices.filter((d) => !q || d.name.toLowerCase().includes(q) || d.type.toLowerCase().includes(q) || d.id.includes(q));
    root.querySelector('#count')!.textContent = `${shown.length} of ${devices.length} devices`;
    const now = Date.now();
    rows.innerHTML = shown.slice(0, 500).map((d) => {
      const l = latest.get(d.id);
      const online = l !== undefined && now - l.lastSeen < ONLINE_MS;
      const values = l ? Object.entries(l.values).map(([k, v]) => `<span class="dim">${esc(k)}</span> ${esc(fmt(v))}`).join(' &nbsp; ') : '<span class="dim">no data yet</span>';
      return `<tr class="clickable" data-id="${esc(d.id)}"><td>${esc(d.name)}</td><td>${esc(d.type)}</td>
        <td class="${online ? 'online' : 'offline'}">${online ? 'online' : 'offline'}</td><td>${esc(ago(l?.lastSeen))}</td><td data-values>${values}</td></tr>`;
    }).join('');
  };
  const redraw = throttled(render, 500);
  search.addEventListener('input', render);
  rows.addEventListener('click', (e) => {
    const id = (e.target as HTMLElement).closest('tr')?.dataset.id;
    if (id) location.hash = `#/devices/${id}`;
  });
  root.querySelector('#create')!.addEventListener('click', async () => {
    const out = root.querySelector<HTMLElement>('#created')!;
    const name = root.querySelector<HTMLInputElement>('#new-name')!.value.trim();
    const type = root.querySelector<HTMLInputElement>('#new-type')!.value.trim();
    try {
      const d = await api<Device>('POST', '/api/devices', { name, ...(type ? { type } : {}) });
      out.innerHTML = `<div class="panel">Created <b>${esc(d.name)}</b>. Its access token (MQTT username): <span class="token" id="new-token">${esc(d.token)}</span></div>`;
      devices.push(d);
      render();
    } catch (err) {
      out.innerHTML = `<div class="error">${esc((err as Error).message)}</div>`;
    }
  });
  const offTelemetry = live.on('telemetry', (t) => {
    const l = latest.get(t.deviceId) ?? { lastSeen: 0, values: {} };
    l.lastSeen = Math.max(l.lastSeen, t.ts);
    Object.assign(l.values, t.values);
    latest.set(t.deviceId, l);
    redraw.mark();
  });
  const offReconnect = live.on('reconnect', () => void load());
  await load();
  return () => { offTelemetry(); offReconnect(); redraw.stop(); };
}
