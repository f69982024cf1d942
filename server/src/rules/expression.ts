import { Environment } from '@marcbachmann/cel-js';

/**
 * Conditions and computed values: CEL (Common Expression Language, cel-js), compiled once when a
 * rule loads. CEL cannot reach JavaScript: no prototypes, no globals, no functions but CEL's own;
 * a map key such as `constructor` is only ever a key. The variables an expression sees:
 *   values    the message's values (map)          ts        its time, ms since the epoch (double)
 *   device    {id, name, type, attributes}        metadata  what enrich nodes added (map)
 * Device values arrive as JSON numbers (CEL doubles) while `25` in an expression is a CEL int, so
 * mixed int/double arithmetic is defined here; comparisons across the two already work in CEL.
 */
export type Expression = (vars: ExpressionVars) => unknown;

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

/** Parses and type-checks `source`; throws ExpressionError saying what is wrong. */
export function compileExpression(source: string): Expression {
  const forbidden = FORBIDDEN.exec(source);
  if (forbidden) throw new ExpressionError(`"${forbidden[1]}" may not be used in an expression`);
  let evaluate: (vars: Record<string, unknown>) => unknown;
  try {
    const check = environment.check(source);
    if (!check.valid) throw new ExpressionError(firstLine(check.error?.message ?? 'invalid expression'));
    evaluate = environment.parse(source) as (vars: Record<string, unknown>) => unknown;
  } catch (err) {
    if (err instanceof ExpressionError) throw err;
    throw new ExpressionError(firstLine((err as Error).message));
  }
  return (vars) => fromCel(evaluate(vars as unknown as Record<string, unknown>));
}

/** CEL ints come back as BigInt; telemetry values are JSON numbers. */
function fromCel(value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}
