import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLog } from '../server/src/log/file-log.js';
import { capturingLogger, TestServer, tempDir, waitFor } from './support/test-server.js';

/**
 * A damaged consumer-offsets file must not stop startup nor make a group skip records: the file
 * is moved aside, named in a warning, and the group re-reads from the earliest offset
 * (at-least-once: reading again is safe, skipping is not).
 */
const offsetsDir = (dataDir: string) => path.join(dataDir, 'log', '__consumer_offsets');

describe('damaged consumer-offsets files', () => {
  const dirs: string[] = [];
  const opened: FileLog[] = [];
  afterEach(async () => {
    for (const log of opened.splice(0)) await log.close();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const freshDir = () => {
    const d = tempDir();
    dirs.push(d);
    fs.mkdirSync(offsetsDir(d), { recursive: true });
    return d;
  };

  it.each([
    ['empty', (file: string) => fs.writeFileSync(file, '')],
    ['garbage', (file: string) => fs.writeFileSync(file, '\u0000\u00ff not json at all')],
    ['truncated', (file: string) => fs.writeFileSync(file, '{"t":[12,4')],
    ['not an object', (file: string) => fs.writeFileSync(file, '[1,2,3]')],
    ['a directory', (file: string) => fs.mkdirSync(file)],
  ])('%s: logged with its path, moved aside, the group starts from the earliest offset', async (_what, damage) => {
    const dir = freshDir();
    const file = path.join(offsetsDir(dir), 'storage.json');
    damage(file);
    fs.writeFileSync(path.join(offsetsDir(dir), 'rules.json'), JSON.stringify({ t: [3] }));
    const { logger, lines } = capturingLogger();
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0 });
    opened.push(log);
    await log.ensureTopic('t', 1);
    expect(await log.committed('storage', 't', 0)).toBeUndefined();
    // Other groups' files are untouched.
    expect(await log.committed('rules', 't', 0)).toBe(3);
    const warning = lines.find((l) => l.msg.includes('consumer offsets file') && l.msg.includes(file));
    expect(warning, JSON.stringify(lines)).toBeDefined();
    expect(warning!.level).toBe(40);
    const aside = fs.readdirSync(offsetsDir(dir)).filter((f) => f.startsWith('storage.json.damaged-'));
    expect(aside).toHaveLength(1);
    expect(fs.existsSync(file)).toBe(false);
    expect(warning!.msg).toContain(aside[0]!);
    expect(log.stats.consumerOffsetsDiscarded).toBe(1);
    // The next commit writes a good file again.
    log.commit('storage', 't', 0, 1);
    await log.close();
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ t: [1] });
  });

  it('drops each invalid partition offset (non-integers, negatives, strings, huge), keeps the valid ones, names file and partition', async () => {
    const dir = freshDir();
    const file = path.join(offsetsDir(dir), 'storage.json');
    fs.writeFileSync(file, JSON.stringify({ t: [1.5, -3, 'x', 1e300, 7, null, { n: 1 }] }));
    const { logger, lines } = capturingLogger();
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0 });
    opened.push(log);
    await log.ensureTopic('t', 7);
    const committed = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((p) => log.committed('storage', 't', p)));
    expect(committed).toEqual([undefined, undefined, undefined, undefined, 7, undefined, undefined]);
    const warnings = lines.filter((l) => l.msg.includes('invalid committed offset'));
    expect(warnings.map((w) => w.partition)).toEqual([0, 1, 2, 3, 6]);
    for (const w of warnings) {
      expect(w.msg).toContain(file);
      expect(w.file).toBe(file);
      expect(w.group).toBe('storage');
    }
    // null is what "never committed" looked like: not damage.
    expect(log.stats.consumerOffsetsDiscarded).toBe(5);
  });

  it('a topic that is not a list of offsets is dropped whole, the rest of the file kept', async () => {
    const dir = freshDir();
    const file = path.join(offsetsDir(dir), 'storage.json');
    fs.writeFileSync(file, JSON.stringify({ t: 'oops', u: [5] }));
    const { logger, lines } = capturingLogger();
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0 });
    opened.push(log);
    await log.ensureTopic('t', 1);
    await log.ensureTopic('u', 1);
    expect(await log.committed('storage', 't', 0)).toBeUndefined();
    expect(await log.committed('storage', 'u', 0)).toBe(5);
    expect(lines.some((l) => l.msg.includes(file) && l.topic === 't')).toBe(true);
  });
});

describe('storage after its offsets file was damaged (a real server)', () => {
  it('stores every record once its partition offsets are invalid, without a "past the end" warning', async () => {
    const dataDir = tempDir();
    try {
      const first = await TestServer.start({ dataDir });
      const device = await first.createDevice('offsets-victim');
      const base = 1_700_000_000_000;
      for (let i = 0; i < 50; i++) {
        const res = await fetch(`${first.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: base + i, values: { n: i } }) });
        expect(res.status).toBe(200);
      }
      await first.sluice.storageCaughtUp();
      await first.stop();
      // Lose what SQLite has of this device's points, then damage the storage group's offsets:
      // every record must be read and stored again.
      const Database = (await import('better-sqlite3')).default;
      const db = new Database(path.join(dataDir, 'sluice.db'));
      db.exec('DELETE FROM ts_points');
      db.close();
      const file = path.join(offsetsDir(dataDir), 'storage.json');
      const partitions = (JSON.parse(fs.readFileSync(file, 'utf8')) as { telemetry: (number | null)[] }).telemetry;
      expect(partitions.some((o) => typeof o === 'number' && o > 0)).toBe(true);
      fs.writeFileSync(file, JSON.stringify({ telemetry: partitions.map((_, i) => [1.5, 1e300, 'x', -3][i % 4]) }));

      const { logger, lines } = capturingLogger();
      const second = await TestServer.start({ dataDir }, logger);
      try {
        await second.sluice.storageCaughtUp();
        const series = await waitFor('all 50 points', async () => {
          const s = await second.json<{ n?: unknown[] }>('GET', `/api/devices/${device.id}/telemetry?keys=n&from=${base}&to=${base + 100}&limit=1000`);
          return (s.n?.length ?? 0) === 50 ? s : undefined;
        }, 10_000);
        expect(series.n).toHaveLength(50);
        expect(lines.filter((l) => l.msg.includes('past the end'))).toEqual([]);
        expect(lines.some((l) => l.msg.includes('invalid committed offset') && l.msg.includes(file))).toBe(true);
        const metrics = await (await second.api('GET', '/metrics')).text();
        expect(metrics).toMatch(/sluice_consumer_offsets_discarded_total \d+/);
        expect(Number(/sluice_consumer_offsets_discarded_total (\d+)/.exec(metrics)![1])).toBeGreaterThan(0);
      } finally {
        await second.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
