import { compileRe2, Re2Cache, type Re2Pattern } from './re2-pattern.js';
import { RuleLimitError, type ExpressionLimits } from './rule-limits.js';

/**
 * The cost of evaluating CEL expressions, bounded. cel-js (v8) has limits on the size of what it
 * parses, but none on what an evaluation does: nested comprehensions over long lists, strings
 * doubled through `cel.bind`, or a backtracking regular expression can hold the event loop for
 * seconds per message. So once an expression is parsed and type-checked, every node of its AST is
 * given a metered `evaluate`:
 *
 *  - each node evaluated costs one step, so a comprehension costs its iterations × its body;
 *  - an operand handed to an operator or function whose work grows with it (`+`, `==`, `in`,
 *    string and list functions) costs one more step per 128 characters or 8 elements;
 *  - a string or list an expression builds (`+`, functions, list literals, `map`/`filter`) may
 *    not be longer than `maxValueSize`;
 *  - `matches` runs on RE2 (re2js) instead of JavaScript's backtracking RegExp, a literal pattern
 *    compiled here, once; a match costs input length × program size / 64 steps;
 *  - `duration(string)` gets only strings that look like durations (at most 64 characters): the
 *    pattern cel-js parses them with backtracks badly on a long run of digits.
 *
 * Going over the budget stops the evaluation at the next node, and the message fails for that
 * node with an ExpressionBudgetError. An expression whose worst case is over the budget for any
 * input (literal lists iterated inside each other) is refused when the rule loads.
 *
 * This leans on how cel-js 8 builds its AST (an `evaluate` own property that parents call, `meta`
 * with `evaluate`, `alternate` for expanded macros and `macro`): expression.ts checks at start
 * that the metering takes hold, so an upgrade that changes them fails loudly, not silently.
 */

/** What this module needs of a cel-js AST node. */
export interface CelNode {
  op: string;
  args: unknown;
  readonly meta: { evaluate: Evaluate; alternate?: CelNode; macro?: { evaluate: Evaluate } & Record<string, unknown> };
  evaluate: Evaluate;
}
interface CelEvaluator {
  run(node: CelNode, ctx: unknown): unknown;
}
type Evaluate = (ev: CelEvaluator, node: never, ctx: unknown) => unknown;

export class ExpressionBudgetError extends RuleLimitError {
  override readonly name = 'ExpressionBudgetError';
  constructor(message: string) {
    super('eval_budget', message);
  }
}

/** A setting of the expression that cannot work (an invalid pattern, a worst case over the budget). */
export class ExpressionCostError extends Error {
  override readonly name = 'ExpressionCostError';
}

/**
 * The running evaluation's budget. One is enough: evaluations are synchronous and never nested
 * (no function an expression calls evaluates another expression).
 */
const meter = { remaining: 0, over: '' };
/** Thrown to unwind an evaluation over its budget; made once, so stopping allocates nothing. */
const STOP = new Error('expression evaluation stopped: over its budget');

function stop(why: string): never {
  if (!meter.over) meter.over = why;
  meter.remaining = -1;
  throw STOP;
}

/** Evaluates `evaluate(vars)` within `budget` steps; throws ExpressionBudgetError when it goes over. */
export function evaluateMetered<V>(budget: number, evaluate: (vars: V) => unknown, vars: V): unknown {
  meter.remaining = budget;
  meter.over = '';
  let value: unknown;
  try {
    value = evaluate(vars);
  } catch (err) {
    if (meter.over || err === STOP) throw budgetError(budget);
    throw err;
  }
  // CEL's `||`, `&&`, all() and exists() absorb errors of one side when the other decides, so
  // the stop may have been swallowed: the meter says whether it happened.
  if (meter.over) throw budgetError(budget);
  return value;
}

function budgetError(budget: number): ExpressionBudgetError {
  const why = meter.over || 'steps';
  return new ExpressionBudgetError(why === 'steps'
    ? `the expression took more than ${budget} evaluation steps, its budget; it failed for this message`
    : `${why}; it failed for this message`);
}

