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

/**
 * Webhook notifications about alarms, durable: a notification is a row written in the same
 * transaction as the alarm change, and stays until its endpoint answered 2xx — across restarts,
 * retried with exponential backoff. At-least-once: each carries its `id` for the receiver to dedupe.
 * Per webhook URL at most `maxInFlightPerTarget` attempts are in flight, each ending after
 * `timeoutMs`: an endpoint that never answers holds a few sockets, and its notifications wait in
 * the table (never dropped) without holding up other endpoints'.
 */
export class AlarmOutbox {
  readonly stats: OutboxStats = { delivered: 0, failedAttempts: 0, pending: 0, inFlight: 0 };
  private readonly s;
  private timer: NodeJS.Timeout | undefined;
  private readonly limits: AlarmWebhookLimits;
  /** Rows being delivered now, and how many per URL. */
  private readonly inFlight = new Set<string>();
  private readonly perTarget = new Map<string, number>();
  private readonly stopping = new AbortController();

  constructor(db: Db, private readonly logger: Logger, private readonly retry = { firstMs: 500, maxMs: 30_000 }, private readonly now: () => number = Date.now,
    limits: Partial<AlarmWebhookLimits> = {}) {
    this.limits = { maxInFlightPerTarget: DEFAULT_ALARM_WEBHOOK_MAX_IN_FLIGHT_PER_TARGET, timeoutMs: DEFAULT_ALARM_WEBHOOK_TIMEOUT_MS, ...limits };
    this.s = {
      insert: db.prepare('INSERT INTO alarm_outbox (id, alarm_id, url, payload, next_at) VALUES (?, ?, ?, ?, ?)'),
      // Rows in flight and URLs with no free slot are left out, so that one endpoint's backlog never fills the batch.
      due: db.prepare(`SELECT id, url, payload, attempts FROM alarm_outbox WHERE delivered_at IS NULL AND next_at <= ?
        AND id NOT IN (SELECT value FROM json_each(?)) AND url NOT IN (SELECT value FROM json_each(?)) ORDER BY next_at LIMIT 100`),
      delivered: db.prepare('UPDATE alarm_outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?'),
      failed: db.prepare('UPDATE alarm_outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?'),
      pending: db.prepare('SELECT count(*) FROM alarm_outbox WHERE delivered_at IS NULL').pluck(),
    };
  }

  /** Queues a notification (call inside the transaction that changes the alarm). */
  add(alarmId: string, url: string, body: Record<string, unknown>): string {
    const id = randomUUID();
    this.s.insert.run(id, alarmId, url, JSON.stringify({ id, ...body }), this.now());
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
   * Starts what is due, as far as each URL's in-flight bound allows, and resolves once those
   * attempts have ended. Called again meanwhile, it starts what has become due or free since.
   */
  async deliverDue(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const full = [...this.perTarget].filter(([, n]) => n >= this.limits.maxInFlightPerTarget).map(([url]) => url);
    const rows = this.s.due.all(this.now(), JSON.stringify([...this.inFlight]), JSON.stringify(full)) as { id: string; url: string; payload: string; attempts: number }[];
    const started: Promise<void>[] = [];
    for (const row of rows) {
      const n = this.perTarget.get(row.url) ?? 0;
      if (n >= this.limits.maxInFlightPerTarget) continue;
      this.perTarget.set(row.url, n + 1);
      this.inFlight.add(row.id);
      this.stats.inFlight++;
      started.push(this.deliver(row).finally(() => {
        this.inFlight.delete(row.id);
        this.stats.inFlight--;
        const left = this.perTarget.get(row.url)! - 1;
        if (left === 0) this.perTarget.delete(row.url);
        else this.perTarget.set(row.url, left);
      }));
    }
    await Promise.all(started);
    if (!this.stopping.signal.aborted) this.stats.pending = this.s.pending.get() as number;
  }

  /** One attempt at one row: marked delivered on 2xx, else due again after its backoff. */
  private async deliver(row: { id: string; url: string; payload: string; attempts: number }): Promise<void> {
    let problem: string;
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(this.limits.timeoutMs), this.stopping.signal]);
      const res = await fetch(row.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: row.payload, signal });
      await res.body?.cancel();
      if (res.ok) {
        if (this.stopping.signal.aborted) return; // the database may be closing: sent again after the restart (ids dedupe)
        this.s.delivered.run(this.now(), row.id);
        this.stats.delivered++;
        return;
      }
      problem = `HTTP ${res.status}`;
    } catch (err) {
      problem = (err as Error).name === 'TimeoutError' ? `no answer within ${this.limits.timeoutMs} ms` : redactUrlIn((err as Error).message, row.url);
    }
    if (this.stopping.signal.aborted) return;
    this.stats.failedAttempts++;
    const delay = Math.min(this.retry.maxMs, this.retry.firstMs * 2 ** row.attempts);
    this.s.failed.run(this.now() + delay, problem, row.id);
    if (row.attempts === 0) this.logger.warn({ url: redactUrl(row.url), problem }, `alarm notification not delivered (${problem}); retrying with backoff`);
  }
}
