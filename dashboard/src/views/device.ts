import uPlot from 'uplot';
import { api, esc, fmt } from '../api.js';
import { throttled, type Live } from '../live.js';
import { WindowPoints } from '../window-points.js';

type Series = Record<string, { ts: number; value: unknown }[]>;

const RANGES: Record<string, number> = { '15 min': 15 * 60_000, '1 h': 3_600_000, '6 h': 6 * 3_600_000, '24 h': 24 * 3_600_000 };
const MAX_POINTS = 5000;

/** One device: a live chart per numeric key, window results overlaid, history by time range. */
export async function deviceView(root: HTMLElement, live: Live, id: string): Promise<() => void> {
  const device = await api<{ id: string; name: string; type: string; attributes: Record<string, unknown> }>('GET', `/api/devices/${id}`);
  root.innerHTML = `
    <div class="toolbar"><a href="#/devices" class="dim">← devices</a><h2 style="margin:0 0.5rem">${esc(device.name)}</h2>
      <span class="dim">${esc(device.type)} · ${esc(device.id)}</span><span style="flex:1"></span>
      <select id="range">${Object.keys(RANGES).map((r) => `<option${r === '1 h' ? ' selected' : ''}>${r}</option>`).join('')}</select></div>
    <div class="panel" id="latest"></div>
    <div class="charts" id="charts"></div>`;
  const charts = new Map<string, { plot: uPlot; ts: number[]; values: number[]; windows: WindowPoints }>();
  const latestEl = root.querySelector<HTMLElement>('#latest')!;
  const latest: Record<string, unknown> = {};

  const chartFor = (key: string) => {
    let c = charts.get(key);
    if (c) return c;
    const el = document.createElement('div');
    el.className = 'panel';
    el.dataset.key = key;
    root.querySelector('#charts')!.append(el);
    const plot = new uPlot({
      title: key, width: Math.max(480, el.clientWidth - 20), height: 220,
      scales: { x: { time: true } },
      series: [{}, { label: key, stroke: '#38bdf8', width: 1.5 }, { label: 'window avg', stroke: '#f97316', width: 2, points: { show: true } }],
      axes: [{ stroke: '#8b9bb4', grid: { stroke: '#24314a' } }, { stroke: '#8b9bb4', grid: { stroke: '#24314a' } }],
    }, [[], [], []], el);
    c = { plot, ts: [], values: [], windows: new WindowPoints(MAX_POINTS) };
    charts.set(key, c);
    return c;
  };
  const draw = () => {
    for (const c of charts.values()) {
      // Window results and raw points share the x axis: merge by time.
      const win = c.windows.byEnd();
      const xs = [...new Set([...c.ts, ...win.keys()])].sort((a, b) => a - b);
      const raw = new Map(c.ts.map((t, i) => [t, c.values[i]!]));
      c.plot.setData([xs.map((t) => t / 1000), xs.map((t) => raw.get(t) ?? null), xs.map((t) => win.get(t) ?? null)] as uPlot.AlignedData);
    }
    latestEl.innerHTML = Object.entries(latest).map(([k, v]) => `<span class="dim">${esc(k)}</span> <b data-latest="${esc(k)}">${esc(fmt(v))}</b>`).join(' &nbsp; ') || '<span class="dim">no data yet</span>';
  };
  const redraw = throttled(draw, 250);

  const load = async () => {
    const range = RANGES[root.querySelector<HTMLSelectElement>('#range')!.value]!;
    const to = Date.now() + 60_000;
    const series = await api<Series>('GET', `/api/devices/${id}/telemetry?from=${to - range}&to=${to}&limit=${MAX_POINTS}`);
    for (const [key, points] of Object.entries(series)) {
      const numeric = points.filter((p) => typeof p.value === 'number');
      if (numeric.length === 0) continue;
      const c = chartFor(key);
      c.ts = numeric.map((p) => p.ts);
      c.values = numeric.map((p) => p.value as number);
      const last = points[points.length - 1];
      if (last) latest[key] = last.value;
    }
    draw();
  };
  root.querySelector('#range')!.addEventListener('change', () => void load());
  const offTelemetry = live.on('telemetry', (t) => {
    if (t.deviceId !== id) return;
    for (const [k, v] of Object.entries(t.values)) {
      latest[k] = v;
      if (typeof v !== 'number') continue;
      const c = chartFor(k);
      c.ts.push(t.ts);
      c.values.push(v);
      if (c.ts.length > MAX_POINTS) { c.ts.shift(); c.values.shift(); }
    }
    redraw.mark();
  });
  const offWindow = live.on('window', (w) => {
    if (w.group !== id) return;
    const valueFor = new Map<string, number | null>();
    for (const [name, v] of Object.entries(w.values)) valueFor.set(name.replace(/^(avg|min|max|sum|last|first|p50|p90|p95|p99)_/, ''), v);
    // Every chart takes it: a merged session's `replaces` removes the sessions it absorbed everywhere.
    for (const [key, c] of charts) c.windows.take(w, valueFor.get(key) ?? null);
    redraw.mark();
  });
  const offReconnect = live.on('reconnect', () => void load());
  await load();
  return () => { offTelemetry(); offWindow(); offReconnect(); redraw.stop(); for (const c of charts.values()) c.plot.destroy(); };
}
