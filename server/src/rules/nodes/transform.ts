import type { TelemetryValue } from '../../telemetry/payload.js';
import type { NodeKind } from '../node-kind.js';
import { converter } from '../units.js';

/**
 * `{"type": "transform", "keep": [...], "drop": [...], "rename": {"from": "to"},
 * "convert": {"key": {"from": "C", "to": "F"}}, "set": {"key": "<expression>"}}`, applied in that
 * order. A message left without values is dropped.
 */
export const transformNode: NodeKind = {
  type: 'transform',
  compile(spec, ctx) {
    const keep = spec.keep ? new Set(spec.keep as string[]) : undefined;
    const drop = new Set((spec.drop as string[] | undefined) ?? []);
    const rename = new Map(Object.entries((spec.rename as Record<string, string> | undefined) ?? {}));
    const convert = Object.entries((spec.convert as Record<string, { from: string; to: string }> | undefined) ?? {}).map(([key, c]) => {
      try {
        return [key, converter(c.from, c.to)] as const;
      } catch (err) {
        return ctx.fail(`convert.${key}`, (err as Error).message);
      }
    });
    const set = Object.entries((spec.set as Record<string, string> | undefined) ?? {})
      .map(([key, source]) => [key, ctx.expression(source, `set.${key}`)] as const);
    return (message) => {
      let values: Record<string, TelemetryValue> = {};
      for (const k in message.values) if ((!keep || keep.has(k)) && !drop.has(k)) values[k] = message.values[k]!;
      if (rename.size > 0) {
        const renamed: Record<string, TelemetryValue> = {};
        for (const k in values) renamed[rename.get(k) ?? k] = values[k]!;
        values = renamed;
      }
      for (const [key, f] of convert) {
        const v = values[key];
        if (typeof v === 'number') values[key] = f(v);
      }
      if (set.length > 0) {
        const current = { ...message, values };
        for (const [key, expression] of set) {
          const v = expression(current);
          if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') values[key] = v;
          else if (v !== null && typeof v === 'object' && !Array.isArray(v)) values[key] = v as Record<string, unknown>;
          else throw new Error(`set.${key}: the expression gave ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v}, not a number, boolean, string or map`);
        }
      }
      for (const _ in values) return { ...message, values };
      return null;
    };
  },
};
