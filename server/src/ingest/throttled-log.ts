import type { Logger } from '../logger.js';

/**
 * At most one log line per interval for events that can come by the thousand (refused
 * connections, failed logins): the first is logged at once, the rest of the interval are
 * counted and summarised in one line at its end — counts by reason and the last one's details.
 * Metrics still count each one; this only keeps hostile clients from flooding the log.
 */
export class ThrottledLog {
  private counts: Record<string, number> = {};
  private pending = 0;
  private last: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly level: 'info' | 'warn',
    private readonly message: string,
    private readonly intervalMs = 1000,
  ) {}

  note(reason: string, details: Record<string, unknown> = {}): void {
    if (!this.timer) {
      this.logger[this.level]({ reason, ...details }, this.message);
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      this.timer.unref();
      return;
    }
    this.counts[reason] = (this.counts[reason] ?? 0) + 1;
    this.pending++;
    this.last = details;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === 0) return;
    this.logger[this.level]({ count: this.pending, byReason: this.counts, last: this.last, sinceMs: this.intervalMs }, `${this.message} (${this.pending} more in the last ${this.intervalMs / 1000} s)`);
    this.counts = {};
    this.pending = 0;
    this.last = {};
    // Another summary only if more come: the next note opens a new interval.
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}
