import { SluiceError, invalidInput } from '../errors.js';
import { asCondition, compileExpression, ExpressionError } from './expression.js';
import type { RuleMessage, RuleSinks } from './message.js';
import { nodeKinds } from './node-registry.js';
import type { CompileContext, NodeRun } from './node-kind.js';
import { ruleLimits, type RuleLimitName, type RuleLimits } from './rule-limits.js';
import { validateRuleDocument, where, type RuleDocument, type RuleInput } from './rule-schema.js';

export interface CompiledNode {
  id: string;
  type: string;
  run: NodeRun;
  /** Index of the node that follows, or -1 at the end of the chain. */
  next: number;
  /** Times this node hit each limit since the rule was compiled (the rule engine counts failures here too). */
  limited: Partial<Record<RuleLimitName, number>>;
}

export interface CompiledRule {
  id: string;
  document: RuleDocument;
  enabled: boolean;
  input: RuleInput;
  appliesTo(device: RuleMessage['device']): boolean;
  nodes: CompiledNode[];
}

/** Told when a node hits a limit without failing the message (a deduplicate node forgetting a key early). */
export type LimitListener = (rule: string, node: string, limit: RuleLimitName, message: string) => void;

export interface CompileOptions {
  random?: () => number;
  /** The server's limits; those left out are the defaults (rule-limits.ts). */
  limits?: Partial<RuleLimits>;
  onLimit?: LimitListener;
}

/**
 * A rule document → a runnable chain: schema check, node ids, each node compiled by its kind
 * (expressions parsed and checked once, here), routing resolved to indexes and checked for
 * cycles, settings checked against the limits. Every error names the rule, the node and the JSON
 * path at fault.
 */
export function compileRule(input: unknown, sinks: RuleSinks, options: CompileOptions | (() => number) = {}): CompiledRule {
  const { random = Math.random, onLimit, ...rest } = typeof options === 'function' ? { random: options } as CompileOptions : options;
  const limits = ruleLimits(rest.limits);
  const doc = validateRuleDocument(input);
  const index = new Map<string, number>();
  doc.nodes.forEach((n, i) => {
    if (index.has(n.id)) throw invalidInput(`${where(doc, `/nodes/${i}/id`)}: node id "${n.id}" is used twice`);
    index.set(n.id, i);
  });
  const edges: number[][] = doc.nodes.map(() => []);
  const nodes = doc.nodes.map((spec, i): CompiledNode => {
    const at = (field: string) => where(doc, `/nodes/${i}/${field.replace(/\[(\d+)\]/g, '/$1').replace(/\./g, '/')}`);
    const limited: CompiledNode['limited'] = {};
    const ctx: CompileContext = {
      ruleId: doc.id,
      nodeId: spec.id,
      sinks,
      random,
      limits,
      limitHit(limit, message) {
        limited[limit] = (limited[limit] ?? 0) + 1;
        onLimit?.(doc.id, spec.id, limit, message);
      },
      input: doc.input ?? 'telemetry',
      expression(source, field) {
        try {
          return compileExpression(source, limits);
        } catch (err) {
          if (err instanceof ExpressionError) throw invalidInput(`${at(field)}: ${err.message}`);
          throw err;
        }
      },
      condition(source, field) {
        const condition = asCondition(ctx.expression(source, field), field);
        if (typeof condition === 'string') throw invalidInput(`${at(field)}: ${condition}`);
        return condition;
      },
      indexOf(id, field) {
        const target = index.get(id);
        if (target === undefined) throw invalidInput(`${at(field)}: no node "${id}" in this rule`);
        edges[i]!.push(target);
        return target;
      },
      fail(field, message) {
        throw invalidInput(`${at(field)}: ${message}`);
      },
    };
    const kind = nodeKinds.get(spec.type);
    if (!kind) throw invalidInput(`${at('type')}: unknown node kind "${spec.type}"`);
    const run = kind.compile(spec, ctx);
    // `next`: a node id, null to end the chain here; absent: the following node (a switch routes itself).
    const next = typeof spec.next === 'string' ? ctx.indexOf(spec.next, 'next')
      : spec.next === null || spec.type === 'switch' ? -1 : i + 1 < doc.nodes.length ? i + 1 : -1;
    if (spec.next === undefined && next >= 0) edges[i]!.push(next);
    return { id: spec.id, type: spec.type, run, next, limited };
  });
  const cycle = findCycle(edges);
  if (cycle) {
    const names = cycle.map((i) => doc.nodes[i]!.id);
    throw invalidInput(`${where(doc, `/nodes/${cycle[cycle.length - 2]}`)}: routing makes a cycle: ${names.join(' → ')}`);
  }
  return { id: doc.id, document: doc, enabled: doc.enabled !== false, input: doc.input ?? 'telemetry', appliesTo: deviceSelector(doc), nodes };
}

function deviceSelector(doc: RuleDocument): CompiledRule['appliesTo'] {
  const sel = doc.devices;
  if (!sel) return () => true;
  const ids = sel.ids ? new Set(sel.ids) : undefined;
  const types = sel.types ? new Set(sel.types) : undefined;
  const attributes = sel.attributes ? Object.entries(sel.attributes) : [];
  return (device) => (!ids || ids.has(device.id)) && (!types || types.has(device.type))
    && attributes.every(([k, v]) => JSON.stringify(device.attributes[k]) === JSON.stringify(v));
}

/** A cycle in the node graph as a list of indexes that starts and ends at the same node. */
function findCycle(edges: number[][]): number[] | undefined {
  const state = new Array<number>(edges.length).fill(0); // 0 new, 1 on the path, 2 done
  const path: number[] = [];
  const visit = (n: number): number[] | undefined => {
    state[n] = 1;
    path.push(n);
    for (const m of edges[n]!) {
      if (state[m] === 1) return [...path.slice(path.indexOf(m)), m];
      if (state[m] === 0) {
        const found = visit(m);
        if (found) return found;
      }
    }
    path.pop();
    state[n] = 2;
    return undefined;
  };
  for (let n = 0; n < edges.length; n++) {
    if (state[n] === 0) {
      const found = visit(n);
      if (found) return found;
    }
  }
  return undefined;
}

export function isRuleError(err: unknown): err is SluiceError {
  return err instanceof SluiceError && err.code === 'INVALID_INPUT';
}
