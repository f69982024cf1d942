export interface RejectedMessage {
  ts: number;
  deviceId?: string;
  topic: string;
  reason: string;
}

/** How much of a rejected message's topic and reason the list keeps: an MQTT topic may be 64 KB. */
export const MAX_REJECTED_TOPIC_CHARS = 256;
export const MAX_REJECTED_REASON_CHARS = 512;

export interface RejectedMessagesLimits {
  topicChars: number;
  reasonChars: number;
}

/**
 * The most recent rejected device messages, kept in a fixed ring so a flood costs no memory:
 * a fixed number of entries, each of a bounded size (a longer topic or reason is cut, ending
 * with "…").
 */
export class RejectedMessages {
  private readonly ring: RejectedMessage[] = [];
  private next = 0;
  private readonly limits: RejectedMessagesLimits;

  constructor(readonly capacity = 1000, limits: Partial<RejectedMessagesLimits> = {}) {
    this.limits = { topicChars: limits.topicChars ?? MAX_REJECTED_TOPIC_CHARS, reasonChars: limits.reasonChars ?? MAX_REJECTED_REASON_CHARS };
  }

  /** Keeps the entry, cut to size; returns what was kept. */
  add(entry: RejectedMessage): RejectedMessage {
    const kept: RejectedMessage = {
      ...entry, topic: cut(entry.topic, this.limits.topicChars), reason: cut(entry.reason, this.limits.reasonChars),
    };
    if (this.ring.length < this.capacity) this.ring.push(kept);
    else this.ring[this.next] = kept;
    this.next = (this.next + 1) % this.capacity;
    return kept;
  }

  /** Newest first. */
  recent(limit: number): RejectedMessage[] {
    const out: RejectedMessage[] = [];
    const n = this.ring.length;
    for (let i = 1; i <= Math.min(limit, n); i++) out.push(this.ring[(this.next - i + n) % n]!);
    return out;
  }
}

/**
 * At most `max` characters, the last one "…" when cut. A copy, not a slice: V8 may keep a sliced
 * string's whole parent alive, which here is the 64 KB the cut is for.
 */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--; // do not split a surrogate pair
  return Buffer.from(`${text.slice(0, end)}…`, 'utf8').toString('utf8');
}
