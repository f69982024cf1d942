import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { Db } from '../storage/database.js';

export interface OutboxStats {
  delivered: number;
  failedAttempts: number;
  pending: number;
}

/**
 * Webhook notifications about alarms, durable: a notification is a row written in the same
 * transaction as the alarm change, and stays until its endpoint answered 2xx — across restarts,
 * retried with exponential backoff. At-least-once: each carries its `id` for the receiver to dedupe.
 */
export class AlarmOutbox {
  readonly stats: OutboxStats = { delivered: 0, failedAttempts: 0, pending: 0 };
  private readonly s;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(db: Db, private readonly logger: Logger, private readonly retry = { firstMs: 500, maxMs: 30_000 }, private readonly now: () => number = Date.now) {
    this.s = {
      insert: db.prepare('INSERT INTO alarm_outbox (id, alarm_id, url, payload, next_at) VALUES (?, ?, ?, ?, ?)'),
      due: db.prepare('SELECT id, url, payload, attempts FROM alarm_outbox WHERE delivered_at IS NULL AND next_at <= ? ORDER BY next_at LIMIT 100'),
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
  }

  /** Sends what is due, one request at a time per row, all rows at once. */
  async deliverDue(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const rows = this.s.due.all(this.now()) as { id: string; url: string; payload: string; attempts: number }[];
      await Promise.all(rows.map(async (row) => {
        let problem: string;
        try {
          const res = await fetch(row.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: row.payload, signal: AbortSignal.timeout(5000) });
          await res.body?.cancel();
          if (res.ok) {
            this.s.delivered.run(this.now(), row.id);
            this.stats.delivered++;
            return;
          }
          problem = `HTTP ${res.status}`;
        } catch (err) {
          problem = (err as Error).message;
        }
        this.stats.failedAttempts++;
        const delay = Math.min(this.retry.maxMs, this.retry.firstMs * 2 ** row.attempts);
        this.s.failed.run(this.now() + delay, problem, row.id);
        if (row.attempts === 0) this.logger.warn({ url: row.url, problem }, `alarm notification not delivered (${problem}); retrying with backoff`);
      }));
      this.stats.pending = this.s.pending.get() as number;
    } finally {
      this.running = false;
    }
  }
}
