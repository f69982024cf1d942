import type { RuleMessage } from '../rules/message.js';
import { WindowOperator, type LateEvent, type WindowResult } from './window-operator.js';
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
  readonly lateEvents: LateEvent[] = [];
  lateCount = 0;

  constructor(private readonly outputs: WindowOutputs, private readonly now: () => number = Date.now) {}

  handle(rule: string, node: string, window: CompiledWindowNode, message: RuleMessage): void {
    const key = `${rule}/${node}`;
    let entry = this.operators.get(key);
    if (!entry || entry.fingerprint !== window.fingerprint) {
      entry = { fingerprint: window.fingerprint, operator: new WindowOperator(window.job, (r) => this.outputs.result(r), (e) => this.onLate(e)) };
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
