import type { Logger } from '../logger.js';

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  retries: number;
  timeoutMs: number;
  rule: string;
  node: string;
}

export interface WebhookStats {
  sent: number;
  failed: number;
  retried: number;
  dropped: number;
  pending: number;
}

const MAX_PENDING = 10_000;
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 60_000;

/**
 * Sends webhook POSTs in the background: a failed one (network error, timeout, 5xx, 429) is tried
 * again after 0.5 s, 1 s, 2 s ... up to a minute apart, `retries` times; a 4xx other than 429 is
 * not retried. At most 10,000 wait at once; beyond that new ones are dropped and counted.
 */
export class WebhookSender {
  readonly stats: WebhookStats = { sent: 0, failed: 0, retried: 0, dropped: 0, pending: 0 };
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly logger: Logger, private readonly backoffMs = FIRST_BACKOFF_MS) {}

  send(request: WebhookRequest): void {
    if (this.closed) return;
    if (this.stats.pending >= MAX_PENDING) {
      this.stats.dropped++;
      return;
    }
    this.stats.pending++;
    void this.attempt(request, 0);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async attempt(request: WebhookRequest, attempt: number): Promise<void> {
    let problem: string;
    let retriable = true;
    try {
      const res = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body, signal: AbortSignal.timeout(request.timeoutMs) });
      await res.body?.cancel();
      if (res.ok) {
        this.stats.sent++;
        this.stats.pending--;
        return;
      }
      problem = `HTTP ${res.status}`;
      retriable = res.status >= 500 || res.status === 429;
    } catch (err) {
      problem = (err as Error).name === 'TimeoutError' ? `no answer within ${request.timeoutMs} ms` : (err as Error).message;
    }
    if (retriable && attempt < request.retries && !this.closed) {
      this.stats.retried++;
      const delay = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** attempt);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.attempt(request, attempt + 1);
      }, delay);
      timer.unref();
      this.timers.add(timer);
      return;
    }
    this.stats.failed++;
    this.stats.pending--;
    this.logger.warn({ rule: request.rule, node: request.node, url: request.url, attempts: attempt + 1, problem }, `webhook failed: ${problem}`);
  }
}
