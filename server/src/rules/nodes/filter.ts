import type { NodeKind } from '../node-kind.js';

/** `{"type": "filter", "if": "<condition>"}`: passes the message when the condition is true. */
export const filterNode: NodeKind = {
  type: 'filter',
  compile(spec, ctx) {
    const condition = ctx.expression(spec.if as string, 'if');
    return (message) => (condition(message) === true ? message : null);
  },
};
