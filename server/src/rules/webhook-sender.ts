import { redactUrl, redactUrlIn } from '../redact.js';
import type { Logger } from '../logger.js';
import { RateLimitedLog } from './limit-log.js';
import { DEFAULT_WEBHOOK_MAX_TIMEOUT_MS } from './rule-limits.js';

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
  /** Calls not finished: in flight, queued, or waiting to be tried again. */
  pending: number;
  in_flight: number;
  queued: number;
  /** Attempts given up on because the target did not answer in time. */
  timed_out: number;
}

/** Calls in flight to one target (scheme, host and port) at most. */
export const DEFAULT_WEBHOOK_MAX_IN_FLIGHT_PER_TARGET = 16;
/** Calls waiting for one target (queued, or waiting to be tried again) at most; beyond it new calls are dropped. */
export const DEFAULT_WEBHOOK_MAX_QUEUED_PER_TARGET = 1_000;
/** Calls not finished, all targets together, at most; beyond it new calls are dropped. */
export const DEFAULT_WEBHOOK_MAX_PENDING = 10_000;

export interface WebhookLimits {
  maxInFlightPerTarget: number;
  maxQueuedPerTarget: number;
  maxPending: number;
  /** No attempt waits longer than this for its answer, whatever the node asks. */
  maxTimeoutMs: number;
}

export const defaultWebhookLimits: Readonly<WebhookLimits> = Object.freeze({
  maxInFlightPerTarget: DEFAULT_WEBHOOK_MAX_IN_FLIGHT_PER_TARGET,
  maxQueuedPerTarget: DEFAULT_WEBHOOK_MAX_QUEUED_PER_TARGET,
  maxPending: DEFAULT_WEBHOOK_MAX_PENDING,
  maxTimeoutMs: DEFAULT_WEBHOOK_MAX_TIMEOUT_MS,
});

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 60_000;

interface Call {
  request: WebhookRequest;
  attempt: number;
}

/** One target's calls: a few in flight, the rest in order behind them. */
interface Target {
  origin: string;
  inFlight: number;
  queue: Call[];
  /** Calls waiting on their backoff timer: counted against the queue bound, as they come back to it. */
  waiting: number;
}

/**
 * Sends webhook POSTs in the background: a failed one (network error, timeout, 5xx, 429) is tried
 * again after 0.5 s, 1 s, 2 s ... up to a minute apart, `retries` times; a 4xx other than 429 is
 * not retried. Per target, at most `maxInFlightPerTarget` calls are in flight and
 * `maxQueuedPerTarget` wait behind them; every attempt ends after its timeout. So a target that
 * never answers holds a few sockets and a bounded queue, and calls beyond that are dropped and
 * counted — they do not pile up in memory, and other targets are not held up.
 */
export class WebhookSender {
  readonly stats: WebhookStats = { sent: 0, failed: 0, retried: 0, dropped: 0, pending: 0, in_flight: 0, queued: 0, timed_out: 0 };
  private readonly targets = new Map<string, Target>();
  private readonly origins = new Map<string, string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly closing = new AbortController();
  private readonly limits: Readonly<WebhookLimits>;
  private readonly dropLog: RateLimitedLog;

  constructor(private readonly logger: Logger, private readonly backoffMs = FIRST_BACKOFF_MS, limits: Partial<WebhookLimits> = {}) {
    this.limits = { ...defaultWebhookLimits, ...limits };
    this.dropLog = new RateLimitedLog(logger);
  }

