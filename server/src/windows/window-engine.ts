import type { RuleMessage } from '../rules/message.js';
import { WindowOperator, type LateEvent, type OperatorSnapshot, type WindowResult } from './window-operator.js';

export interface EngineSnapshot {
  operators: [key: string, fingerprint: string, state: OperatorSnapshot][];
  lateCount: number;
}
import type { CompiledWindowNode } from './window-node-spec.js';

export interface WindowOutputs {
  result(r: WindowResult): void;
  late(e: LateEvent): void;
}

const MAX_LATE = 1000;

/**
 * Every window node's operator, by `<rule>/<node>`. A rule reloaded with the same window settings
 * keeps its windows; changed settings start them afresh. A timer calls tick() so that idle
 * partitions and early results move on without new events.
 */
export class WindowEngine {
  private readonly operators = new Map<string, { fingerprint: string; operator: WindowOperator }>();
  /** Restored state of operators not created yet: taken up when their node sees its first message. */
  private readonly restored = new Map<string, { fingerprint: string; state: OperatorSnapshot }>();
  readonly lateEvents: LateEvent[] = [];
  lateCount = 0;

  constructor(private readonly outputs: WindowOutputs, private readonly now: () => number = Date.now) {}

  handle(rule: string, node: string, window: CompiledWindowNode, message: RuleMessage): void {
    const key = `${rule}/${node}`;
    let entry = this.operators.get(key);
    if (!entry || entry.fingerprint !== window.fingerprint) {
      entry = { fingerprint: window.fingerprint, operator: new WindowOperator(window.job, (r) => this.outputs.result(r), (e) => this.onLate(e)) };
      const saved = this.restored.get(key);
      if (saved && saved.fingerprint === window.fingerprint) entry.operator.restore(saved.state);
      this.restored.delete(key);
      this.operators.set(key, entry);
    }
    entry.operator.process({ group: window.groupOf(message), ts: message.ts, partition: message.partition, values: message.values }, this.now());
  }

  tick(): void {
    const now = this.now();
    for (const { operator } of this.operators.values()) operator.advance(now);
  }

  /** Drops the windows of rules that no longer exist. */
  retainRules(ruleIds: ReadonlySet<string>): void {
    for (const key of this.operators.keys()) if (!ruleIds.has(key.slice(0, key.lastIndexOf('/')))) this.operators.delete(key);
  }

  snapshot(): EngineSnapshot {
    const operators: EngineSnapshot['operators'] = [...this.operators].map(([key, e]) => [key, e.fingerprint, e.operator.snapshot()]);
    for (const [key, r] of this.restored) operators.push([key, r.fingerprint, r.state]);
    return { operators, lateCount: this.lateCount };
  }

  restore(s: EngineSnapshot): void {
    this.operators.clear();
    this.restored.clear();
    for (const [key, fingerprint, state] of s.operators) this.restored.set(key, { fingerprint, state });
    this.lateCount = s.lateCount;
  }

  openWindows(): number {
    let n = 0;
    for (const { operator } of this.operators.values()) n += operator.openWindows;
    return n;
  }

  private onLate(e: LateEvent): void {
    this.lateCount++;
    if (this.lateEvents.length >= MAX_LATE) this.lateEvents.shift();
    this.lateEvents.push(e);
    this.outputs.late(e);
  }
}
