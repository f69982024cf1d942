/**
 * Back-pressure at the socket: counts device messages between arrival and their append to the
 * log, and while more than `limit` are in flight, holds each message's completion (its
 * acknowledgement, and the connection's reading on). A connection that takes a message while the
 * gate is full pauses its stream; it reads on once one of its messages is let go. The connections
 * that wait stop reading, TCP pushes back on the devices, and memory stays bounded by `limit`
 * messages plus one socket read per connection, however far ingest falls behind.
 */
export class InflightGate<E = Error | null> {
  private inflight = 0;
  private readonly held: Array<[(err: E) => void, E]> = [];

  constructor(private readonly limit: number) {}

  /** A message arrived and is being appended. */
  enter(): void {
    this.inflight++;
  }

  /**
   * The message is appended (or refused): `resume(outcome)` lets its connection read on, now or
   * once in-flight messages drop below the limit.
   */
  leave(resume: (outcome: E) => void, outcome: E): void {
    this.inflight--;
    if (this.inflight > this.limit) this.held.push([resume, outcome]);
    else {
      resume(outcome);
      this.releaseHeld();
    }
  }

  /** True while more than the limit are in flight: a connection that just took a message stops reading. */
  full(): boolean {
    return this.inflight > this.limit;
  }

  /** Messages in flight, and connections held back. */
  stats(): { inflight: number; held: number } {
    return { inflight: this.inflight, held: this.held.length };
  }

  private releaseHeld(): void {
    while (this.held.length > 0 && this.inflight <= this.limit) {
      const [resume, outcome] = this.held.shift()!;
      resume(outcome);
    }
  }
}
