import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, startChildSluice, type ChildServer } from './support/child-server.js';
import { tempDir, waitFor } from './support/test-server.js';

/**
 * README.md's "Using it" walk-through, run as a reader runs it: its shell blocks, in order, in one
 * folder beside a fresh `npm start` (example rules and all), with only the ports changed. Each
 * JSON block the README shows must be what the block before it printed: same keys, same values,
 * except ids, tokens and times of "now", which must have the same form.
 */

const exec = promisify(execFile);

interface Block { lang: string; body: string; line: number }

function usingItBlocks(): Block[] {
  const text = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const start = text.indexOf('\n## Using it\n');
  const end = text.indexOf('\n## ', start + 1);
  expect(start, 'README has a "## Using it" section').toBeGreaterThan(0);
  const section = text.slice(start, end);
  const firstLine = text.slice(0, start).split('\n').length;
  const blocks: Block[] = [];
  for (const m of section.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```$/gm)) {
    const indent = m[1]!.length;
    const body = m[3]!.split('\n').map((l) => l.slice(indent)).join('\n');
    blocks.push({ lang: m[2]!, body, line: firstLine + section.slice(0, m.index).split('\n').length - 1 });
  }
  return blocks;
}

const RECENT = Date.parse('2025-06-01T00:00:00Z');
const volatileStrings: Record<string, RegExp> = {
  id: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  deviceId: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  token: /^[A-Za-z0-9_-]{20}$/,
};

/** Where `actual` departs from what the README shows, or undefined when it does not. */
function difference(shown: unknown, actual: unknown, at = '$'): string | undefined {
  const key = at.split('.').at(-1)!;
  if (typeof shown === 'number' && shown >= RECENT) {
    return typeof actual === 'number' && actual >= RECENT ? undefined : `${at}: a time of now, got ${JSON.stringify(actual)}`;
  }
  if (typeof shown === 'string' && key in volatileStrings) {
    return volatileStrings[key]!.test(shown) && typeof actual === 'string' && volatileStrings[key]!.test(actual) ? undefined : `${at}: ${JSON.stringify(actual)} is not of the form of ${JSON.stringify(shown)}`;
  }
  if (Array.isArray(shown)) {
    if (!Array.isArray(actual) || actual.length !== shown.length) return `${at}: ${JSON.stringify(actual)} is not an array of ${shown.length}`;
    for (let i = 0; i < shown.length; i++) {
      const d = difference(shown[i], actual[i], `${at}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (typeof shown === 'object' && shown !== null) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return `${at}: not an object: ${JSON.stringify(actual)}`;
    const [a, b] = [Object.keys(shown).sort(), Object.keys(actual).sort()];
    if (a.join() !== b.join()) return `${at}: keys ${b.join(',')} instead of ${a.join(',')}`;
    for (const k of a) {
      const d = difference((shown as Record<string, unknown>)[k], (actual as Record<string, unknown>)[k], `${at}.${k}`);
      if (d) return d;
    }
    return undefined;
  }
  return Object.is(shown, actual) ? undefined : `${at}: ${JSON.stringify(actual)} instead of ${JSON.stringify(shown)}`;
}

describe('README.md, step by step', () => {
  const work = tempDir('sluice-readme-');
  let server: ChildServer;
  beforeAll(async () => { server = await startChildSluice(path.join(work, 'data')); });
  afterAll(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('checks what it compares (the comparison itself)', () => {
    expect(difference({ ts: 1795398070242, value: 21.5 }, { ts: 1796000000000, value: 21.5 })).toBeUndefined();
    expect(difference({ ts: 1704067200000, value: 19 }, { ts: 1704067200001, value: 19 })).toMatch(/\$\.ts/);
    expect(difference({ a: 1 }, { a: 1, b: 2 })).toMatch(/keys/);
    expect(difference({ token: 'WECQPKyJcSpZ_oPA7C3T' }, { token: 'WECQPKyJcSpZ_oPA7C3' })).toMatch(/form/);
    expect(difference([1, 2], [1])).toMatch(/array of 2/);
  });

  it('shows what its commands print, run in order against a fresh Sluice', async () => {
    const blocks = usingItBlocks();
    const shell = blocks.filter((b) => b.lang === 'sh');
    expect(shell.length).toBeGreaterThanOrEqual(8);
    const vars = path.join(work, 'vars.sh');
    fs.writeFileSync(vars, '');
    const run = async (block: Block) => {
      const body = block.body
        .replaceAll('localhost:8080', `127.0.0.1:${server.ports.http}`)
        .replaceAll('-h localhost -p 1883', `-h 127.0.0.1 -p ${server.ports.mqtt}`);
      expect(body, `README line ${block.line}: every port was replaced`).not.toMatch(/\b(1883|8080)\b/);
      const script = `set -euo pipefail\nset -a\nsource ${vars}\n${body}\nexport -p > ${vars}\n`;
      const { stdout } = await exec('bash', ['-c', script], { cwd: work });
      return stdout;
    };
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i]!;
      if (block.lang !== 'sh') continue;
      const shown = blocks[i + 1]?.lang === 'json' ? (JSON.parse(blocks[i + 1]!.body) as unknown) : undefined;
      // A block that only reads may be run again until what it reads has been stored; one that
      // changes something runs once.
      const readsOnly = !/-X POST|mosquitto_pub|tee /.test(block.body);
      if (shown === undefined || !readsOnly) {
        const out = await run(block);
        if (shown !== undefined) expect(difference(shown, JSON.parse(out)), `README line ${block.line}: ${out}`).toBeUndefined();
        continue;
      }
      let last = '';
      await waitFor(`README line ${block.line} to print what it shows`, async () => {
        last = await run(block);
        return difference(shown, JSON.parse(last)) === undefined ? true : undefined;
      }, 10_000).catch(() => {
        expect(difference(shown, JSON.parse(last)), `README line ${block.line}: ${last}`).toBeUndefined();
      });
    }
  });

  it("shows the admin-token line as Sluice prints it at first start", () => {
    const shown = usingItBlocks().find((b) => b.lang === '' && b.body.includes('admin token'));
    expect(shown, 'the README shows the start-up line').toBeDefined();
    const m = /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: (admin token \(generated, stored in the data dir\)): (\S+)\n$/.exec(shown!.body);
    expect(m, shown!.body).not.toBeNull();
    const token = fs.readFileSync(path.join(work, 'data', 'admin-token'), 'utf8').trim();
    expect(m![2]!.length).toBe(token.length);
    expect(server.output()).toContain(`"msg":"${m![1]}: ${token}"`);
  });
});
