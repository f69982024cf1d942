import { ago, api, esc, fmt } from '../api.js';
import { throttled, type Alarm, type Live } from '../live.js';

/** Alarms, live: filter by severity and status, acknowledge and clear. */
export async function alarmsView(root: HTMLElement, live: Live): Promise<() => void> {
  root.innerHTML = `
    <div class="toolbar">
      <select id="status"><option value="">any status</option><option>ACTIVE_UNACK</option><option>ACTIVE_ACK</option><option>CLEARED_UNACK</option><option>CLEARED_ACK</option></select>
      <select id="severity"><option value="">any severity</option><option>CRITICAL</option><option>MAJOR</option><option>MINOR</option><option>WARNING</option><option>INDETERMINATE</option></select>
      <span class="dim" id="count"></span>
    </div>
    <div id="message"></div>
    <div class="panel"><table><thead><tr><th>Severity</th><th>Type</th><th>Originator</th><th>Status</th><th>Started</th><th>Last</th><th>Count</th><th>Values</th><th></th></tr></thead><tbody id="rows"></tbody></table></div>`;
  const alarms = new Map<string, Alarm>();
  const names = new Map<string, string>();
  const rows = root.querySelector<HTMLElement>('#rows')!;
  const status = root.querySelector<HTMLSelectElement>('#status')!;
  const severity = root.querySelector<HTMLSelectElement>('#severity')!;
  const render = () => {
    const shown = [...alarms.values()].filter((a) => (!status.value || a.status === status.value) && (!severity.value || a.severity === severity.value))
      .sort((a, b) => b.startTs - a.startTs);
    root.querySelector('#count')!.textContent = `${shown.length} alarms`;
    rows.innerHTML = shown.slice(0, 500).map((a) => {
      const values = (a.details.values ?? {}) as Record<string, unknown>;
      return `<tr data-id="${esc(a.id)}"><td><span class="pill sev-${esc(a.severity)}">${esc(a.severity)}</span></td><td>${esc(a.type)}</td><td>${esc(names.get(a.originator) ?? a.originator)}</td>
        <td data-status>${esc(a.status)}</td><td>${esc(ago(a.startTs))}</td><td>${esc(ago(a.lastTs))}</td><td>${a.count}</td>
        <td>${Object.entries(values).map(([k, v]) => `${esc(k)} ${esc(fmt(v))}`).join(', ')}</td>
        <td>${a.ackTs === null ? '<button data-act="ack">Ack</button>' : ''} ${a.clearTs === null ? '<button class="secondary" data-act="clear">Clear</button>' : ''}</td></tr>`;
    }).join('');
  };
  const redraw = throttled(render, 300);
  const load = async () => {
    for (const d of await api<{ id: string; name: string }[]>('GET', '/api/devices')) names.set(d.id, d.name);
    alarms.clear();
    for (const a of await api<Alarm[]>('GET', '/api/alarms?limit=1000')) alarms.set(a.id, a);
    render();
  };
  status.addEventListener('change', render);
  severity.addEventListener('change', render);
  rows.addEventListener('click', async (e) => {
    const button = (e.target as HTMLElement).closest('button');
    const id = button?.closest('tr')?.dataset.id;
    if (!button || !id) return;
    try {
      const a = await api<Alarm>('POST', `/api/alarms/${id}/${button.dataset.act}`);
      alarms.set(a.id, a);
      render();
    } catch (err) {
      root.querySelector('#message')!.innerHTML = `<div class="error">${esc((err as Error).message)}</div>`;
    }
  });
  const offAlarm = live.on('alarm', (a) => { alarms.set(a.id, a); redraw.mark(); });
  const offReconnect = live.on('reconnect', () => void load());
  await load();
  return () => { offAlarm(); offReconnect(); redraw.stop(); };
}