  send(request: WebhookRequest): void {
    if (this.closing.signal.aborted) return;
    const target = this.targetOf(request.url);
    const free = target.inFlight < this.limits.maxInFlightPerTarget && target.queue.length === 0;
    if (this.stats.pending >= this.limits.maxPending || (!free && target.queue.length + target.waiting >= this.limits.maxQueuedPerTarget)) {
      this.stats.dropped++;
      const why = this.stats.pending >= this.limits.maxPending
        ? `${this.stats.pending} calls unfinished over all targets, the limit`
        : `${target.inFlight} in flight and ${target.queue.length + target.waiting} waiting for this target, the limit`;
      this.dropLog.warn(`dropped ${target.origin}`, { rule: request.rule, node: request.node, target: target.origin, inFlight: target.inFlight, waiting: target.queue.length + target.waiting },
        `webhook call to ${target.origin} dropped: ${why}`);
      this.forgetIfIdle(target);
      return;
    }
    this.stats.pending++;
    if (free) this.start(target, { request, attempt: 0 });
    else this.enqueue(target, { request, attempt: 0 });
  }

  /** Stops sending: queued calls are dropped, calls in flight aborted. */
  close(): void {
    this.closing.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const target of this.targets.values()) {
      this.stats.queued -= target.queue.length;
      this.stats.pending -= target.queue.length + target.waiting;
      target.queue = [];
      target.waiting = 0;
    }
  }

  private targetOf(url: string): Target {
    let origin = this.origins.get(url);
    if (origin === undefined) {
      // Webhook URLs come from rules, so there are few; the cache is only cleared for safety.
      if (this.origins.size >= 1_000) this.origins.clear();
      origin = new URL(url).origin;
      this.origins.set(url, origin);
    }
    let target = this.targets.get(origin);
    if (!target) this.targets.set(origin, (target = { origin, inFlight: 0, queue: [], waiting: 0 }));
    return target;
  }

  private forgetIfIdle(target: Target): void {
    if (target.inFlight === 0 && target.queue.length === 0 && target.waiting === 0) this.targets.delete(target.origin);
  }

  private enqueue(target: Target, call: Call): void {
    target.queue.push(call);
    this.stats.queued++;
  }

  private start(target: Target, call: Call): void {
    target.inFlight++;
    this.stats.in_flight++;
    void this.attempt(call).finally(() => {
      target.inFlight--;
      this.stats.in_flight--;
      this.pump(target);
    });
  }

  /** Starts what is queued for the target, as far as its in-flight bound allows. */
  private pump(target: Target): void {
    while (target.inFlight < this.limits.maxInFlightPerTarget && target.queue.length > 0 && !this.closing.signal.aborted) {
      this.stats.queued--;
      this.start(target, target.queue.shift()!);
    }
    this.forgetIfIdle(target);
  }

  private async attempt(call: Call): Promise<void> {
    const { request, attempt } = call;
    const timeoutMs = Math.min(request.timeoutMs, this.limits.maxTimeoutMs);
    let problem: string;
    let retriable = true;
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), this.closing.signal]);
      const res = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body, signal });
      await res.body?.cancel();
      if (res.ok) {
        this.stats.sent++;
        this.stats.pending--;
        return;
      }
      problem = `HTTP ${res.status}`;
      retriable = res.status >= 500 || res.status === 429;
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      if (timedOut) this.stats.timed_out++;
      problem = timedOut ? `no answer within ${timeoutMs} ms` : redactUrlIn((err as Error).message, request.url);
    }
    if (this.closing.signal.aborted) {
      this.stats.pending--;
      return;
    }
    if (retriable && attempt < request.retries) {
      this.stats.retried++;
      this.retryLater({ request, attempt: attempt + 1 }, Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** attempt));
      return;
    }
    this.stats.failed++;
    this.stats.pending--;
    this.logger.warn({ rule: request.rule, node: request.node, url: redactUrl(request.url), attempts: attempt + 1, problem }, `webhook failed: ${problem}`);
  }

  private retryLater(call: Call, delayMs: number): void {
    const target = this.targetOf(call.request.url);
    target.waiting++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      target.waiting--;
      // Back in line behind what is queued, so a failing target's retries keep their place in its bound.
      if (target.inFlight < this.limits.maxInFlightPerTarget && target.queue.length === 0) this.start(target, call);
      else this.enqueue(target, call);
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }
}
