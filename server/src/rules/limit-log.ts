import { LogRateLimit } from '../log-rate-limit.js';
import type { Logger } from '../logger.js';

/** How often at most one kind of limit hit is logged. */
export const LIMIT_LOG_EVERY_MS = 10_000;
/** Kinds of hits remembered; beyond it they are all forgotten at once (the log then says a few more). */
const MAX_KINDS = 1_000;

/**
 * Logs limit hits without flooding: the first hit of a kind (say, one rule node over its
 * evaluation budget) is logged at once, later ones at most every `everyMs`, saying how many went
 * unlogged in between. A limit is hit per message, so it can be hit thousands of times a second.
 */
export class RateLimitedLog {
  private readonly kinds = new Map<string, LogRateLimit>();

  constructor(private readonly logger: Logger, private readonly everyMs = LIMIT_LOG_EVERY_MS, private readonly now: () => number = Date.now) {}

  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    let gate = this.kinds.get(kind);
    if (!gate) {
      if (this.kinds.size >= MAX_KINDS) this.kinds.clear();
      this.kinds.set(kind, (gate = new LogRateLimit(this.everyMs, this.now)));
    }
    const unlogged = gate.take();
    if (unlogged === undefined) return;
    this.logger.warn(unlogged > 0 ? { ...fields, unlogged } : fields, unlogged > 0 ? `${message} (and ${unlogged} more like it since the last line)` : message);
  }
}
