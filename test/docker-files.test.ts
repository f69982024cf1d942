import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { repoRoot, startScriptNodeFlags } from './support/child-server.js';
import { TestServer, tempDir } from './support/test-server.js';

/**
 * The rules the Dockerfile, .dockerignore and docker-compose.yml keep (no Docker engine runs here,
 * so they are read, not built): a current Node, a small image without dev dependencies or a
 * compiler that runs as `node`, no secret or local state in the build context, one build for both
 * services, the admin token only from the environment, ports remappable, and a health check that
 * asks the port Sluice really listens on.
 */

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), 'utf8');

interface Instruction { op: string; args: string }

/** Dockerfile → stages of instructions (comments dropped, `\` continuations joined). */
function dockerfileStages(text: string): Instruction[][] {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*\S)\s*$/.exec(line);
    if (!m) continue;
    const instruction = { op: m[1]!, args: m[2]!.replace(/\s+/g, ' ') };
    if (instruction.op === 'FROM') stages.push([]);
    stages.at(-1)!.push(instruction);
  }
  return stages;
}

/** A .dockerignore pattern as a test of a path relative to the context (Go filepath.Match-like, with `**`). */
function ignores(patterns: string[], file: string): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const source = pattern.split('**/').map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')).join('(?:.*/)?');
    if (new RegExp(`^${source}(?:/.*)?$`).test(file)) ignored = !negated;
  }
  return ignored;
}

const dockerignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));

type Service = {
  build?: unknown; image?: string; pull_policy?: string; command?: string[]; ports?: string[];
  environment?: Record<string, string>; volumes?: string[]; healthcheck?: { test?: string[]; disable?: boolean };
};
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service>; volumes: Record<string, { name?: string } | null> };

describe('Dockerfile', () => {
  const stages = dockerfileStages(read('Dockerfile'));
  const final = stages.at(-1)!;
  const ops = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op).map((i) => i.args);

  it('builds in stages, each on Node 24 LTS', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]!.args).toMatch(/^node:24-bookworm-slim(?: AS \w+)?$/);
  });

  it('puts only production dependencies in the final image, and no compiler', () => {
    const runs = ops(final, 'RUN').join('\n');
    expect(runs).not.toMatch(/npm (ci|install)|apt-get install|g\+\+/);
    expect(ops(final, 'COPY')).not.toContain('. .');
    const fromBuild = ops(final, 'COPY').find((c) => /node_modules/.test(c));
    const stageName = /--from=(\S+)/.exec(fromBuild ?? '')?.[1];
    const builder = stages.find((s) => s[0]!.args.endsWith(` AS ${stageName}`));
    expect(builder, 'node_modules come from a named build stage').toBeDefined();
    const builderRuns = ops(builder!, 'RUN');
    const lastInstall = builderRuns.findLastIndex((r) => /npm ci(?! --omit=dev)/.test(r));
    const pruned = builderRuns.findIndex((r, i) => i >= lastInstall && /npm (prune|ci) --omit=dev/.test(r));
    expect(pruned, 'dev dependencies pruned after the last full install').toBeGreaterThanOrEqual(lastInstall);
  });

  it('runs as the node user what `npm start` runs, with the same node flags', () => {
    const users = ops(final, 'USER');
    expect(users.at(-1)).toBe('node');
    const cmd = JSON.parse(ops(final, 'CMD').at(-1)!) as string[];
    expect(cmd).toEqual(['node', ...startScriptNodeFlags(), '--import', 'tsx', 'server/src/main.ts']);
    expect(final.findIndex((i) => i.op === 'USER')).toBeLessThan(final.findIndex((i) => i.op === 'CMD'));
  });

  it('has a health check that does not assume the port', () => {
    const check = ops(final, 'HEALTHCHECK').at(-1);
    expect(check).toMatch(/CMD \["node", "server\/src\/healthcheck\.mjs"\]/);
    expect(check).not.toMatch(/8080/);
  });
});

