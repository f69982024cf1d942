import { randomUUID } from 'node:crypto';
import { conflict, notFound } from '../errors.js';
import type { Db } from '../storage/database.js';

export const severities = ['CRITICAL', 'MAJOR', 'MINOR', 'WARNING', 'INDETERMINATE'] as const;
export type Severity = (typeof severities)[number];
export type AlarmStatus = 'ACTIVE_UNACK' | 'ACTIVE_ACK' | 'CLEARED_UNACK' | 'CLEARED_ACK';
export const statuses: readonly AlarmStatus[] = ['ACTIVE_UNACK', 'ACTIVE_ACK', 'CLEARED_UNACK', 'CLEARED_ACK'];

export interface Alarm {
  id: string;
  type: string;
  /** The device id, or the group of a window result. */
  originator: string;
  rule: string;
  severity: Severity;
  status: AlarmStatus;
  startTs: number;
  lastTs: number;
  ackTs: number | null;
  clearTs: number | null;
  /** Triggers while active, the first included. */
  count: number;
  details: Record<string, unknown>;
  /** Where notifications about this alarm are POSTed, if anywhere. */
  webhook: string | null;
}

/** What changed, for notifications: created, escalated (severity went up), updated, acknowledged, cleared. */
export type AlarmChange = 'created' | 'escalated' | 'updated' | 'acknowledged' | 'cleared';

export interface AlarmQuery {
  status?: AlarmStatus;
  device?: string;
  severity?: Severity;
  from: number;
  to: number;
  limit: number;
}

interface Row {
  id: string; type: string; originator: string; rule: string; severity: Severity; status: AlarmStatus;
  start_ts: number; last_ts: number; ack_ts: number | null; clear_ts: number | null; count: number; details: string; webhook: string | null;
}

const rank = (s: Severity) => severities.length - severities.indexOf(s);

/** The more severe of two. */
export function higherSeverity(a: Severity, b: Severity): Severity {
  return rank(b) > rank(a) ? b : a;
}

/** What raises or updates an alarm: a create condition that holds (alarm-service.ts). */
export interface AlarmTrigger {
  type: string;
  originator: string;
  rule: string;
  severity: Severity;
  /** When the condition was complete (its `times` and `for` met): a new alarm's startTs. */
  startTs: number;
  /** The time of the trigger: the message's, or the due time of a `for` raised on the timer. */
  ts: number;
  details: Record<string, unknown>;
  webhook: string | null;
}

/**
 * Alarms in SQLite and their lifecycle: ACTIVE_UNACK → ACTIVE_ACK (ack) → CLEARED_* (clear), or
 * cleared first and acknowledged after. A trigger while an alarm of the same type is open for the
 * same originator updates it (count, last time, details; severity only up, never down, as in
 * ThingsBoard) instead of making another. A trigger reads the open alarm and writes it back in one
 * IMMEDIATE transaction (a savepoint inside the caller's), so two writers on the same file take
 * turns: the second one updates the alarm the first one made, and no count is lost; the unique
 * index on open alarms makes a second one impossible even for a writer that skipped the check.
 */
export class AlarmStore {
  private readonly s;
  private readonly serially: <T>(fn: () => T) => T;

  constructor(private readonly db: Db) {
    const run = db.transaction((fn: () => unknown) => fn());
    this.serially = <T>(fn: () => T): T => run.immediate(fn) as T;
    this.s = {
      open: db.prepare('SELECT * FROM alarms WHERE originator = ? AND type = ? AND cleared = 0'),
      byId: db.prepare('SELECT * FROM alarms WHERE id = ?'),
      insert: db.prepare(`INSERT INTO alarms (id, type, originator, rule, severity, status, cleared, start_ts, last_ts, count, details, webhook)
        VALUES (@id, @type, @originator, @rule, @severity, @status, 0, @startTs, @lastTs, @count, @details, @webhook)`),
      update: db.prepare('UPDATE alarms SET severity = @severity, last_ts = @lastTs, count = @count, details = @details WHERE id = @id'),
      setStatus: db.prepare('UPDATE alarms SET status = @status, cleared = @cleared, ack_ts = @ackTs, clear_ts = @clearTs WHERE id = @id'),
      query: db.prepare(`SELECT * FROM alarms WHERE (@status IS NULL OR status = @status) AND (@device IS NULL OR originator = @device)
        AND (@severity IS NULL OR severity = @severity) AND start_ts >= @from AND start_ts <= @to ORDER BY start_ts DESC LIMIT @limit`),
    };
  }

