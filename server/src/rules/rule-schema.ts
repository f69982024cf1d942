import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { invalidInput } from '../errors.js';

/** The rule document format, as people write it (rules/schema.json is the formal definition). */
export interface RuleDocument {
  id: string;
  name?: string;
  description?: string;
  enabled?: boolean;
  input?: RuleInput;
  devices?: { ids?: string[]; types?: string[]; attributes?: Record<string, unknown> };
  nodes: RuleNodeSpec[];
}

export type RuleInput = 'telemetry' | 'windows';

export interface RuleNodeSpec {
  id: string;
  type: string;
  next?: string | null;
  [setting: string]: unknown;
}

export const ruleSchemaFile = path.resolve(import.meta.dirname, '../../../rules/schema.json');
const schema = JSON.parse(fs.readFileSync(ruleSchemaFile, 'utf8')) as Record<string, unknown>;
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile<RuleDocument>(schema);
const nodeTypes = ((schema.definitions as Record<string, { properties?: { type?: { enum?: string[] } } }>).node!.properties!.type!.enum!);

/**
 * Checks a rule document against the schema; throws INVALID_INPUT naming the rule, the node and
 * the JSON path at fault, e.g. `rule "hot", node "f1" (nodes[0].if): missing required field`.
 */
export function validateRuleDocument(doc: unknown): RuleDocument {
  if (validate(doc)) return doc;
  const error = mostSpecific(validate.errors ?? []);
  throw invalidInput(`${where(doc, error.instancePath)}: ${describe(error)}`);
}

/** `rule "id", node "n" (nodes[2].if)` for a JSON pointer into a rule document. */
export function where(doc: unknown, pointer: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const ruleId = typeof (doc as { id?: unknown })?.id === 'string' ? (doc as { id: string }).id : undefined;
  let text = ruleId !== undefined ? `rule "${ruleId}"` : 'rule';
  if (parts[0] === 'nodes' && parts[1] !== undefined) {
    const node = (doc as { nodes?: unknown[] }).nodes?.[Number(parts[1])] as { id?: unknown } | undefined;
    if (typeof node?.id === 'string') text += `, node "${node.id}"`;
  }
  const jsonPath = parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
  return jsonPath ? `${text} (${jsonPath})` : text;
}

function mostSpecific(errors: ErrorObject[]): ErrorObject {
  const useful = errors.filter((e) => e.keyword !== 'if' && e.keyword !== 'allOf');
  const pool = useful.length > 0 ? useful : errors;
  // The deepest path is the most precise; among equals, prefer a message about a named field.
  return pool.reduce((best, e) => {
    const depth = (x: ErrorObject) => x.instancePath.split('/').length;
    if (depth(e) !== depth(best)) return depth(e) > depth(best) ? e : best;
    const named = (x: ErrorObject) => (x.keyword === 'required' || x.keyword === 'additionalProperties' || x.keyword === 'enum' ? 1 : 0);
    return named(e) > named(best) ? e : best;
  });
}

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'required': return `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'additionalProperties': return `unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    case 'enum':
      if (e.instancePath.endsWith('/type')) return `unknown node kind; the kinds are ${nodeTypes.join(', ')}`;
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'oneOf': return 'give exactly one of the alternatives (see rules/README.md)';
    case 'pattern': return `${e.message ?? 'does not match'}`;
    default: return e.message ?? 'is not valid';
  }
}
