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
  private readonly kinds = new Map<string, { loggedAt: number; unlogged: number }>();

  constructor(private readonly logger: Logger, private readonly everyMs = LIMIT_LOG_EVERY_MS, private readonly now: () => number = Date.now) {}

  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = this.now();
    const seen = this.kinds.get(kind);
    if (seen && now - seen.loggedAt < this.everyMs) {
      seen.unlogged++;
      return;
    }
    if (!seen && this.kinds.size >= MAX_KINDS) this.kinds.clear();
    const unlogged = seen?.unlogged ?? 0;
    this.kinds.set(kind, { loggedAt: now, unlogged: 0 });
    this.logger.warn(unlogged > 0 ? { ...fields, unlogged } : fields, unlogged > 0 ? `${message} (and ${unlogged} more like it since the last line)` : message);
  }
}
