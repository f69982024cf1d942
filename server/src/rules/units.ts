/** Unit conversions for `transform.convert`: each unit as a factor and offset to its base unit. */
const units: Record<string, { base: string; factor: number; offset?: number }> = {
  C: { base: 'K', factor: 1, offset: 273.15 },
  F: { base: 'K', factor: 5 / 9, offset: 273.15 - (32 * 5) / 9 },
  K: { base: 'K', factor: 1 },
  'm/s': { base: 'm/s', factor: 1 },
  'km/h': { base: 'm/s', factor: 1 / 3.6 },
  mph: { base: 'm/s', factor: 0.44704 },
  Pa: { base: 'Pa', factor: 1 },
  hPa: { base: 'Pa', factor: 100 },
  kPa: { base: 'Pa', factor: 1000 },
  bar: { base: 'Pa', factor: 100_000 },
  psi: { base: 'Pa', factor: 6894.757293168 },
  mm: { base: 'm', factor: 0.001 },
  cm: { base: 'm', factor: 0.01 },
  m: { base: 'm', factor: 1 },
  km: { base: 'm', factor: 1000 },
  in: { base: 'm', factor: 0.0254 },
  ft: { base: 'm', factor: 0.3048 },
  W: { base: 'W', factor: 1 },
  kW: { base: 'W', factor: 1000 },
  Wh: { base: 'J', factor: 3600 },
  kWh: { base: 'J', factor: 3_600_000 },
  J: { base: 'J', factor: 1 },
  rpm: { base: 'Hz', factor: 1 / 60 },
  Hz: { base: 'Hz', factor: 1 },
  '%': { base: 'ratio', factor: 0.01 },
  ratio: { base: 'ratio', factor: 1 },
};

export const knownUnits = Object.keys(units);

/** A function converting a number from one unit to another; throws naming what does not fit. */
export function converter(from: string, to: string): (x: number) => number {
  const a = units[from];
  const b = units[to];
  if (!a) throw new Error(`unknown unit "${from}" (known: ${knownUnits.join(', ')})`);
  if (!b) throw new Error(`unknown unit "${to}" (known: ${knownUnits.join(', ')})`);
  if (a.base !== b.base) throw new Error(`cannot convert ${from} to ${to}`);
  const scale = a.factor / b.factor;
  const shift = ((a.offset ?? 0) - (b.offset ?? 0)) / b.factor;
  // 12 significant digits: 100 °C is 212 °F, not 211.99999999999997.
  return (x) => Number((x * scale + shift).toPrecision(12));
}
