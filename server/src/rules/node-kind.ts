import type { Condition, Expression } from './expression.js';
import type { RuleMessage, RuleSinks } from './message.js';
import type { RuleLimitName, RuleLimits } from './rule-limits.js';
import type { RuleInput } from './rule-schema.js';

/** A node that sends the message somewhere other than its `next` (switch). */
export class Route {
  constructor(readonly to: number, readonly message: RuleMessage) {}
}

/** A compiled node: the message out (possibly a new one), null to drop it, or a Route. */
export type NodeRun = (message: RuleMessage, now: number) => RuleMessage | null | Route;

export interface CompileContext {
  ruleId: string;
  nodeId: string;
  /** Compiles an expression of this node; a bad one throws naming `field`. */
  expression(source: string, field: string): Expression;
  /** Compiles a condition: an expression that type-checks to a boolean (or to a message value); else throws naming `field`. */
  condition(source: string, field: string): Condition;
  /** What the rule's messages are: device telemetry or window results. */
  input: RuleInput;
  /** The index of the node with this id; an unknown id throws naming `field`. */
  indexOf(id: string, field: string): number;
  /** A setting that does not fit (beyond what the schema checks); throws naming `field`. */
  fail(field: string, message: string): never;
  sinks: RuleSinks;
  random: () => number;
  /** The bounds this server puts on rules (rule-limits.ts). */
  limits: Readonly<RuleLimits>;
  /** Counts a limit this node hit without failing the message (a failure throws RuleLimitError instead). */
  limitHit(limit: RuleLimitName, message: string): void;
}

/** One kind of node: its compile function, registered by `type` in node-registry.ts. */
export interface NodeKind {
  type: string;
  compile(spec: Record<string, unknown>, ctx: CompileContext): NodeRun;
}
