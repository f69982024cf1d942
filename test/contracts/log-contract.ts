import { afterEach, describe, expect, it } from 'vitest';
import { partitionForKey } from '../../server/src/log/partitioner.js';
import type { Log, LogRecord } from '../../server/src/log/types.js';

export const record = (key: string, text: string, timestamp = 1_700_000_000_000): LogRecord =>
  ({ key, value: Buffer.from(text), timestamp, headers: { kind: 'telemetry' } });

/**
 * What every implementation of the Log interface must do (STYLE.md: contract suites). `open`
 * gives a log over `dir`; opening the same dir again must find what was written before.
 * `enforceRetention` runs retention now (the interface leaves when to the implementation).
 */
export function logContract(name: string, open: (dir: string) => Log, newDir: () => string, enforceRetention: (log: Log) => Promise<unknown>): void {
  describe(`Log contract: ${name}`, () => {
    const opened: Log[] = [];
    const openLog = (dir: string) => {
      const log = open(dir);
      opened.push(log);
      return log;
    };
    afterEach(async () => {
      for (const log of opened.splice(0)) await log.close();
    });

    it('gives dense offsets per partition, keeps each key on its partition and reads records back in order', async () => {
      const log = openLog(newDir());
      await log.ensureTopic('t', 3);
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => log.append('t', record(`k${i % 5}`, `v${i}`))));
      for (let p = 0; p < 3; p++) {
        const offsets = results.filter((r) => r.partition === p).map((r) => r.offset);
        expect(offsets).toEqual(offsets.map((_, i) => i));
        const read = await log.read('t', p, 0, 1 << 20);
        expect(read.map((r) => r.offset)).toEqual(offsets);
        for (const r of read) expect(partitionForKey(r.key, 3)).toBe(p);
      }
      const all = (await Promise.all([0, 1, 2].map((p) => log.read('t', p, 0, 1 << 20)))).flat().map((r) => r.value.toString()).sort();
      expect(all).toEqual(Array.from({ length: 30 }, (_, i) => `v${i}`).sort());
    });

    it('keeps keys, headers and timestamps', async () => {
      const log = openLog(newDir());
      await log.ensureTopic('t', 1);
      await log.append('t', { key: 'dév-ü', value: Buffer.from('{"a":1}'), timestamp: 1_700_000_000_123, headers: { kind: 'attributes', x: 'y' } });
      await log.append('t', { key: 'plain', value: Buffer.alloc(0), timestamp: 5 });
      const [r, s] = await log.read('t', 0, 0, 100);
      expect(r).toMatchObject({ key: 'dév-ü', timestamp: 1_700_000_000_123, headers: { kind: 'attributes', x: 'y' }, offset: 0, partition: 0, topic: 't' });
      expect(r!.value.toString()).toBe('{"a":1}');
      expect(s).toMatchObject({ key: 'plain', timestamp: 5, offset: 1 });
      expect(s!.value.length).toBe(0);
    });

    it('reads nothing at the end, and refuses offsets beyond the end or before the start', async () => {
      const log = openLog(newDir());
      await log.ensureTopic('t', 1);
      await log.append('t', record('k', 'a'));
      expect(await log.read('t', 0, 1, 100)).toEqual([]);
      await expect(log.read('t', 0, 99, 100)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', message: expect.stringMatching(/offset 99 is outside t\/0's range \[0, 1\]/) });
      // Just past the end: end + 1 is refused as clearly, with the range to go back to.
      await expect(log.read('t', 0, 2, 100)).rejects.toMatchObject({
        code: 'OFFSET_OUT_OF_RANGE', message: "offset 2 is outside t/0's range [0, 1]", details: { startOffset: 0, endOffset: 1 },
      });
      await log.append('t', record('k', 'b'));
      expect((await log.read('t', 0, 1, 100)).map((r) => r.value.toString())).toEqual(['b']);
      await expect(log.read('t', 0, 3, 100)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', message: "offset 3 is outside t/0's range [0, 2]" });
      await expect(log.read('t', 0, 0.5, 100)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
      await expect(log.read('t', 0, -1, 100)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
      await expect(log.read('t', 5, 0, 100)).rejects.toThrow(/no partition 5/);
      await expect(log.read('nope', 0, 0, 100)).rejects.toThrow(/no topic "nope"/);
      expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 2 });
    });

    it('keeps at least the retention bytes: deletes old records only while what is left is still that much', async () => {
      const log = openLog(newDir());
      const retentionBytes = 3000;
      await log.ensureTopic('t', 1, { segmentBytes: 1024, retentionBytes, retentionMs: null }); // size alone
      for (let i = 0; i < 100; i += 4) await Promise.all([0, 1, 2, 3].map((j) => log.append('t', record('k', `value-${i + j}`.padEnd(60, '.')))));
      const bytesOf = async () => (await log.describeTopics()).find((t) => t.name === 't')!.partitions[0]!.bytes;
      const before = await bytesOf();
      expect(before).toBeGreaterThan(2 * retentionBytes);
      await enforceRetention(log);
      const { start, end } = await log.offsets('t', 0);
      expect(start).toBeGreaterThan(0);
      expect(end).toBe(100);
      const left = await bytesOf();
      expect(left).toBeGreaterThanOrEqual(retentionBytes);
      expect(left).toBeLessThan(before);
      // What is kept is every record from the start to the end.
      const values: string[] = [];
      for (let offset = start; offset < end;) {
        const batch = await log.read('t', 0, offset, 1 << 20);
        values.push(...batch.map((r) => r.value.toString().replace(/\.+$/, '')));
        offset = batch[batch.length - 1]!.offset + 1;
      }
      expect(values).toEqual(Array.from({ length: 100 - start }, (_, i) => `value-${start + i}`));
      // Running it again deletes nothing more: the log is within the limit already.
      await enforceRetention(log);
      expect(await log.offsets('t', 0)).toEqual({ start, end });
      expect(await bytesOf()).toBe(left);
    });

    it('reads at least one record however small maxBytes is, and stops near maxBytes', async () => {
      const log = openLog(newDir());
      await log.ensureTopic('t', 1);
      for (let i = 0; i < 10; i++) await log.append('t', record('k', 'x'.repeat(100)));
      expect((await log.read('t', 0, 0, 1)).length).toBeGreaterThanOrEqual(1);
      const some = await log.read('t', 0, 0, 350);
      expect(some.length).toBeGreaterThan(1);
      expect(some.length).toBeLessThan(10);
      // A read from the middle starts exactly there.
      expect((await log.read('t', 0, 7, 1 << 20)).map((r) => r.offset)).toEqual([7, 8, 9]);
    });

    it('keeps records and committed offsets across a restart; a topic keeps its partition count', async () => {
      const dir = newDir();
      const first = open(dir);
      await first.ensureTopic('t', 2);
      for (let i = 0; i < 20; i++) await first.append('t', record(`k${i}`, `v${i}`));
      first.commit('g', 't', 0, 3);
      await first.close();

      const second = openLog(dir);
      expect(await second.ensureTopic('t', 7)).toBe(2);
      const total = (await second.describeTopics())[0]!.partitions.reduce((s, p) => s + p.endOffset, 0);
      expect(total).toBe(20);
      expect(await second.committed('g', 't', 0)).toBe(3);
      expect(await second.committed('g', 't', 1)).toBeUndefined();
      const next = await second.append('t', record('k0', 'after'));
      expect(next.offset).toBe((await second.offsets('t', next.partition)).end - 1);
      const groups = await second.describeGroups();
      expect(groups).toEqual([{ name: 'g', topic: 't', partitions: expect.arrayContaining([expect.objectContaining({ partition: 0, committed: 3 })]) }]);
    });

    it('wakes a follower when data arrives, without polling, and lets an abort end the wait', async () => {
      const log = openLog(newDir());
      await log.ensureTopic('t', 1);
      let woke = false;
      const waiting = log.waitFor('t', 0, 0).then(() => { woke = true; });
      await new Promise((r) => setTimeout(r, 20));
      expect(woke).toBe(false);
      await log.append('t', record('k', 'a'));
      await waiting;
      expect(woke).toBe(true);
      const abort = new AbortController();
      const aborted = log.waitFor('t', 0, 5, abort.signal);
      abort.abort();
      await aborted;
    });

    it('refuses bad topic names and partition counts', async () => {
      const log = openLog(newDir());
      await expect(log.ensureTopic('../etc', 1)).rejects.toThrow(/topic name/);
      await expect(log.ensureTopic('__internal', 1)).rejects.toThrow(/topic name/);
      await expect(log.ensureTopic('t', 0)).rejects.toThrow(/partitions must be 1..1024/);
    });

    it('refuses appends and reads once closed', async () => {
      const log = open(newDir());
      await log.ensureTopic('t', 1);
      await log.append('t', record('k', 'a'));
      await log.append('t', record('k', 'b'));
      await log.close();
      await expect(log.append('t', record('k', 'a'))).rejects.toThrow(/closed/);
      await expect(log.read('t', 0, 1, 100)).rejects.toMatchObject({ code: 'NOT_READY', message: expect.stringMatching(/closed/) });
      // At the end too: a consumer there must learn the log is gone, not wait on it forever.
      await expect(log.read('t', 0, 2, 100)).rejects.toMatchObject({ code: 'NOT_READY' });
    });
  });
}
