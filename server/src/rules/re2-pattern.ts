import { RE2JS } from 're2js';
import type { ExpressionLimits } from './rule-limits.js';

/**
 * Regular expressions of CEL's `matches`, on RE2 (re2js) as the CEL spec has it: RE2 syntax and
 * matching in time linear in the input, where JavaScript's backtracking RegExp can take seconds
 * or years on a pattern like `^(a+)+$`. A pattern must also be short and compile to a small
 * program, because matching costs input length × program size.
 */
export type Re2Pattern = RE2JS;

/** Compiles `pattern`; throws an Error saying why it is refused. */
export function compileRe2(pattern: string, limits: Pick<ExpressionLimits, 'regexMaxLength' | 'regexMaxProgramSize'>): Re2Pattern {
  if (pattern.length > limits.regexMaxLength) {
    throw new Error(`the regular expression is ${pattern.length} characters long, over the limit of ${limits.regexMaxLength}`);
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    throw new Error(`invalid regular expression ${JSON.stringify(pattern)} (RE2 syntax): ${(err as Error).message.replace(/^error parsing regexp: /, '')}`);
  }
  if (re.programSize() > limits.regexMaxProgramSize) {
    throw new Error(`the regular expression ${JSON.stringify(pattern)} compiles to ${re.programSize()} instructions, over the limit of ${limits.regexMaxProgramSize} (make repetitions like {n} smaller)`);
  }
  return re;
}

/**
 * Patterns that are not literals (computed per message) compiled once and kept, a few per
 * expression: a pattern taken from the telemetry is usually one of a handful.
 */
export class Re2Cache {
  private readonly patterns = new Map<string, Re2Pattern>();

  constructor(private readonly limits: Pick<ExpressionLimits, 'regexMaxLength' | 'regexMaxProgramSize'>, private readonly size = 16) {}

  get(pattern: string): Re2Pattern {
    let re = this.patterns.get(pattern);
    if (re) return re;
    re = compileRe2(pattern, this.limits);
    if (this.patterns.size >= this.size) this.patterns.delete(this.patterns.keys().next().value!);
    this.patterns.set(pattern, re);
    return re;
  }
}
