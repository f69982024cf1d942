import type { RuleMessage } from './message.js';
import { Route } from './node-kind.js';
import type { CompiledRule, LimitListener } from './compiler.js';
import { RuleLimitError, type RuleLimitName } from './rule-limits.js';
import type { RuleInput } from './rule-schema.js';

export interface NodeStats {
  id: string;
  type: string;
  in: number;
  out: number;
  dropped: number;
  errors: number;
  /** Per limit (rule-limits.ts), the times this node hit it: failed messages, or keys forgotten early. */
  limited: Partial<Record<RuleLimitName, number>>;
}

export interface RuleErrorRecord {
  at: number;
  node: string;
  deviceId: string;
  ts: number;
  offset: number;
  error: string;
}

export interface TraceRecord {
  at: number;
  deviceId: string;
  ts: number;
  in: { values: RuleMessage['values']; metadata: RuleMessage['metadata'] };
  outcome: 'out' | 'dropped' | 'error';
  out?: { values: RuleMessage['values']; metadata: RuleMessage['metadata'] };
  to?: string;
  error?: string;
}

const MAX_ERRORS = 50;
const MAX_STEPS = 1000;

/** A loaded rule: its compiled chain and what it did since it was loaded. */
class RuleState {
  readonly stats: NodeStats[];
  readonly errors: RuleErrorRecord[] = [];
  traceSize = 0;
  traces: TraceRecord[][];

  constructor(readonly rule: CompiledRule) {
    // `limited` is the compiled node's own counter, which its run function counts in too.
    this.stats = rule.nodes.map((n) => ({ id: n.id, type: n.type, in: 0, out: 0, dropped: 0, errors: 0, limited: n.limited }));
    this.traces = rule.nodes.map(() => []);
  }
}

/**
 * Runs telemetry messages through the enabled rules. The set of rules is an immutable snapshot,
 * replaced as a whole when a rule changes (hot reload): a batch of messages runs against the
 * snapshot it started with, so a message sees the old or the new version of a rule, never a mix.
 * A node that throws counts an error, records it, and the message stops there; the next message
 * goes on as usual. A node that throws RuleLimitError (over an evaluation budget, a full window)
 * is also counted under its limit and reported to `onLimit` (which logs, rate-limited).
 */
export class RuleEngine {
  private snapshot: readonly RuleState[] = [];
  private readonly byId = new Map<string, RuleState>();
  private changes = 0;

  constructor(private readonly clock: () => number = Date.now) {}

  /** Adds or replaces a rule; its counters start from zero. */
  put(rule: CompiledRule): void {
    const state = new RuleState(rule);
    const old = this.byId.get(rule.id);
    if (old) state.traceSize = old.traceSize;
    this.byId.set(rule.id, state);
    this.publish();
  }

