import type { OutboundMessage } from '../session-store.js';
import { filterMatches } from './topic-tree.js';

/** Topics with a retained message, at most (rule republishes with `retain`, e.g. one topic per device). */
export const DEFAULT_MAX_RETAINED_MESSAGES = 10_000;

/**
 * The retained messages of what the server publishes with the retain flag (devices' own retain
 * flags are ignored: their messages are ingested, never relayed). The last one per topic is
 * kept [MQTT-3.3.1-5], an empty payload removes it [MQTT-3.3.1-10]; a new subscription gets those
 * its filter matches, with the retain flag set [MQTT-3.3.1-8]. Bounded: a new topic beyond the
 * cap is not retained (counted), while the topics kept still take new messages.
 */
export class RetainedMessages {
  private readonly byTopic = new Map<string, OutboundMessage>();

  constructor(private readonly max: number, private readonly onFull: () => void) {}

  put(topic: string, payload: Buffer, qos: 0 | 1): void {
    if (payload.length === 0) {
      this.byTopic.delete(topic);
      return;
    }
    if (!this.byTopic.has(topic) && this.byTopic.size >= this.max) {
      this.onFull();
      return;
    }
    this.byTopic.set(topic, { topic, payload, qos, retain: true });
  }

  /** The retained messages `filter` matches, each at most at `qos`. */
  matching(filter: string, qos: number): OutboundMessage[] {
    const found: OutboundMessage[] = [];
    for (const message of this.byTopic.values()) {
      if (!filterMatches(filter, message.topic)) continue;
      found.push(message.qos <= qos ? message : { ...message, qos: 0 });
    }
    return found;
  }

  get size(): number {
    return this.byTopic.size;
  }
}
