import { compileWindowNode, WindowSettingError, type WindowNodeSettings } from '../../windows/window-node-spec.js';
import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "window", "window": {"kind": "tumbling", "size": "1m", "fields": ["temperature"],
 * "ops": ["avg", "max"]}}`: hands the message to the window engine (docs: rules/README.md); passes
 * it on.
 */
export const windowNode: NodeKind = {
  type: 'window',
  compile(spec, ctx) {
    let compiled;
    try {
      compiled = compileWindowNode(ctx.ruleId, ctx.nodeId, spec.window as WindowNodeSettings, ctx.limits);
    } catch (err) {
      if (err instanceof WindowSettingError) return ctx.fail(err.field ? `window.${err.field}` : 'window', err.message);
      return ctx.fail('window', (err as Error).message);
    }
    return (message) => {
      ctx.sinks.window(ctx.ruleId, ctx.nodeId, compiled, message);
      return message;
    };
  },
};
