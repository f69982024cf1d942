import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupOffsets } from '../server/src/log/group-offsets.js';
import { capturingLogger, silentLogger, tempDir, waitFor } from './support/test-server.js';

/** Committed offsets of consumer groups on disk (group-offsets.ts), real files in a temp dir. */
describe('group offsets', () => {
  const open: GroupOffsets[] = [];
  afterEach(async () => {
    for (const g of open.splice(0)) await g.close();
  });
  const make = (dir: string, persistEveryMs = 20, logger = silentLogger, discarded?: (n: number) => void) => {
    const g = new GroupOffsets(dir, persistEveryMs, logger, discarded);
    open.push(g);
    return g;
  };
  const read = (dir: string, group: string) => JSON.parse(fs.readFileSync(path.join(dir, `${encodeURIComponent(group)}.json`), 'utf8')) as unknown;

  it('keeps commits in memory at once and writes them within the interval, one file per group', async () => {
    const dir = path.join(tempDir(), 'offsets');
    const g = make(dir, 30);
    expect(fs.existsSync(dir)).toBe(true);
    g.set('storage', 't', 0, 5);
    g.set('storage', 't', 2, 7);
    g.set('storage', 'u', 0, 1);
    g.set('rules/a b', 't', 1, 3);
    expect(g.get('storage', 't', 0)).toBe(5);
    expect(g.get('storage', 't', 1)).toBeUndefined();
    expect(g.get('storage', 'nope', 0)).toBeUndefined();
    expect(g.get('nobody', 't', 0)).toBeUndefined();
    expect(fs.readdirSync(dir)).toEqual([]); // not before the interval
    await waitFor('both files', () => (fs.readdirSync(dir).sort().join() === 'rules%2Fa%20b.json,storage.json' ? true : undefined));
    expect(read(dir, 'storage')).toEqual({ t: [5, null, 7], u: [1] });
    expect(read(dir, 'rules/a b')).toEqual({ t: [null, 3] });
    expect(g.entries()).toEqual([
      { group: 'storage', topic: 't', partitions: [5, undefined, 7] },
      { group: 'storage', topic: 'u', partitions: [1] },
      { group: 'rules/a b', topic: 't', partitions: [undefined, 3] },
    ]);
    // A later commit is written again; the other group's file is left alone.
    const rulesFile = path.join(dir, 'rules%2Fa%20b.json');
    const rulesMtime = fs.statSync(rulesFile).mtimeMs;
    g.set('storage', 't', 0, 6);
    await waitFor('the new offset on disk', () => ((read(dir, 'storage') as { t: number[] }).t[0] === 6 ? true : undefined));
    expect(fs.statSync(rulesFile).mtimeMs).toBe(rulesMtime);
    expect(fs.readdirSync(dir).sort()).toEqual(['rules%2Fa%20b.json', 'storage.json']); // no temp files left
  });

  it('reads what was written when opened again, group names decoded', async () => {
    const dir = tempDir();
    const first = new GroupOffsets(dir, 10_000, silentLogger);
    first.set('rules/a b', 't', 1, 3);
    first.set('storage', 't', 0, 9);
    await first.close(); // writes at once, long before the interval
    expect(read(dir, 'storage')).toEqual({ t: [9] });
    const second = make(dir);
    expect(second.get('rules/a b', 't', 1)).toBe(3);
    expect(second.get('storage', 't', 0)).toBe(9);
    expect(second.get('storage', 't', 1)).toBeUndefined();
  });

  it('refuses to commit what is not an offset', () => {
    const g = make(tempDir());
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) {
      expect(() => g.set('g', 't', 0, bad)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', message: `a committed offset must be an integer >= 0, got ${bad}` }));
    }
    expect(g.get('g', 't', 0)).toBeUndefined();
    g.set('g', 't', 0, 0);
    expect(g.get('g', 't', 0)).toBe(0);
  });

  it('writes at most once per interval however many commits come, and the last one wins', async () => {
    const dir = tempDir();
    const g = make(dir, 40);
    const started = Date.now();
    for (let i = 1; i <= 200; i++) g.set('g', 't', 0, i);
    await waitFor('the file', () => (fs.existsSync(path.join(dir, 'g.json')) ? true : undefined));
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
    expect(read(dir, 'g')).toEqual({ t: [200] });
  });

  it('tries a background write that failed again later, and loses nothing', async () => {
    const dir = tempDir();
    const g = make(dir, 10);
    // The temp file's name taken by a directory: opening it for writing fails.
    const blocker = path.join(dir, 'g.json.tmp-bg');
    fs.mkdirSync(blocker);
    g.set('g', 't', 0, 4);
    await new Promise((r) => setTimeout(r, 60)); // several intervals: every try failed
    expect(fs.existsSync(path.join(dir, 'g.json'))).toBe(false);
    fs.rmdirSync(blocker);
    await waitFor('the offset on disk after all', () => (fs.existsSync(path.join(dir, 'g.json')) ? true : undefined));
    expect(read(dir, 'g')).toEqual({ t: [4] });
  });

  it('on close, waits for a background write and writes what came after it, synchronously', async () => {
    const dir = tempDir();
    const g = new GroupOffsets(dir, 5, silentLogger);
    g.set('a', 't', 0, 1);
    await new Promise((r) => setTimeout(r, 15)); // the background write of a has started or ended
    g.set('b', 't', 0, 2);
    g.set('a', 't', 0, 3);
    await g.close();
    expect(read(dir, 'a')).toEqual({ t: [3] });
    expect(read(dir, 'b')).toEqual({ t: [2] });
    // Closed: nothing is scheduled any more; a commit after close stays in memory only.
    g.set('a', 't', 0, 4);
    await new Promise((r) => setTimeout(r, 30));
    expect(read(dir, 'a')).toEqual({ t: [3] });
    expect(fs.readdirSync(dir).sort()).toEqual(['a.json', 'b.json']);
  });

  it('persist() writes only the groups that changed', async () => {
    const dir = tempDir();
    const g = make(dir, 10_000);
    g.set('a', 't', 0, 1);
    g.persist();
    expect(read(dir, 'a')).toEqual({ t: [1] });
    fs.rmSync(path.join(dir, 'a.json'));
    g.set('b', 't', 0, 2);
    g.persist();
    expect(fs.readdirSync(dir)).toEqual(['b.json']);
    g.persist();
    expect(fs.readdirSync(dir)).toEqual(['b.json']);
  });

  it('moves a damaged file aside, counts it and says why; other files load', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"t": [1,');
    fs.writeFileSync(path.join(dir, 'good.json'), JSON.stringify({ t: [2, 'x'] }));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an offsets file');
    const { logger, lines } = capturingLogger();
    const counts: number[] = [];
    const g = make(dir, 10_000, logger, (n) => counts.push(n));
    expect(g.get('bad', 't', 0)).toBeUndefined();
    expect(g.get('good', 't', 0)).toBe(2);
    expect(g.get('good', 't', 1)).toBeUndefined();
    expect(counts.sort()).toEqual([1, 1]);
    const damaged = lines.find((l) => l.msg.includes('is damaged'))!;
    expect(damaged).toMatchObject({ level: 40, file: path.join(dir, 'bad.json'), reason: expect.stringMatching(/^not JSON/) });
    expect(damaged.msg).toContain(`moved it to ${damaged.aside as string}`);
    expect(fs.existsSync(damaged.aside as string)).toBe(true);
    expect(lines.find((l) => l.msg.includes('invalid committed offset'))).toMatchObject({
      level: 40, group: 'good', topic: 't', partition: 1, value: 'x',
      msg: `consumer offsets file ${path.join(dir, 'good.json')}: invalid committed offset "x" for t/1; group "good" re-reads that partition from the earliest offset`,
    });
    expect(fs.readdirSync(dir)).toContain('notes.txt');
  });

  it('names a whole topic that is not a list of offsets in its warning', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'g.json'), JSON.stringify({ t: 7, u: [1] }));
    const { logger, lines } = capturingLogger();
    const g = make(dir, 10_000, logger);
    expect(g.get('g', 'u', 0)).toBe(1);
    expect(lines.find((l) => l.msg.includes('invalid committed offset'))!.msg).toBe(
      `consumer offsets file ${path.join(dir, 'g.json')}: invalid committed offset 7 for topic "t"; group "g" re-reads the topic from the earliest offset`,
    );
  });

  it('says so when a damaged file cannot even be moved aside, and starts the group over', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'g.json'), 'garbage');
    // The name the file would be moved to is a directory that is not empty: rename fails.
    const realNow = Date.now;
    const now = 1_700_000_000_000;
    Date.now = () => now;
    try {
      fs.mkdirSync(path.join(dir, `g.json.damaged-${now}`, 'x'), { recursive: true });
      const { logger, lines } = capturingLogger();
      const g = make(dir, 10_000, logger);
      expect(g.get('g', 't', 0)).toBeUndefined();
      expect(lines.find((l) => l.msg.includes('is damaged'))!.msg).toMatch(/could not move it aside \(.+\)/);
    } finally {
      Date.now = realNow;
    }
  });
});
