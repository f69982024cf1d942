import type { RuleMessage } from './message.js';
import type { RuleInput } from './rule-schema.js';

/**
 * What identifies one message's pass through one node, the same when the message is read again
 * after a crash: the rule, the node, the log topic the message came from (`telemetry`, or
 * `windows` for window results), and its place there — partition, offset and entry of the record.
 * Republish and webhook nodes send it as `key` (webhooks also as the `Idempotency-Key` header) so
 * that a receiver can drop the duplicates at-least-once delivery brings.
 */
export function messageKey(rule: string, node: string, input: RuleInput, message: RuleMessage): string {
  return `${rule}/${node}/${input}/${message.partition}-${message.offset}-${message.entry ?? 0}`;
}
