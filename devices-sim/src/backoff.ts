/** How long a device waits before its next connection attempt. */
export interface BackoffOptions {
  /** Wait before the first retry, ms. */
  minMs: number;
  /** Longest wait, ms. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minMs: 500, maxMs: 30_000 };

/**
 * Exponential backoff with jitter: attempt 0 waits about `minMs`, each failure doubles it up to
 * `maxMs`, and each wait is drawn from its upper half so that a fleet cut off at once does not
 * come back at once ("equal jitter").
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.minMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
