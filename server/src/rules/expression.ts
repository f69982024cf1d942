import { Environment } from '@marcbachmann/cel-js';
import { evaluateMetered, ExpressionBudgetError, meterExpression, worstCaseSteps, type CelNode } from './expression-cost.js';
import { defaultRuleLimits, type ExpressionLimits } from './rule-limits.js';

/**
 * Conditions and computed values: CEL (Common Expression Language, cel-js), compiled once when a
 * rule loads. CEL cannot reach JavaScript: no prototypes, no globals, no functions but CEL's own;
 * a map key such as `constructor` is only ever a key. The variables an expression sees:
 *   values    the message's values (map)          ts        its time, ms since the epoch (double)
 *   device    {id, name, type, attributes}        metadata  what enrich nodes added (map)
 * Device values arrive as JSON numbers (CEL doubles) while `25` in an expression is a CEL int, so
 * mixed int/double arithmetic is defined here; comparisons across the two already work in CEL.
 * Every evaluation runs within a budget, and `matches` on RE2 (expression-cost.ts).
 */
export type Expression = ((vars: ExpressionVars) => unknown) & {
  /** The type CEL's checker gives the expression: `bool`, `double`, `string`, …, `dyn` when it depends on the message. */
  readonly type: string;
};

/** An expression that is true or false (a `bool`, or a `dyn` checked at each evaluation). */
export type Condition = (vars: ExpressionVars) => boolean;

export interface ExpressionVars {
  values: Record<string, unknown>;
  ts: number;
  device: { id: string; name: string; type: string; attributes: Record<string, unknown> };
  metadata: Record<string, unknown>;
}

export class ExpressionError extends Error {
  override readonly name = 'ExpressionError';
}

const FORBIDDEN = /\b(constructor|__proto__|prototype|__defineGetter__|__lookupGetter__)\b/;

const environment = new Environment({ unlistedVariablesAreDyn: false })
  .registerVariable('values', 'map')
  .registerVariable('device', 'map')
  .registerVariable('metadata', 'map')
  .registerVariable('ts', 'double');

const asNumber = (n: bigint | number) => Number(n);
for (const [op, f] of [
  ['+', (a: number, b: number) => a + b], ['-', (a: number, b: number) => a - b],
  ['*', (a: number, b: number) => a * b], ['/', (a: number, b: number) => a / b],
] as const) {
  environment.registerOperator(`double ${op} int`, (a: number, b: bigint) => f(a, asNumber(b)));
  environment.registerOperator(`int ${op} double`, (a: bigint, b: number) => f(asNumber(a), b));
}
for (const name of ['abs', 'round', 'floor', 'ceil']) {
  const fn = Math[name as 'abs'];
  environment.registerFunction(`${name}(double): double`, (x: number) => fn(x));
}
environment.registerFunction('min(double, double): double', (a: number, b: number) => Math.min(a, b));
environment.registerFunction('max(double, double): double', (a: number, b: number) => Math.max(a, b));

/**
 * Parses and type-checks `source`, and meters it (expression-cost.ts); throws ExpressionError
 * saying what is wrong, also when an invalid regular expression or a worst case over the budget
 * can be seen from the text alone.
 */
export function compileExpression(source: string, limits: ExpressionLimits = defaultRuleLimits): Expression {
  const forbidden = FORBIDDEN.exec(source);
  if (forbidden) throw new ExpressionError(`"${forbidden[1]}" may not be used in an expression`);
  let evaluate: ((vars: Record<string, unknown>) => unknown) & { check(): { valid: boolean; type?: string; error?: Error }; ast: CelNode };
  let type: string;
  try {
    evaluate = environment.parse(source) as unknown as typeof evaluate;
    // Checked on the very AST that runs, so it is metered after cel-js has settled how each node evaluates.
    const check = evaluate.check();
    if (!check.valid) throw new ExpressionError(firstLine(check.error?.message ?? 'invalid expression'));
    type = check.type ?? 'dyn';
    meterExpression(evaluate.ast, limits);
  } catch (err) {
    if (err instanceof ExpressionError) throw err;
    throw new ExpressionError(firstLine((err as Error).message));
  }
  const worst = worstCaseSteps(evaluate.ast);
  if (worst > limits.evalBudget) {
    throw new ExpressionError(`in its worst case this expression takes about ${worst} evaluation steps, over the budget of ${limits.evalBudget} per evaluation (lists iterated inside each other?)`);
  }
  const budget = limits.evalBudget;
  return Object.assign((vars: ExpressionVars) => fromCel(evaluateMetered(budget, evaluate, vars as unknown as Record<string, unknown>)), { type });
}

/**
 * `expression` as a condition, or why it cannot be one: its type must be `bool`, or `dyn` (a
 * message value such as `values.on`), which must then be a boolean each time — anything else is
 * an error for that message, saying `field`, not a silent false.
 */
export function asCondition(expression: Expression, field: string): Condition | string {
  if (expression.type === 'bool') return expression as Condition;
  if (expression.type !== 'dyn') return `must be a condition (true or false), but its type is ${expression.type}`;
  return (vars) => {
    const value = expression(vars);
    if (typeof value !== 'boolean') throw new ExpressionError(`${field} is ${value === null ? 'null' : `of type ${typeof value}`} for this message, not true or false`);
    return value;
  };
}

/**
 * Whether the metering holds on the cel-js installed (it relies on how cel-js builds its AST): a
 * comprehension must run out of a small budget, and `matches` must speak RE2, not JavaScript.
 */
function assertMeteringWorks(): void {
  const broken = (why: string) => new Error(`expression budgets cannot be enforced with this version of @marcbachmann/cel-js: ${why}`);
  const loop = compileExpression('values.list.all(x, x > 0.0)', { ...defaultRuleLimits, evalBudget: 20 });
  let stopped = false;
  try {
    loop({ ...PROBE_VARS, values: { list: Array.from({ length: 20 }, () => 1) } });
  } catch (err) {
    if (!(err instanceof ExpressionBudgetError)) throw broken((err as Error).message);
    stopped = true;
  }
  if (!stopped) throw broken('a comprehension ran past its budget');
  // `(?P<name>…)` is RE2 syntax that JavaScript's RegExp refuses.
  if (compileExpression('"ab".matches("(?P<first>a)b")')(PROBE_VARS) !== true) throw broken('matches does not run on RE2');
}

const PROBE_VARS: ExpressionVars = { values: {}, ts: 0, device: { id: '', name: '', type: '', attributes: {} }, metadata: {} };
assertMeteringWorks();

/** CEL ints come back as BigInt; telemetry values are JSON numbers. */
function fromCel(value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}
