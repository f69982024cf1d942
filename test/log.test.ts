import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLog } from '../server/src/log/file-log.js';
import { murmur2, partitionForKey } from '../server/src/log/partitioner.js';
import { silentLogger, tempDir } from './support/test-server.js';

const record = (key: string, text: string, timestamp = 1) => ({ key, value: Buffer.from(text), timestamp, headers: { kind: 'telemetry' } });

describe('partitioner', () => {
  it('matches Kafka\'s murmur2 (values from the Java client\'s tests)', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const cases: [string, number][] = [
      ['21', -973932308], ['foobar', -790332482], ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829], ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ];
    for (const [key, expected] of cases) expect(murmur2(Buffer.from(key))).toBe(expected);
  });

  it('keeps one key on one partition', () => {
    const p = partitionForKey('device-42', 8);
    for (let i = 0; i < 10; i++) expect(partitionForKey('device-42', 8)).toBe(p);
    expect(p).toBeGreaterThanOrEqual(0);
    expect(p).toBeLessThan(8);
  });
});

describe('file log', () => {
  const opened: FileLog[] = [];
  const open = (dir: string) => {
    const log = new FileLog(dir, { mode: 'interval', intervalMs: 50 }, silentLogger);
    opened.push(log);
    return log;
  };
  afterEach(async () => {
    for (const log of opened.splice(0)) await log.close();
  });

  it('gives dense offsets per partition and reads records back in order', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 3);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => log.append('t', record(`k${i % 5}`, `v${i}`))));
    for (let p = 0; p < 3; p++) {
      const offsets = results.filter((r) => r.partition === p).map((r) => r.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
      const read = log.read('t', p, 0, 1 << 20);
      expect(read.map((r) => r.offset)).toEqual(offsets);
      for (const r of read) expect(partitionForKey(r.key, 3)).toBe(p);
    }
    const all = [0, 1, 2].flatMap((p) => log.read('t', p, 0, 1 << 20)).map((r) => r.value.toString()).sort();
    expect(all).toEqual(Array.from({ length: 30 }, (_, i) => `v${i}`).sort());
  });

  it('keeps keys, headers and timestamps', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    await log.append('t', { key: 'dév-ü', value: Buffer.from('{"a":1}'), timestamp: 1_700_000_000_123, headers: { kind: 'attributes', x: 'y' } });
    const [r] = log.read('t', 0, 0, 100);
    expect(r).toMatchObject({ key: 'dév-ü', timestamp: 1_700_000_000_123, headers: { kind: 'attributes', x: 'y' }, offset: 0, partition: 0, topic: 't' });
    expect(r!.value.toString()).toBe('{"a":1}');
  });

  it('reads nothing beyond the end or before the start', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    await log.append('t', record('k', 'a'));
    expect(log.read('t', 0, 1, 100)).toEqual([]);
    expect(log.read('t', 0, 99, 100)).toEqual([]);
    expect(log.read('t', 0, -1, 100)).toEqual([]);
    expect(() => log.read('t', 5, 0, 100)).toThrow(/no partition 5/);
    expect(() => log.read('nope', 0, 0, 100)).toThrow(/no topic "nope"/);
  });

  it('reads at least one record however small maxBytes is, and stops near maxBytes', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    for (let i = 0; i < 10; i++) await log.append('t', record('k', 'x'.repeat(100)));
    expect(log.read('t', 0, 0, 1)).toHaveLength(1);
    const some = log.read('t', 0, 0, 350);
    expect(some.length).toBeGreaterThan(1);
    expect(some.length).toBeLessThan(10);
  });

  it('keeps records and committed offsets across a restart', async () => {
    const dir = tempDir();
    const first = new FileLog(dir, { mode: 'always' }, silentLogger);
    await first.ensureTopic('t', 2);
    for (let i = 0; i < 20; i++) await first.append('t', record(`k${i}`, `v${i}`));
    first.commit('g', 't', 0, 3);
    await first.close();

    const second = open(dir);
    expect(await second.ensureTopic('t', 7)).toBe(2);
    const total = second.describeTopics()[0]!.partitions.reduce((s, p) => s + p.endOffset, 0);
    expect(total).toBe(20);
    expect(second.committed('g', 't', 0)).toBe(3);
    expect(second.committed('g', 't', 1)).toBe(0);
    const next = await second.append('t', record('k0', 'after'));
    expect(next.offset).toBe(second.describeTopics()[0]!.partitions[next.partition]!.endOffset - 1);
  });

  it('cuts off a torn last record on open and goes on appending after it', async () => {
    const dir = tempDir();
    const first = new FileLog(dir, { mode: 'always' }, silentLogger);
    await first.ensureTopic('t', 1);
    for (let i = 0; i < 5; i++) await first.append('t', record('k', `v${i}`));
    await first.close();
    const file = path.join(dir, 'log', 't', '0', '00000000000000000000.log');
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 3);

    const second = open(dir);
    expect(second.read('t', 0, 0, 1 << 20).map((r) => r.value.toString())).toEqual(['v0', 'v1', 'v2', 'v3']);
    expect((await second.append('t', record('k', 'v4-again'))).offset).toBe(4);
    expect(second.read('t', 0, 4, 100)[0]!.value.toString()).toBe('v4-again');
  });

  it('cuts off the tail from a record whose bytes were flipped', async () => {
    const dir = tempDir();
    const first = new FileLog(dir, { mode: 'always' }, silentLogger);
    await first.ensureTopic('t', 1);
    for (let i = 0; i < 5; i++) await first.append('t', record('k', `value-${i}`));
    await first.close();
    const file = path.join(dir, 'log', 't', '0', '00000000000000000000.log');
    const bytes = fs.readFileSync(file);
    const frameBytes = bytes.length / 5; // five frames of the same size
    const insideThird = 2 * frameBytes + frameBytes - 2; // a byte of the third record's value
    bytes[insideThird] = bytes[insideThird]! ^ 0xff;
    fs.writeFileSync(file, bytes);

    const second = open(dir);
    const values = second.read('t', 0, 0, 1 << 20).map((r) => r.value.toString());
    expect(values).toEqual(['value-0', 'value-1']);
  });

  it('wakes a follower when data arrives', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    let woke = false;
    const waiting = log.waitFor('t', 0, 0).then(() => { woke = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(woke).toBe(false);
    await log.append('t', record('k', 'a'));
    await waiting;
    expect(woke).toBe(true);
  });

  it('refuses appends once closed', async () => {
    const log = new FileLog(tempDir(), { mode: 'never' }, silentLogger);
    await log.ensureTopic('t', 1);
    await log.close();
    await expect(log.append('t', record('k', 'a'))).rejects.toThrow(/closed/);
  });
});
