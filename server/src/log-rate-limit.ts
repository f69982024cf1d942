/**
 * At most one log line per interval for something that can happen once per message: a flood of
 * bad input must not become a flood of log lines. The line that is written says how many were
 * left out since the last one.
 */
export class LogRateLimit {
  private lastAt = -Infinity;
  private suppressed = 0;

  constructor(private readonly intervalMs = 1000, private readonly now: () => number = Date.now) {}

  /** Undefined when this line is to be left out; else how many were left out before it. */
  take(): number | undefined {
    const now = this.now();
    if (now - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return undefined;
    }
    this.lastAt = now;
    const left = this.suppressed;
    this.suppressed = 0;
    return left;
  }
}