describe('.dockerignore', () => {
  it('keeps secrets, local state, installed and built files and tests out of the build context', () => {
    for (const file of ['.env', '.env.production', 'data/admin-token', 'data/log/telemetry-0/00000000000000000000.log',
      'node_modules/aedes/package.json', 'dashboard/dist/app.js', 'test/cli.test.ts', 'devices-sim/src/options.test.ts', 'server/src/x.test.ts', '.git/HEAD']) {
      expect(ignores(dockerignore, file), file).toBe(true);
    }
    for (const file of ['package.json', 'package-lock.json', 'server/src/main.ts', 'devices-sim/src/cli.ts', 'rules/schema.json', 'dashboard/index.html', 'dashboard/src/main.ts']) {
      expect(ignores(dockerignore, file), file).toBe(false);
    }
  });

  it('is matched as Docker matches it (the checker itself)', () => {
    expect(ignores(['data/'], 'database.ts')).toBe(false);
    expect(ignores(['**/*.test.ts'], 'a/b/c.test.ts')).toBe(true);
    expect(ignores(['test/', '!test/keep.ts'], 'test/keep.ts')).toBe(false);
  });

  it('and git ignores .env too, so a token put there is never committed', () => {
    expect(read('.gitignore').split('\n')).toContain('.env');
  });
});

describe('docker-compose.yml', () => {
  const services = Object.entries(compose.services);

  it('builds the image once; every other service reuses it and never pulls it', () => {
    const built = services.filter(([, s]) => s.build !== undefined);
    expect(built.map(([name]) => name)).toEqual(['sluice']);
    const image = built[0]![1].image;
    for (const [name, s] of services.filter(([, s]) => s.build === undefined)) {
      expect(s.image, name).toBe(image);
      expect(s.pull_policy, name).toBe('never');
    }
  });

  it('takes the admin token from the environment only: no default, never on a command line', () => {
    for (const [name, s] of services) {
      expect(s.environment?.ADMIN_TOKEN, name).toBe('${ADMIN_TOKEN:-}');
      expect((s.command ?? []).join(' '), name).not.toMatch(/admin-token|ADMIN_TOKEN/i);
    }
  });

  it('publishes ports the user can remap by variables', () => {
    expect(compose.services.sluice!.ports).toEqual(['${SLUICE_MQTT_PORT:-1883}:1883', '${SLUICE_HTTP_PORT:-8080}:8080']);
  });

  it("checks health on the port Sluice listens on, and the simulator doesn't inherit the server's check", () => {
    const test = compose.services.sluice!.healthcheck?.test ?? [];
    expect(test.join(' ')).not.toMatch(/8080/);
    expect(test).toEqual(['CMD', 'node', 'server/src/healthcheck.mjs']);
    expect(compose.services.simulator!.healthcheck).toEqual({ disable: true });
  });

  it('names its volume as the README does', () => {
    expect(compose.volumes['sluice-data']).toEqual({ name: 'sluice-data' });
    expect(compose.services.sluice!.volumes).toEqual(['sluice-data:/app/data']);
    expect(read('README.md')).toMatch(/named volume\s+`sluice-data`/);
  });
});

describe('the health check script', () => {
  const runCheck = (env: Record<string, string>) => new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'server/src/healthcheck.mjs')], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
    child.once('exit', (code) => resolve(code));
  });

  it('passes for a ready Sluice on the port ports.json names, and fails when nothing answers there', async () => {
    const server = await TestServer.start({ dataDir: tempDir() });
    try {
      // HTTP_PORT names a closed port: ports.json, written at start, wins.
      expect(await runCheck({ DATA_DIR: server.dataDir, HTTP_PORT: '1' })).toBe(0);
      expect(await runCheck({ DATA_DIR: path.join(server.dataDir, 'missing'), HTTP_PORT: String(server.sluice.ports.http) })).toBe(0);
      expect(await runCheck({ DATA_DIR: path.join(server.dataDir, 'missing'), HTTP_PORT: '1' })).toBe(1);
    } finally {
      await server.stop();
    }
    expect(await runCheck({ DATA_DIR: server.dataDir })).toBe(1);
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  });
});
