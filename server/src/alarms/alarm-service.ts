import type { Logger } from '../logger.js';
import type { RuleMessage } from '../rules/message.js';
import type { Db } from '../storage/database.js';
import { AlarmConditions, type Streak } from './alarm-conditions.js';
import type { AlarmOutbox } from './alarm-outbox.js';
import { AlarmPositions, positionOf } from './alarm-positions.js';
import { AlarmStore, type Alarm, type AlarmChange } from './alarm-store.js';
import { alarmFingerprint, type AlarmNodeSettings, type CompiledAlarmNode } from './alarm-node-spec.js';

export interface AlarmListeners {
  /** After every change (socket.io). */
  changed(alarm: Alarm, change: AlarmChange): void;
  /** On create, escalate and clear (MQTT `sluice/alarms/<type>`). */
  notify(alarm: Alarm, change: AlarmChange): void;
}

export interface AlarmServiceOptions {
  /** The server's clock: operators' ack and clear times, and when a `for` comes due. */
  now?: () => number;
  /**
   * The settings of an alarm node as the rules are now, if its rule is there and enabled: a `for`
   * that comes due on the timer raises only for a node that still has the settings it counted with.
   */
  alarmNode?: (rule: string, node: string) => AlarmNodeSettings | undefined;
  /** Streaks raised per timer tick at most; the rest wait for the next tick, earliest due first. */
  maxDuePerTick?: number;
}

/** How often the timer looks for `for` conditions that came due. */
export const ALARM_DUE_CHECK_MS = 1000;
/** Streaks the timer raises per tick at most, by default (a burst of due ones takes a few ticks, not one long pause). */
export const DEFAULT_MAX_DUE_PER_TICK = 500;

/**
 * Turns what alarm nodes see into alarm changes: the create condition (held `for` a while and/or
 * `times` in a row), escalations, the clear condition; and a timer that raises a `for` that came
 * due on the server's clock while its device sent nothing more.
 *
 * Each message's effects are applied once. Its streak, the alarm change, its webhook notification
 * and the message's position (alarm-positions.ts) are one transaction; a message at or before its
 * condition's position — re-read after a crash — is skipped. A timer raise has no position: it
 * takes the streak off the due list in its own transaction, so a restart cannot raise it again.
 */
export class AlarmService {
  readonly store: AlarmStore;
  private readonly conditions: AlarmConditions;
  private readonly positions: AlarmPositions;
  private readonly transaction: <T>(fn: () => T) => T;
  private readonly now: () => number;
  private readonly alarmNode: NonNullable<AlarmServiceOptions['alarmNode']>;
  private readonly maxDuePerTick: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(db: Db, private readonly outbox: AlarmOutbox, private readonly listeners: AlarmListeners, private readonly logger: Logger, options: AlarmServiceOptions = {}) {
    this.store = new AlarmStore(db);
    this.conditions = new AlarmConditions(db);
    this.positions = new AlarmPositions(db);
    this.now = options.now ?? Date.now;
    this.alarmNode = options.alarmNode ?? (() => undefined);
    this.maxDuePerTick = options.maxDuePerTick ?? DEFAULT_MAX_DUE_PER_TICK;
    // One transaction function, made once: evaluate() runs per message an alarm node sees.
    // IMMEDIATE: take the write lock first. A deferred transaction that reads, then writes after
    // the storage worker committed, fails at once with SQLITE_BUSY_SNAPSHOT instead of waiting.
    const run = db.transaction((fn: () => unknown) => fn());
    this.transaction = <T>(fn: () => T): T => run.immediate(fn) as T;
  }

