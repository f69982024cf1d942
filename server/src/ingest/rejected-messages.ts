export interface RejectedMessage {
  ts: number;
  deviceId?: string;
  topic: string;
  reason: string;
}

/** The most recent rejected device messages, kept in a fixed ring so a flood costs no memory. */
export class RejectedMessages {
  private readonly ring: RejectedMessage[] = [];
  private next = 0;

  constructor(readonly capacity = 1000) {}

  add(entry: RejectedMessage): void {
    if (this.ring.length < this.capacity) this.ring.push(entry);
    else this.ring[this.next] = entry;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first. */
  recent(limit: number): RejectedMessage[] {
    const out: RejectedMessage[] = [];
    const n = this.ring.length;
    for (let i = 1; i <= Math.min(limit, n); i++) out.push(this.ring[(this.next - i + n) % n]!);
    return out;
  }
}
