import { redactUrl, redactUrlIn } from '../redact.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { Db } from '../storage/database.js';

export interface OutboxStats {
  delivered: number;
  failedAttempts: number;
  pending: number;
  /** Attempts in flight now (at most maxInFlightPerTarget per webhook URL). */
  inFlight: number;
}

/** Notifications in flight to one webhook URL at most; the others wait in the table, none is dropped. */
export const DEFAULT_ALARM_WEBHOOK_MAX_IN_FLIGHT_PER_TARGET = 4;
/** How long one delivery attempt waits for its answer before it counts as failed (and is retried with backoff). */
export const DEFAULT_ALARM_WEBHOOK_TIMEOUT_MS = 10_000;

export interface AlarmWebhookLimits {
  maxInFlightPerTarget: number;
  timeoutMs: number;
}

/** One notification as the due query reads it. */
interface QueuedNotification {
  id: string;
  alarmId: string;
  url: string;
  payload: string;
  attempts: number;
}

/**
 * Webhook notifications about alarms, durable: a notification is a row written in the same
 * transaction as the alarm change, and stays until its endpoint answered 2xx — across restarts,
 * retried with exponential backoff. At-least-once: each carries its `id` (also sent as the
 * `Idempotency-Key` header, the same on every attempt) for the receiver to drop duplicates, and
 * `seq`, its number among its alarm's notifications (1, 2, 3…).
 *
 * Per alarm, in order: only the oldest undelivered notification of an alarm (its queue's head) is
 * sent; the next one waits for it to be accepted, whatever its own time. Backoff belongs to the
 * head. Heads are found per URL through an index of heads only, so a backlog behind a head costs
 * nothing per tick, and one alarm's failing head holds up no other alarm.
 *
 * Per webhook URL at most `maxInFlightPerTarget` attempts are in flight, each ending after
 * `timeoutMs`: an endpoint that never answers holds a few sockets, and its notifications wait in
 * the table (never dropped) without holding up other endpoints'.
 */
export class AlarmOutbox {
  readonly stats: OutboxStats = { delivered: 0, failedAttempts: 0, pending: 0, inFlight: 0 };
  private readonly s;
  private timer: NodeJS.Timeout | undefined;
  private readonly limits: AlarmWebhookLimits;
  /** Ids of the rows being delivered now, per URL. */
  private readonly inFlight = new Map<string, Set<string>>();
  private readonly stopping = new AbortController();
  private readonly queue: (id: string, alarmId: string, url: string, body: Record<string, unknown>) => void;
  private readonly markDelivered: (row: QueuedNotification) => void;

  constructor(db: Db, private readonly logger: Logger, private readonly retry = { firstMs: 500, maxMs: 30_000 }, private readonly now: () => number = Date.now,
    limits: Partial<AlarmWebhookLimits> = {}) {
    this.limits = { maxInFlightPerTarget: DEFAULT_ALARM_WEBHOOK_MAX_IN_FLIGHT_PER_TARGET, timeoutMs: DEFAULT_ALARM_WEBHOOK_TIMEOUT_MS, ...limits };
    const heads = 'delivered_at IS NULL AND head = 1'; // the condition of the alarm_outbox_heads index
    this.s = {
      nextSeq: db.prepare('SELECT coalesce(max(seq), 0) + 1 FROM alarm_outbox WHERE alarm_id = ?').pluck(),
      // The new row heads its alarm's queue when nothing of that alarm waits before it.
      insert: db.prepare(`INSERT INTO alarm_outbox (id, alarm_id, seq, head, url, payload, next_at)
        VALUES (@id, @alarmId, @seq, NOT EXISTS (SELECT 1 FROM alarm_outbox WHERE alarm_id = @alarmId AND delivered_at IS NULL), @url, @payload, @now)`),
      // The URLs that have heads, one index seek each (a skip scan): webhook URLs come from rules, so there are few.
      urls: db.prepare(`WITH RECURSIVE u(url) AS (
          SELECT (SELECT min(url) FROM alarm_outbox WHERE ${heads})
          UNION ALL SELECT (SELECT min(url) FROM alarm_outbox WHERE ${heads} AND url > u.url) FROM u WHERE u.url IS NOT NULL)
        SELECT url FROM u WHERE url IS NOT NULL`).pluck(),
      // One URL's due heads, leaving out those in flight: reads at most (in flight + limit) index entries.
      due: db.prepare(`SELECT id, alarm_id AS alarmId, url, payload, attempts FROM alarm_outbox
        WHERE url = ? AND ${heads} AND next_at <= ? AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY next_at LIMIT ?`),
      delivered: db.prepare('UPDATE alarm_outbox SET delivered_at = ?, attempts = attempts + 1, head = 0 WHERE id = ?'),
      // The alarm's next notification becomes its head, due now: its own next_at only ran while it waited.
      promoteNext: db.prepare(`UPDATE alarm_outbox SET head = 1, next_at = min(next_at, @now)
        WHERE id = (SELECT id FROM alarm_outbox WHERE alarm_id = @alarmId AND delivered_at IS NULL ORDER BY seq LIMIT 1)`),
      failed: db.prepare('UPDATE alarm_outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?'),
      pending: db.prepare('SELECT count(*) FROM alarm_outbox WHERE delivered_at IS NULL').pluck(),
    };
    // Inside the caller's transaction these are savepoints: the alarm change and its notification still commit together.
    this.queue = db.transaction((id: string, alarmId: string, url: string, body: Record<string, unknown>) => {
      const seq = this.s.nextSeq.get(alarmId) as number;
      this.s.insert.run({ id, alarmId, seq, url, payload: JSON.stringify({ id, seq, ...body }), now: this.now() });
    });
    this.markDelivered = db.transaction((row: QueuedNotification) => {
      const now = this.now();
      this.s.delivered.run(now, row.id);
      this.s.promoteNext.run({ now, alarmId: row.alarmId });
    });
  }