const CONSUMES_OPERANDS = new Set(['+', '==', '!=', 'in', '<', '<=', '>', '>=', 'call', 'rcall']);
const BUILDS_VALUES = new Set(['+', 'call', 'rcall', 'list', 'comprehension', 'accuPush']);

/** Steps for handing `v` to an operation whose work grows with it. */
function sizeCost(v: unknown): number {
  if (typeof v === 'string') return v.length >>> 7;
  if (Array.isArray(v)) return v.length >>> 3;
  return 0;
}

function builtSize(v: unknown): number {
  if (typeof v === 'string' || Array.isArray(v)) return v.length;
  return 0;
}

/** Meters every node of a checked AST (see the top of this file); throws ExpressionCostError for a pattern it refuses. */
export function meterExpression(root: CelNode, limits: ExpressionLimits): void {
  const Node = root.constructor;
  const isNode = (x: unknown): x is CelNode => x instanceof Node;
  const seen = new Set<CelNode>();
  const maxSize = limits.maxValueSize;
  const tooBig = (v: unknown) => {
    const kind = typeof v === 'string' ? 'string' : 'list';
    stop(`the expression built a ${kind} of ${builtSize(v)} ${kind === 'string' ? 'characters' : 'elements'}, over the limit of ${maxSize}`);
  };

  const visit = (node: CelNode, operandOfSizedWork: boolean): void => {
    if (seen.has(node)) return;
    seen.add(node);
    const meta = node.meta;
    let inner: Evaluate;
    let kids: CelNode[];
    let kidsAreOperands = CONSUMES_OPERANDS.has(node.op);
    if (meta.alternate) {
      // An expanded macro (all, exists, map, filter …): the comprehension it became is what runs.
      const alternate = meta.alternate;
      inner = (ev, _n, ctx) => alternate.evaluate(ev, alternate as never, ctx);
      kids = [alternate];
      kidsAreOperands = false;
    } else if (meta.macro) {
      const macro = meta.macro;
      inner = (ev, _n, ctx) => macro.evaluate(ev, macro as never, ctx);
      kids = nodesIn(Object.values(macro), isNode);
      kidsAreOperands = false;
    } else {
      inner = meta.evaluate;
      kids = nodesIn(node.op === 'comprehension' ? [(node.args as Record<string, unknown>).iterable, (node.args as Record<string, unknown>).init, (node.args as Record<string, unknown>).step] : [node.args], isNode);
      if (node.op === 'rcall' && isMatchesCall(node)) {
        inner = re2Matches(node, limits);
        kidsAreOperands = false;
      } else if (node.op === 'call' && isDurationCall(node)) {
        inner = checkedDuration(node, inner);
      }
    }
    for (const kid of kids) visit(kid, kidsAreOperands);
    node.evaluate = metered(inner, operandOfSizedWork, BUILDS_VALUES.has(node.op), maxSize, tooBig);
  };
  visit(root, false);
}

function metered(inner: Evaluate, charged: boolean, built: boolean, maxSize: number, tooBig: (v: unknown) => never): Evaluate {
  // One closure per combination, so the common node pays one decrement and nothing else.
  if (!charged && !built) {
    return (ev, node, ctx) => {
      if (--meter.remaining < 0) stop('steps');
      return inner(ev, node, ctx);
    };
  }
  return (ev, node, ctx) => {
    if (--meter.remaining < 0) stop('steps');
    const v = inner(ev, node, ctx);
    if (built && builtSize(v) > maxSize) tooBig(v);
    if (charged && (meter.remaining -= sizeCost(v)) < 0) stop('steps');
    return v;
  };
}

function nodesIn(values: unknown[], isNode: (x: unknown) => x is CelNode, out: CelNode[] = []): CelNode[] {
  for (const v of values) {
    if (isNode(v)) out.push(v);
    else if (Array.isArray(v)) nodesIn(v, isNode, out);
  }
  return out;
}

/** `receiver.matches(pattern)`: args are [name, receiver, [pattern]]. */
function isMatchesCall(node: CelNode): boolean {
  const args = node.args as unknown[];
  return args[0] === 'matches' && Array.isArray(args[2]) && args[2].length === 1;
}

