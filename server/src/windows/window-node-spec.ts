import { parseDuration } from '../rules/duration.js';
import type { RuleMessage } from '../rules/message.js';
import type { AggregateOp } from './aggregates.js';
import type { AggregateSpec, WindowJobSpec, WindowKind } from './window-operator.js';
import { defaultRuleLimits, type RuleLimits } from '../rules/rule-limits.js';

/** The server's bounds on window nodes (rule-limits.ts). */
export type WindowLimits = Pick<RuleLimits, 'maxWindowsPerEvent' | 'maxOpenWindows' | 'maxWindowGroups'>;

/** A setting of a window node that does not fit; `field` is its path under `window` ('' for the window as a whole). */
export class WindowSettingError extends Error {
  override readonly name = 'WindowSettingError';
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

/** A `window` node's `window` settings, as written in a rule (rules/schema.json: windowSpec). */
export interface WindowNodeSettings {
  kind: 'tumbling' | 'sliding' | 'session';
  size?: string;
  slide?: string;
  gap?: string;
  groupBy?: 'device' | { attribute: string } | { field: string };
  aggregates?: Record<string, { op: AggregateOp; field?: string }>;
  fields?: string[];
  ops?: AggregateOp[];
  outOfOrderness?: string;
  allowedLateness?: string;
  idleTimeout?: string;
  early?: string;
  maxOpenWindows?: number;
}

export const windowDefaults = {
  outOfOrderness: '5s',
  allowedLateness: '0s',
  idleTimeout: '30s',
} as const;

/** A window node compiled: the operator's settings and how to find a message's group. */
export interface CompiledWindowNode {
  job: WindowJobSpec;
  /** The settings as written, to tell whether a reloaded rule changed this window. */
  fingerprint: string;
  groupOf(message: RuleMessage): string;
}

/** Settings → operator spec; throws WindowSettingError naming the setting that does not fit. */
export function compileWindowNode(rule: string, node: string, s: WindowNodeSettings, limits: WindowLimits = defaultRuleLimits): CompiledWindowNode {
  const window: WindowKind = s.kind === 'session'
    ? { kind: 'session', gap: positive(s.gap!, 'gap') }
    : s.kind === 'sliding'
      ? { kind: 'sliding', size: positive(s.size!, 'size'), slide: positive(s.slide!, 'slide') }
      : { kind: 'tumbling', size: positive(s.size!, 'size') };
  if (window.kind === 'sliding') {
    if (window.slide > window.size) throw new WindowSettingError('slide', 'must not be longer than size');
    // Each event is added to every window that holds it: size / slide of them, all at once.
    const perEvent = Math.ceil(window.size / window.slide);
    if (perEvent > limits.maxWindowsPerEvent) {
      throw new WindowSettingError('slide', `puts each event into ${perEvent} windows (size / slide), over the limit of ${limits.maxWindowsPerEvent}; make the slide at least ${Math.ceil(window.size / limits.maxWindowsPerEvent)} ms`);
    }
  }
  const aggregates: AggregateSpec[] = Object.entries(s.aggregates ?? {}).map(([name, a]) => ({ name, op: a.op, ...(a.field ? { field: a.field } : {}) }));
  if (s.fields || s.ops) {
    if (!s.fields || !s.ops) throw new WindowSettingError(s.fields ? 'ops' : 'fields', 'fields and ops go together');
    for (const field of s.fields) for (const op of s.ops) aggregates.push({ name: `${op}_${field}`, op, field });
  }
  if (aggregates.length === 0) throw new WindowSettingError('', 'give aggregates, or fields and ops');
  for (const a of aggregates) if (a.op !== 'count' && !a.field) throw new WindowSettingError(`aggregates.${a.name}`, `${a.op} needs a field`);
  if (s.maxOpenWindows !== undefined && s.maxOpenWindows > limits.maxOpenWindows) {
    throw new WindowSettingError('maxOpenWindows', `must be at most ${limits.maxOpenWindows} on this server`);
  }
  const job: WindowJobSpec = {
    rule: `${rule}/${node}`,
    window,
    aggregates,
    outOfOrdernessMs: parseDuration(s.outOfOrderness ?? windowDefaults.outOfOrderness),
    allowedLatenessMs: parseDuration(s.allowedLateness ?? windowDefaults.allowedLateness),
    idleTimeoutMs: parseDuration(s.idleTimeout ?? windowDefaults.idleTimeout),
    earlyEveryMs: s.early ? parseDuration(s.early) : 0,
    maxOpenWindows: s.maxOpenWindows ?? limits.maxOpenWindows,
    maxGroups: limits.maxWindowGroups,
  };
  const groupBy = s.groupBy ?? 'device';
  const groupOf = groupBy === 'device'
    ? (m: RuleMessage) => m.deviceId
    : 'attribute' in groupBy
      ? (m: RuleMessage) => String(m.device.attributes[groupBy.attribute] ?? '(none)')
      : (m: RuleMessage) => String(m.values[groupBy.field] ?? m.metadata[groupBy.field] ?? '(none)');
  return { job, fingerprint: JSON.stringify(s), groupOf };
}

function positive(text: string, field: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new WindowSettingError(field, 'must be longer than 0');
  return ms;
}
