import type { RuleMessage } from '../rules/message.js';
import type { RuleInput } from '../rules/rule-schema.js';
import type { Db } from '../storage/database.js';

/**
 * A message's place in what an alarm node reads, in an order that only grows: `stream` says
 * which order, `at` then `entry` the place in it.
 *  - telemetry: the log partition; the record's offset and the entry within the record (one
 *    record can hold several entries, each a message of its own);
 *  - window results: the window node that made them; the window's end. A window's result is
 *    appended to the `windows` topic again when a late event updates it, and after a crash when
 *    the rules group replays from its checkpoint — at new offsets, but with the same window. A
 *    node so takes each window once, and a later update of it (or a window older than the last
 *    one taken, from the same window node and group) is not another occurrence.
 */
export interface InputPosition {
  stream: string;
  at: number;
  entry: number;
}

export function positionOf(input: RuleInput, m: RuleMessage): InputPosition {
  if (input === 'windows') {
    const { windowRule, windowNode, windowEnd } = m.metadata;
    if (typeof windowRule === 'string' && typeof windowNode === 'string' && typeof windowEnd === 'number') {
      return { stream: `window ${windowRule}/${windowNode}`, at: windowEnd, entry: 0 };
    }
    // The window's metadata overwritten (an enrich node): the place in the `windows` topic still orders them.
    return { stream: `windows ${m.partition}`, at: m.offset, entry: m.entry ?? 0 };
  }
  return { stream: `telemetry ${m.partition}`, at: m.offset, entry: m.entry ?? 0 };
}

/**
 * Per alarm condition (rule, node, originator) and stream, the last position whose effects are
 * applied — written in the transaction of those effects. The rules group resumes from its window
 * checkpoint after a crash and reads up to a second of messages again; a message at or before its
 * condition's position is one whose effects (streak counts, raises, notifications) are in, and
 * is skipped. Kept when a streak ends or its alarm clears, so re-read messages of a streak that
 * ended cannot start it again.
 */
export class AlarmPositions {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      get: db.prepare('SELECT at, entry FROM alarm_positions WHERE key = ? AND stream = ?'),
      put: db.prepare(`INSERT INTO alarm_positions (key, stream, at, entry) VALUES (?, ?, ?, ?)
        ON CONFLICT (key, stream) DO UPDATE SET at = excluded.at, entry = excluded.entry`),
    };
  }

  /** Whether the effects of the message at `p` on condition `key` are already applied. */
  applied(key: string, p: InputPosition): boolean {
    const last = this.s.get.get(key, p.stream) as { at: number; entry: number } | undefined;
    return last !== undefined && (p.at < last.at || (p.at === last.at && p.entry <= last.entry));
  }

  /** Records that the effects of the message at `p` are applied (inside their transaction). */
  record(key: string, p: InputPosition): void {
    this.s.put.run(key, p.stream, p.at, p.entry);
  }
}