  remove(id: string): boolean {
    const had = this.byId.delete(id);
    if (had) this.publish();
    return had;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  rules(): CompiledRule[] {
    return [...this.byId.values()].map((s) => s.rule);
  }

  get(id: string): CompiledRule | undefined {
    return this.byId.get(id)?.rule;
  }

  stats(id: string): { nodes: NodeStats[]; errors: RuleErrorRecord[]; trace: { size: number; nodes: Record<string, TraceRecord[]> } } | undefined {
    const s = this.byId.get(id);
    if (!s) return undefined;
    return {
      nodes: s.stats.map((n) => ({ ...n, limited: { ...n.limited } })),
      errors: [...s.errors],
      trace: { size: s.traceSize, nodes: Object.fromEntries(s.rule.nodes.map((n, i) => [n.id, [...s.traces[i]!]])) },
    };
  }

  /** Keeps the last `size` messages in and out of each node of the rule (0 turns tracing off). */
  setTrace(id: string, size: number): boolean {
    const s = this.byId.get(id);
    if (!s) return false;
    s.traceSize = size;
    s.traces = s.rule.nodes.map(() => []);
    return true;
  }

  allStats(): { rule: string; nodes: NodeStats[] }[] {
    return [...this.byId.values()].map((s) => ({ rule: s.rule.id, nodes: s.stats }));
  }

  /** Moves on at every change of the rule set: what is cached from the rules is stale once it does. */
  get generation(): number {
    return this.changes;
  }

  hasEnabledRules(input: RuleInput = 'telemetry'): boolean {
    return this.snapshot.some((s) => s.rule.input === input);
  }

  /** Whether any enabled rule applies to the device: when none does, its messages need no parsing. */
  wantsDevice(device: RuleMessage['device'], input: RuleInput = 'telemetry'): boolean {
    for (const state of this.snapshot) if (state.rule.input === input && state.rule.appliesTo(device)) return true;
    return false;
  }

  /** Runs each message through every enabled rule that applies to its device. */
  process(messages: readonly RuleMessage[], input: RuleInput = 'telemetry'): void {
    const rules = this.snapshot.filter((s) => s.rule.input === input);
    if (rules.length === 0) return;
    const now = this.clock();
    for (const message of messages) {
      for (const state of rules) {
        if (state.rule.appliesTo(message.device)) this.run(state, message, now);
      }
    }
  }

  private run(state: RuleState, input: RuleMessage, now: number): void {
    const nodes = state.rule.nodes;
    const tracing = state.traceSize > 0;
    let i = 0;
    let message = input;
    for (let steps = 0; i >= 0 && i < nodes.length && steps < MAX_STEPS; steps++) {
      const node = nodes[i]!;
      const stats = state.stats[i]!;
      stats.in++;
      let out: RuleMessage | Route | null;
      try {
        out = node.run(message, now);
      } catch (err) {
        stats.errors++;
        const text = (err as Error).message.split('\n')[0]!;
        if (err instanceof RuleLimitError) {
          stats.limited[err.limit] = (stats.limited[err.limit] ?? 0) + 1;
          this.onLimit?.(state.rule.id, node.id, err.limit, text);
        }
        if (state.errors.length >= MAX_ERRORS) state.errors.shift();
        state.errors.push({ at: now, node: node.id, deviceId: message.deviceId, ts: message.ts, offset: message.offset, error: text });
        if (tracing) this.trace(state, i, { at: now, deviceId: message.deviceId, ts: message.ts, in: slim(message), outcome: 'error', error: text });
        return;
      }
      if (out === null) {
        stats.dropped++;
        if (tracing) this.trace(state, i, { at: now, deviceId: message.deviceId, ts: message.ts, in: slim(message), outcome: 'dropped' });
        return;
      }
      stats.out++;
      let nextIndex = node.next;
      let nextMessage: RuleMessage;
      if (out instanceof Route) {
        nextIndex = out.to;
        nextMessage = out.message;
      } else {
        nextMessage = out;
      }
      if (tracing) {
        this.trace(state, i, {
          at: now, deviceId: message.deviceId, ts: message.ts, in: slim(message), outcome: 'out', out: slim(nextMessage),
          to: nextIndex >= 0 ? nodes[nextIndex]!.id : undefined,
        });
      }
      message = nextMessage;
      i = nextIndex;
    }
  }

  private trace(state: RuleState, node: number, record: TraceRecord): void {
    const ring = state.traces[node]!;
    if (ring.length >= state.traceSize) ring.shift();
    ring.push(record);
  }

  /** Called when a node fails a message on a limit (RuleLimitError). */
  onLimit: LimitListener | undefined;

  /** Called after every change of the rule set (the window engine drops windows of removed rules). */
  onChange: (() => void) | undefined;

  private publish(): void {
    this.snapshot = [...this.byId.values()].filter((s) => s.rule.enabled);
    this.changes++;
    this.onChange?.();
  }
}

function slim(m: RuleMessage) {
  return { values: m.values, metadata: m.metadata };
}
