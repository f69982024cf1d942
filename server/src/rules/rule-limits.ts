/**
 * The bounds on what one rule may cost, with their defaults. Each is an option of the rules
 * runtime (the flags in docs/limits.md set them); a rule that goes beyond one at load is refused
 * naming the node and field, and a message that goes beyond one at run time fails for that node
 * only, counted per limit in the node's stats (`limited`) and in /metrics.
 */

/** Steps one expression evaluation may take (node visits, comprehension iterations, work on long values). */
export const DEFAULT_EVAL_BUDGET = 100_000;
/** Characters of a string, or elements of a list, that an expression may build. */
export const DEFAULT_EVAL_MAX_VALUE_SIZE = 100_000;
/** Characters of a regular expression in `matches`. */
export const DEFAULT_REGEX_MAX_LENGTH = 512;
/** RE2 program size (instructions, roughly the pattern's size once repetitions are expanded). */
export const DEFAULT_REGEX_MAX_PROGRAM_SIZE = 1_000;
/** Windows one event may fall into (size / slide of a sliding window). */
export const DEFAULT_MAX_WINDOWS_PER_EVENT = 100;
/** Open windows of one window node, all groups together. */
export const DEFAULT_MAX_OPEN_WINDOWS = 10_000;
/** Groups (groupBy values) with open windows, per window node. */
export const DEFAULT_MAX_WINDOW_GROUPS = 10_000;
/** Keys a deduplicate node remembers. */
export const DEFAULT_DEDUPE_MAX_KEYS = 100_000;
/** The longest `timeout` a webhook node may ask for. */
export const DEFAULT_WEBHOOK_MAX_TIMEOUT_MS = 10_000;

export interface ExpressionLimits {
  evalBudget: number;
  maxValueSize: number;
  regexMaxLength: number;
  regexMaxProgramSize: number;
}

export interface RuleLimits extends ExpressionLimits {
  maxWindowsPerEvent: number;
  maxOpenWindows: number;
  maxWindowGroups: number;
  dedupeMaxKeys: number;
  webhookMaxTimeoutMs: number;
}

export const defaultRuleLimits: Readonly<RuleLimits> = Object.freeze({
  evalBudget: DEFAULT_EVAL_BUDGET,
  maxValueSize: DEFAULT_EVAL_MAX_VALUE_SIZE,
  regexMaxLength: DEFAULT_REGEX_MAX_LENGTH,
  regexMaxProgramSize: DEFAULT_REGEX_MAX_PROGRAM_SIZE,
  maxWindowsPerEvent: DEFAULT_MAX_WINDOWS_PER_EVENT,
  maxOpenWindows: DEFAULT_MAX_OPEN_WINDOWS,
  maxWindowGroups: DEFAULT_MAX_WINDOW_GROUPS,
  dedupeMaxKeys: DEFAULT_DEDUPE_MAX_KEYS,
  webhookMaxTimeoutMs: DEFAULT_WEBHOOK_MAX_TIMEOUT_MS,
});

export function ruleLimits(overrides: Partial<RuleLimits> = {}): Readonly<RuleLimits> {
  return Object.freeze({ ...defaultRuleLimits, ...overrides });
}

/** The names limits are counted under, in node stats (`limited`) and the metric's `limit` label. */
export type RuleLimitName = 'eval_budget' | 'window_open_windows' | 'window_groups' | 'dedupe_keys' | 'device_keys';

/**
 * A message went beyond a limit in one node: it fails there (the rule engine counts it as an
 * error of the node and under `limit`), and the next message runs as usual.
 */
export class RuleLimitError extends Error {
  override readonly name: string = 'RuleLimitError';
  constructor(readonly limit: RuleLimitName, message: string) {
    super(message);
  }
}