  /** Raises (or updates) the open alarm of this type for this originator. */
  trigger(input: AlarmTrigger): { alarm: Alarm; change: AlarmChange } {
    return this.serially(() => this.triggerNow(input));
  }

  private triggerNow(input: AlarmTrigger): { alarm: Alarm; change: AlarmChange } {
    const open = this.s.open.get(input.originator, input.type) as Row | undefined;
    if (!open) {
      const alarm: Alarm = {
        id: randomUUID(), type: input.type, originator: input.originator, rule: input.rule, severity: input.severity, status: 'ACTIVE_UNACK',
        startTs: input.startTs, lastTs: Math.max(input.startTs, input.ts), ackTs: null, clearTs: null, count: 1, details: input.details, webhook: input.webhook,
      };
      this.s.insert.run({ ...alarm, details: JSON.stringify(alarm.details) });
      return { alarm, change: 'created' };
    }
    const alarm = toAlarm(open);
    const escalated = rank(input.severity) > rank(alarm.severity);
    alarm.severity = escalated ? input.severity : alarm.severity;
    alarm.lastTs = Math.max(alarm.lastTs, input.ts);
    alarm.count++;
    alarm.details = input.details;
    this.s.update.run({ id: alarm.id, severity: alarm.severity, lastTs: alarm.lastTs, count: alarm.count, details: JSON.stringify(alarm.details) });
    return { alarm, change: escalated ? 'escalated' : 'updated' };
  }

  /** Clears the open alarm of this type for this originator, if there is one (the clear condition). */
  clearOpen(originator: string, type: string, ts: number): Alarm | undefined {
    const open = this.s.open.get(originator, type) as Row | undefined;
    return open ? this.setCleared(toAlarm(open), ts) : undefined;
  }

  get(id: string): Alarm {
    const row = this.s.byId.get(id) as Row | undefined;
    if (!row) throw notFound(`no alarm "${id}"`);
    return toAlarm(row);
  }

  acknowledge(id: string, ts: number): Alarm {
    const alarm = this.get(id);
    if (alarm.status === 'ACTIVE_ACK' || alarm.status === 'CLEARED_ACK') throw conflict(`alarm "${id}" is already acknowledged (${alarm.status})`);
    alarm.status = alarm.status === 'ACTIVE_UNACK' ? 'ACTIVE_ACK' : 'CLEARED_ACK';
    alarm.ackTs = ts;
    this.s.setStatus.run({ id, status: alarm.status, cleared: alarm.clearTs === null ? 0 : 1, ackTs: alarm.ackTs, clearTs: alarm.clearTs });
    return alarm;
  }

  clear(id: string, ts: number): Alarm {
    const alarm = this.get(id);
    if (alarm.clearTs !== null) throw conflict(`alarm "${id}" is already cleared (${alarm.status})`);
    return this.setCleared(alarm, ts);
  }

  query(q: AlarmQuery): Alarm[] {
    return (this.s.query.all({ status: q.status ?? null, device: q.device ?? null, severity: q.severity ?? null, from: q.from, to: q.to, limit: q.limit }) as Row[]).map(toAlarm);
  }

  private setCleared(alarm: Alarm, ts: number): Alarm {
    alarm.status = alarm.ackTs === null ? 'CLEARED_UNACK' : 'CLEARED_ACK';
    alarm.clearTs = ts;
    this.s.setStatus.run({ id: alarm.id, status: alarm.status, cleared: 1, ackTs: alarm.ackTs, clearTs: ts });
    return alarm;
  }
}

function toAlarm(r: Row): Alarm {
  return {
    id: r.id, type: r.type, originator: r.originator, rule: r.rule, severity: r.severity, status: r.status,
    startTs: r.start_ts, lastTs: r.last_ts, ackTs: r.ack_ts, clearTs: r.clear_ts, count: r.count, details: JSON.parse(r.details) as Record<string, unknown>,
    webhook: r.webhook,
  };
}