function literalString(node: CelNode): string | undefined {
  return node.op === 'value' && typeof node.args === 'string' ? node.args : undefined;
}

function re2Matches(node: CelNode, limits: ExpressionLimits): Evaluate {
  const [, receiver, [pattern]] = node.args as [string, CelNode, [CelNode]];
  const literal = literalString(pattern);
  let compiled: Re2Pattern | undefined;
  if (literal !== undefined) {
    try {
      compiled = compileRe2(literal, limits);
    } catch (err) {
      throw new ExpressionCostError(`matches: ${(err as Error).message}`);
    }
  }
  const cache = compiled ? undefined : new Re2Cache(limits);
  return (ev, _n, ctx) => {
    const text = ev.run(receiver, ctx);
    let re = compiled;
    if (!re) {
      const p = ev.run(pattern, ctx);
      if (typeof p !== 'string') throw new Error(`matches: the pattern is a ${typeof p}, not a string`);
      re = cache!.get(p);
    }
    if (typeof text !== 'string') throw new Error(`matches: the value is a ${typeof text}, not a string`);
    // Linear, but in input × program: a long input through a big pattern is still work.
    if ((meter.remaining -= Math.ceil((text.length * re.programSize()) / 64)) < 0) stop('steps');
    return re.test(text);
  };
}

/** `duration(x)`: args are [name, [x]]. */
function isDurationCall(node: CelNode): boolean {
  const args = node.args as unknown[];
  return args[0] === 'duration' && Array.isArray(args[1]) && args[1].length === 1;
}

const DURATION_TEXT = /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/;
const DURATION_MAX_LENGTH = 64;

function durationProblem(text: string): string | undefined {
  // The length check comes first: it also bounds what the pattern below may take.
  if (text.length > DURATION_MAX_LENGTH) return `duration: ${text.length} characters is too long for a duration (at most ${DURATION_MAX_LENGTH})`;
  if (!DURATION_TEXT.test(text)) return `duration: ${JSON.stringify(text)} is not a duration like "1h30m" or "2.5s"`;
  return undefined;
}

function checkedDuration(node: CelNode, inner: Evaluate): Evaluate {
  const [, [arg]] = node.args as [string, [CelNode]];
  const literal = literalString(arg);
  if (literal !== undefined) {
    const problem = durationProblem(literal);
    if (problem) throw new ExpressionCostError(problem);
    return inner;
  }
  return (ev, n, ctx) => {
    const text = ev.run(arg, ctx);
    if (typeof text === 'string') {
      const problem = durationProblem(text);
      if (problem) throw new Error(problem);
    }
    return inner(ev, n, ctx);
  };
}

/**
 * The steps an expression takes in its worst case, counting only what its text fixes: literal
 * lists iterated (a list from the message counts as one element, so this never overstates).
 * Over the budget, the expression would fail whenever its comprehensions run through.
 */
export function worstCaseSteps(root: CelNode): number {
  const Node = root.constructor;
  const isNode = (x: unknown): x is CelNode => x instanceof Node;
  const cost = (node: CelNode): number => {
    const meta = node.meta;
    if (meta.alternate) return 1 + cost(meta.alternate);
    if (meta.macro) return 1 + sum(nodesIn(Object.values(meta.macro), isNode).filter((n) => n !== node).map(cost));
    if (node.op === 'comprehension') {
      const { iterable, init, step } = node.args as { iterable: CelNode; init: CelNode; step: CelNode };
      const n = iterable.op === 'list' || iterable.op === 'map' ? (iterable.args as unknown[]).length : 1;
      return 1 + cost(iterable) + cost(init) + n * cost(step);
    }
    if (node.op === '?:') {
      const [condition, left, right] = node.args as CelNode[];
      return 1 + cost(condition!) + Math.max(cost(left!), cost(right!));
    }
    return 1 + sum(nodesIn([node.args], isNode).map(cost));
  };
  return cost(root);
}

function sum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