  /** An alarm node saw a message. */
  evaluate(rule: string, node: string, alarm: CompiledAlarmNode, message: RuleMessage): void {
    // A window's late update is not another occurrence of it (alarm-positions.ts).
    if (alarm.input === 'windows' && message.metadata.update === true) return;
    const originator = alarm.originatorOf(message);
    const key = `${rule}/${node}/${originator}`;
    const holds = alarm.create(message);
    // As in ThingsBoard, the clear condition counts only while the create condition does not hold.
    const clears = !holds && alarm.clear !== undefined && alarm.clear(message);
    // Most messages change nothing: no streak to end, nothing to raise or clear — and no write lock to take.
    if (!holds && !clears && !this.conditions.has(key)) return;
    const at = positionOf(alarm.input, message);
    const changes: { alarm: Alarm; change: AlarmChange }[] = [];
    this.transaction(() => {
      if (this.positions.applied(key, at)) return;
      const streak = this.conditions.get(key);
      let changed = false;
      if (holds) {
        const s: Streak = streak ?? { rule, node, originator, type: alarm.type, since: message.ts, times: 0, met: false, dueAt: null, pending: null, fingerprint: null };
        s.times++;
        s.since = Math.min(s.since, message.ts);
        Object.assign(s, { rule, node, originator, type: alarm.type, fingerprint: alarm.fingerprint });
        const metAt = s.since + alarm.forMs;
        if (s.met || (s.times >= alarm.times && message.ts >= metAt)) {
          changes.push(this.store.trigger({
            type: alarm.type, originator, rule, severity: alarm.severityOf(message), startTs: alarm.forMs > 0 ? metAt : message.ts, ts: message.ts,
            details: alarm.detailsOf(message), webhook: alarm.webhook,
          }));
          s.met = true;
          s.dueAt = null;
          s.pending = null;
        } else if (s.times >= alarm.times) {
          // Only the duration is missing: the timer raises it unless a message comes first — once
          // what is left of it (in event time, from this message) has passed on the server's clock
          // since this message came. A device clock that is off, or old data sent late, then
          // neither raises at once nor waits for the device's clock to catch up.
          s.dueAt = this.now() + (metAt - message.ts);
          s.pending = { severity: alarm.severityOf(message), details: alarm.detailsOf(message), metAt };
        }
        this.conditions.put(key, s);
        changed = true;
      } else {
        changed = streak !== undefined && this.conditions.delete(key);
        if (clears) {
          const cleared = this.store.clearOpen(originator, alarm.type, message.ts);
          if (cleared) {
            this.conditions.deleteFor(originator, alarm.type);
            changes.push({ alarm: cleared, change: 'cleared' });
          }
          // A clear that found nothing open gets its position too: read again after a crash, it
          // would clear an alarm of that type another rule raised after it.
          changed = true;
        }
      }
      // Any other message that changed nothing needs no position: read again, it changes nothing
      // again (its own condition's later messages are past its position).
      if (changed) this.positions.record(key, at);
      for (const c of changes) this.queueWebhook(c.alarm, c.change);
    });
    for (const c of changes) this.announce(c.alarm, c.change);
  }

  /**
   * Raises the `for` conditions that came due on the server's clock with no message since — the
   * earliest due first, at most maxDuePerTick — and returns how many it looked at. The alarm
   * starts at its due time, with the severity and details of the streak's last message.
   */
  raiseDue(): number {
    const now = this.now();
    // Most ticks find nothing due: then no write lock is taken.
    if (this.conditions.due(now, 1).length === 0) return 0;
    const changes: { alarm: Alarm; change: AlarmChange }[] = [];
    let looked = 0;
    this.transaction(() => {
      const due = this.conditions.due(now, this.maxDuePerTick);
      looked = due.length;
      for (const s of due) {
        const settings = this.alarmNode(s.rule, s.node);
        // Its rule gone, disabled or changed: the streak waits for the node's next message.
        if (!settings || alarmFingerprint(settings) !== s.fingerprint || !s.pending) {
          this.conditions.notDue(s.key);
          continue;
        }
        this.conditions.raised(s.key);
        const change = this.store.trigger({
          type: settings.type, originator: s.originator, rule: s.rule, severity: s.pending.severity, startTs: s.pending.metAt ?? s.dueAt!, ts: s.pending.metAt ?? s.dueAt!,
          details: s.pending.details, webhook: settings.webhook ?? null,
        });
        this.queueWebhook(change.alarm, change.change);
        changes.push(change);
      }
    });
    for (const c of changes) this.announce(c.alarm, c.change);
    return looked;
  }

  /** Looks for due `for` conditions every `everyMs` (start it once the rules have read what the log held at start). */
  startDueChecks(everyMs = ALARM_DUE_CHECK_MS): void {
    if (this.stopped || this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.raiseDue();
      } catch (err) {
        this.logger.error({ err }, 'could not raise the alarms that came due; trying again');
      }
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  acknowledge(id: string): Alarm {
    const alarm = this.store.acknowledge(id, this.now());
    this.announce(alarm, 'acknowledged');
    return alarm;
  }

  /** An operator clears the alarm; as its clear condition would, that ends the streaks that raised it. */
  clear(id: string): Alarm {
    const alarm = this.transaction(() => {
      const a = this.store.clear(id, this.now());
      this.conditions.deleteFor(a.originator, a.type);
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
