import type { Logger } from '../logger.js';
import type { RuleMessage } from '../rules/message.js';
import type { Db } from '../storage/database.js';
import type { AlarmOutbox } from './alarm-outbox.js';
import { AlarmStore, type Alarm, type AlarmChange, type Severity } from './alarm-store.js';
import type { CompiledAlarmNode } from './alarm-node-spec.js';

export interface AlarmListeners {
  /** After every change (socket.io). */
  changed(alarm: Alarm, change: AlarmChange): void;
  /** On create, escalate and clear (MQTT `sluice/alarms/<type>`). */
  notify(alarm: Alarm, change: AlarmChange): void;
}

/**
 * Turns what alarm nodes see into alarm changes: the create condition (held `for` a while and/or
 * `times` in a row), escalations, the clear condition. Condition counters are written through to
 * SQLite so a restart does not forget a streak. Each change, its counters and its webhook
 * notification are one transaction.
 */
export class AlarmService {
  readonly store: AlarmStore;
  private readonly conditions = new Map<string, { since: number; times: number }>();
  private readonly s;
  private readonly transaction: <T>(fn: () => T) => T;

  constructor(db: Db, private readonly outbox: AlarmOutbox, private readonly listeners: AlarmListeners, private readonly logger: Logger, private readonly now: () => number = Date.now) {
    this.store = new AlarmStore(db);
    this.s = {
      all: db.prepare('SELECT key, since, times FROM alarm_conditions'),
      upsert: db.prepare('INSERT INTO alarm_conditions (key, since, times) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET since = excluded.since, times = excluded.times'),
      delete: db.prepare('DELETE FROM alarm_conditions WHERE key = ?'),
    };
    for (const r of this.s.all.all() as { key: string; since: number; times: number }[]) this.conditions.set(r.key, { since: r.since, times: r.times });
    // One transaction function, made once: evaluate() runs per message an alarm node sees.
    // IMMEDIATE: take the write lock first. A deferred transaction that reads, then writes after
    // the storage worker committed, fails at once with SQLITE_BUSY_SNAPSHOT instead of waiting.
    const run = db.transaction((fn: () => unknown) => fn());
    this.transaction = <T>(fn: () => T): T => run.immediate(fn) as T;
  }

  /** An alarm node saw a message. */
  evaluate(rule: string, node: string, alarm: CompiledAlarmNode, message: RuleMessage): void {
    const originator = alarm.originatorOf(message);
    const key = `${rule}/${node}/${originator}`;
    const changes: { alarm: Alarm; change: AlarmChange }[] = [];
    this.transaction(() => {
      if (alarm.create(message) === true) {
        const c = this.conditions.get(key) ?? { since: message.ts, times: 0 };
        c.times++;
        if (message.ts < c.since) c.since = message.ts;
        this.conditions.set(key, c);
        this.s.upsert.run(key, c.since, c.times);
        if (c.times >= alarm.times && message.ts - c.since >= alarm.forMs) {
          changes.push(this.store.trigger({
            type: alarm.type, originator, rule, severity: alarm.severityOf(message), ts: message.ts,
            details: alarm.detailsOf(message), webhook: alarm.webhook,
          }));
        }
      } else {
        if (this.conditions.delete(key)) this.s.delete.run(key);
        if (alarm.clear?.(message) === true) {
          const cleared = this.store.clearOpen(originator, alarm.type, message.ts);
          if (cleared) changes.push({ alarm: cleared, change: 'cleared' });
        }
      }
      for (const c of changes) this.queueWebhook(c.alarm, c.change);
    });
    for (const c of changes) this.announce(c.alarm, c.change);
  }

  acknowledge(id: string): Alarm {
    const alarm = this.store.acknowledge(id, this.now());
    this.announce(alarm, 'acknowledged');
    return alarm;
  }

  clear(id: string): Alarm {
    const alarm = this.transaction(() => {
      const a = this.store.clear(id, this.now());
      this.queueWebhook(a, 'cleared');
      return a;
    });
    this.announce(alarm, 'cleared');
    return alarm;
  }

  private queueWebhook(alarm: Alarm, change: AlarmChange): void {
    if (alarm.webhook && (change === 'created' || change === 'escalated' || change === 'cleared')) {
      this.outbox.add(alarm.id, alarm.webhook, { change, alarm: publicAlarm(alarm) });
    }
  }

  private announce(alarm: Alarm, change: AlarmChange): void {
    this.listeners.changed(alarm, change);
    if (change === 'created' || change === 'escalated' || change === 'cleared') this.listeners.notify(alarm, change);
    this.logger.info({ alarm: alarm.id, type: alarm.type, originator: alarm.originator, severity: alarm.severity, change }, `alarm ${change}: ${alarm.type}`);
  }
}

/** An alarm as the API and notifications show it. */
export function publicAlarm(a: Alarm): Omit<Alarm, 'webhook'> {
  const { webhook: _webhook, ...rest } = a;
  return rest;
}
