const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "500ms", "10s", "5m", "1h", "1d" → milliseconds (the schema has checked the form). */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`"${text}" is not a duration like 10s or 5m`);
  return Number(m[1]) * UNITS[m[2] as keyof typeof UNITS];
}