  /**
   * Queues a notification behind the alarm's earlier ones (call inside the transaction that
   * changes the alarm). Its payload is `{id, seq, ...body}`; returns the id.
   */
  add(alarmId: string, url: string, body: Record<string, unknown>): string {
    const id = randomUUID();
    this.queue(id, alarmId, url, body);
    return id;
  }

  start(everyMs = 250): void {
    this.timer = setInterval(() => void this.deliverDue(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    // Attempts in flight end now; their rows stay due and go out after the next start.
    this.stopping.abort();
  }

  /**
   * Starts the heads that are due, as far as each URL's in-flight bound allows, and resolves once
   * those attempts have ended. Called again meanwhile, it starts what has become due or free since.
   */
  async deliverDue(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const now = this.now();
    const started: Promise<void>[] = [];
    for (const url of this.s.urls.all() as string[]) {
      const busy = this.inFlight.get(url) ?? new Set<string>();
      const free = this.limits.maxInFlightPerTarget - busy.size;
      if (free <= 0) continue;
      for (const row of this.s.due.all(url, now, JSON.stringify([...busy]), free) as QueuedNotification[]) started.push(this.attempt(row));
    }
    await Promise.all(started);
    if (!this.stopping.signal.aborted) this.stats.pending = this.s.pending.get() as number;
  }

  /** Counts the row in flight for the length of one delivery attempt. */
  private async attempt(row: QueuedNotification): Promise<void> {
    const busy = this.inFlight.get(row.url) ?? new Set<string>();
    this.inFlight.set(row.url, busy.add(row.id));
    this.stats.inFlight++;
    try {
      await this.deliver(row);
    } catch (err) {
      // Recording the answer failed (the database is busy or closing): the row stays as it was and is sent again.
      this.logger.error({ err, url: redactUrl(row.url) }, 'alarm notification: could not record the attempt; it will be sent again');
    } finally {
      busy.delete(row.id);
      if (busy.size === 0) this.inFlight.delete(row.url);
      this.stats.inFlight--;
    }
  }

  /** One attempt at one row: marked delivered on 2xx (its alarm's next becomes the head), else due again after its backoff. */
  private async deliver(row: QueuedNotification): Promise<void> {
    const problem = await this.post(row);
    if (this.stopping.signal.aborted) return; // the database may be closing: sent again after the restart (ids dedupe)
    if (problem === undefined) {
      this.markDelivered(row);
      this.stats.delivered++;
      return;
    }
    this.stats.failedAttempts++;
    const delay = Math.min(this.retry.maxMs, this.retry.firstMs * 2 ** row.attempts);
    this.s.failed.run(this.now() + delay, problem, row.id);
    if (row.attempts === 0) this.logger.warn({ url: redactUrl(row.url), problem }, `alarm notification not delivered (${problem}); retrying with backoff`);
  }

  /** POSTs the notification; resolves to what went wrong, or undefined when it was accepted (2xx). */
  private async post(row: QueuedNotification): Promise<string | undefined> {
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(this.limits.timeoutMs), this.stopping.signal]);
      const headers = { 'content-type': 'application/json', 'idempotency-key': row.id };
      const res = await fetch(row.url, { method: 'POST', headers, body: row.payload, signal });
      await res.body?.cancel();
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      return (err as Error).name === 'TimeoutError' ? `no answer within ${this.limits.timeoutMs} ms` : redactUrlIn((err as Error).message, row.url);
    }
  }
}
