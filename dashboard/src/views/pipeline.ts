import { api, esc } from '../api.js';
import type { Live } from '../live.js';

interface LogState { topics: { name: string; partitions: { partition: number; startOffset: number; endOffset: number; bytes: number }[] }[]; groups: { name: string; topic: string; partitions: { partition: number; committed: number; lag: number }[] }[] }

/** The pipeline, live: ingest rate, lag, log offsets per partition, consumer groups, rejected messages. */
export async function pipelineView(root: HTMLElement, live: Live): Promise<() => void> {
  root.innerHTML = `
    <div class="cards">
      <div class="card"><div class="label">Stored / s</div><div class="value" id="rate">—</div></div>
      <div class="card"><div class="label">Consumer lag</div><div class="value" id="lag">—</div></div>
      <div class="card"><div class="label">Log records</div><div class="value" id="records">—</div></div>
      <div class="card"><div class="label">Rejected (recent)</div><div class="value" id="rejected-count">—</div></div>
    </div>
    <div class="panel"><b>Log partitions</b><table><thead><tr><th>Topic</th><th>Partition</th><th>Start</th><th>End</th><th>Size</th></tr></thead><tbody id="partitions"></tbody></table></div>
    <div class="panel"><b>Consumer groups</b><table><thead><tr><th>Group</th><th>Topic</th><th>Partition</th><th>Committed</th><th>Lag</th></tr></thead><tbody id="groups"></tbody></table></div>
    <div class="panel"><b>Rejected messages</b><table><thead><tr><th>When</th><th>Device</th><th>Topic</th><th>Reason</th></tr></thead><tbody id="rejected"></tbody></table></div>`;
  const $ = (id: string) => root.querySelector<HTMLElement>(`#${id}`)!;
  const refresh = async () => {
    const [log, rejected] = await Promise.all([api<LogState>('GET', '/api/log'), api<{ ts: number; deviceId?: string; topic: string; reason: string }[]>('GET', '/api/rejected?limit=20')]);
    $('records').textContent = log.topics.flatMap((t) => t.partitions).reduce((s, p) => s + p.endOffset - p.startOffset, 0).toLocaleString();
    $('partitions').innerHTML = log.topics.flatMap((t) => t.partitions.map((p) => `<tr><td>${esc(t.name)}</td><td>${p.partition}</td><td>${p.startOffset}</td><td>${p.endOffset}</td><td>${(p.bytes / 1024).toFixed(0)} KiB</td></tr>`)).join('');
    $('groups').innerHTML = log.groups.flatMap((g) => g.partitions.map((p) => `<tr><td>${esc(g.name)}</td><td>${esc(g.topic)}</td><td>${p.partition}</td><td>${p.committed}</td><td>${p.lag}</td></tr>`)).join('');
    $('rejected-count').textContent = String(rejected.length);
    $('rejected').innerHTML = rejected.map((r) => `<tr><td>${new Date(r.ts).toLocaleTimeString()}</td><td>${esc(r.deviceId ?? '—')}</td><td>${esc(r.topic)}</td><td>${esc(r.reason)}</td></tr>`).join('');
  };
  const off = live.on('stats', (s) => {
    $('rate').textContent = s.ingestRate.toLocaleString();
    $('lag').textContent = s.lag.toLocaleString();
  });
  await refresh();
  const timer = setInterval(() => void refresh().catch(() => {}), 2000);
  return () => { off(); clearInterval(timer); };
}
