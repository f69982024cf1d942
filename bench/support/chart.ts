/**
 * Draws the end-to-end benchmark results (bench/results/e2e.json) as one SVG document.
 *
 * Panels, stacked vertically in one vega-lite `vconcat` spec about 900 px wide:
 *  1. Throughput — offered vs delivered msg/s per run (Sluice QoS 0 / QoS 1, Mosquitto).
 *  2. Latency — p50 and p99 in ms per offered rate.
 *  3. Memory — server RSS per connection count (only when `results.connections` is non-empty).
 *
 * Rendered headless with vega's `renderer: 'none'` view, so no canvas package is needed.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { BenchResults } from './results.js';

/** Width of each panel's plotting area; axes and padding bring the whole chart to about 900 px. */
const PANEL_WIDTH = 780;
const PANEL_HEIGHT = 220;

const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });

/** One member of a `vconcat` spec. */
type Panel = Extract<TopLevelSpec, { vconcat: unknown }>['vconcat'][number];

/** One vertical bar panel; `series` (if given) becomes side-by-side bars with a colour legend. */
function barPanel(opts: {
  title: string;
  values: Record<string, string | number>[];
  x: string;
  xTitle: string;
  y: string;
  yTitle: string;
  series?: string;
  labelAngle?: number;
}): Panel {
  const order = [...new Set(opts.values.map((v) => String(v[opts.x])))];
  const series = opts.series;
  const seriesOrder = series ? [...new Set(opts.values.map((v) => String(v[series])))] : [];
  return {
    title: opts.title,
    width: PANEL_WIDTH,
    height: PANEL_HEIGHT,
    data: { values: opts.values },
    encoding: {
      x: { field: opts.x, type: 'nominal', sort: order, title: opts.xTitle, axis: { labelAngle: opts.labelAngle ?? 0, labelLimit: 400 } },
      y: { field: opts.y, type: 'quantitative', title: opts.yTitle, axis: { format: ',~r' } },
      ...(series && {
        xOffset: { field: series, type: 'nominal', sort: seriesOrder },
        color: { field: series, type: 'nominal', sort: seriesOrder, title: null, legend: { orient: 'top' } },
      }),
    },
    // Bars, each with its value on top (so small values next to large ones stay readable).
    layer: [
      { mark: { type: 'bar', tooltip: true } },
      {
        mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 10 },
        encoding: { text: { field: opts.y, type: 'quantitative', format: ',.0f' }, color: { value: '#333' } },
      },
    ],
  };
}

/** Builds the vega-lite spec for `results`; exported for tests and for tweaking. */
export function benchChartSpec(results: BenchResults): TopLevelSpec {
  const panels: Panel[] = [
    barPanel({
      title: 'Throughput: offered vs delivered',
      values: results.throughput.flatMap((r) => [
        { run: r.label, series: 'offered', rate: r.offered },
        { run: r.label, series: 'delivered', rate: r.delivered },
      ]),
      x: 'run',
      xTitle: 'Run',
      y: 'rate',
      yTitle: 'Messages per second',
      series: 'series',
      labelAngle: -20,
    }),
    barPanel({
      title: 'Latency by offered rate',
      values: [...results.latency]
        .sort((a, b) => a.rate - b.rate)
        .flatMap((r) => [
          { rate: fmt(r.rate), series: 'p50', ms: r.p50Ms },
          { rate: fmt(r.rate), series: 'p99', ms: r.p99Ms },
        ]),
      x: 'rate',
      xTitle: 'Offered rate (msg/s)',
      y: 'ms',
      yTitle: 'Latency (ms)',
      series: 'series',
    }),
  ];
  if (results.connections.length > 0) {
    panels.push(
      barPanel({
        title: 'Server memory by connection count',
        values: [...results.connections]
          .sort((a, b) => a.connections - b.connections)
          .map((r) => ({ connections: `${fmt(r.connections)} connections`, rss: r.rssMB })),
        x: 'connections',
        xTitle: 'Connected devices',
        y: 'rss',
        yTitle: 'RSS (MB)',
      }),
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Sluice end-to-end benchmarks',
      subtitle: `${results.date} · ${results.machine}`,
      offset: 16,
    },
    spacing: 40,
    // Each panel keeps its own colours, legend and bar offsets.
    resolve: { scale: { color: 'independent', xOffset: 'independent' }, legend: { color: 'independent' } },
    config: { font: 'Helvetica, Arial, sans-serif', title: { anchor: 'start' } },
    vconcat: panels,
  };
}

/** Renders `results` to a standalone SVG document (string). */
export async function renderBenchChart(results: BenchResults): Promise<string> {
  const view = new vega.View(vega.parse(compile(benchChartSpec(results)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
