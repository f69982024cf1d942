import { Route, type NodeKind } from '../node-kind.js';

/**
 * `{"type": "switch", "cases": [{"if": "<condition>", "to": "<node id>"}], "default": "<node id>"}`:
 * the first case whose condition holds sends the message to its node; none: to `default`, or
 * dropped when there is no default.
 */
export const switchNode: NodeKind = {
  type: 'switch',
  compile(spec, ctx) {
    const cases = (spec.cases as { if: string; to: string }[]).map((c, i) => ({
      condition: ctx.expression(c.if, `cases[${i}].if`),
      to: ctx.indexOf(c.to, `cases[${i}].to`),
    }));
    const fallback = typeof spec.default === 'string' ? ctx.indexOf(spec.default, 'default') : -1;
    return (message) => {
      for (const c of cases) if (c.condition(message) === true) return new Route(c.to, message);
      return fallback >= 0 ? new Route(fallback, message) : null;
    };
  },
};
