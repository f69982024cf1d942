/** One sample of a metric in Prometheus text (as /metrics gives it) whose labels include `labels`; 0 when absent. */
export function sampleOf(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries((m[2] ?? '').split(',').filter(Boolean).map((kv) => {
      const eq = kv.indexOf('=');
      return [kv.slice(0, eq), JSON.parse(kv.slice(eq + 1)) as string];
    }));
    if (wanted.every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}
