import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FileLog } from '../server/src/log/file-log.js';
import { partitionForKey } from '../server/src/log/partitioner.js';
import { silentLogger, tempDir } from './support/test-server.js';

type Op =
  | { kind: 'append'; records: { key: string; value: string }[] }
  | { kind: 'read'; partition: number; from: number; maxBytes: number }
  | { kind: 'restart' }
  | { kind: 'retention' };

const PARTITIONS = 2;

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({
    kind: fc.constant('append' as const),
    records: fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c', 'dév'), value: fc.string({ maxLength: 300 }) }), { minLength: 1, maxLength: 40 }),
  }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), partition: fc.integer({ min: 0, max: PARTITIONS - 1 }), from: fc.nat(), maxBytes: fc.integer({ min: 1, max: 8192 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'retention' as const }) },
);

describe('FileLog against a model (fast-check)', () => {
  it('keeps the model\'s content through random appends, reads, restarts and retention', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(op, { minLength: 1, maxLength: 25 }),
      fc.constantFrom(null, 2048, 6000),
      fc.constantFrom(1, 64, 4096),
      async (ops, retentionBytes, indexIntervalBytes) => {
        const dir = tempDir();
        const open = () => new FileLog(dir, { mode: 'never' }, silentLogger, {
          retentionCheckMs: 0, retention: { segmentBytes: 1024, retentionBytes, retentionMs: null, indexIntervalBytes },
        });
        let log = open();
        await log.ensureTopic('t', PARTITIONS);
        const model: string[][] = Array.from({ length: PARTITIONS }, () => []);
        const starts = new Array<number>(PARTITIONS).fill(0);
        try {
          for (const o of ops) {
            if (o.kind === 'append') {
              const results = await Promise.all(o.records.map((r) => log.append('t', { key: r.key, value: Buffer.from(r.value), timestamp: 1 })));
              o.records.forEach((r, i) => {
                const p = partitionForKey(r.key, PARTITIONS);
                expect(results[i]).toEqual({ partition: p, offset: model[p]!.length });
                model[p]!.push(r.value);
              });
            } else if (o.kind === 'read') {
              const { start, end } = await log.offsets('t', o.partition);
              const from = start + (o.from % (end - start + 1));
              const got = await log.read('t', o.partition, from, o.maxBytes);
              if (from < end) expect(got.length).toBeGreaterThan(0);
              expect(got.map((r) => r.value.toString())).toEqual(model[o.partition]!.slice(from, from + got.length));
              expect(got.map((r) => r.offset)).toEqual(got.map((_, i) => from + i));
            } else if (o.kind === 'restart') {
              await log.close();
              log = open();
            } else {
              await log.enforceRetention();
            }
            for (let p = 0; p < PARTITIONS; p++) {
              const { start, end } = await log.offsets('t', p);
              expect(end).toBe(model[p]!.length);
              expect(start).toBeGreaterThanOrEqual(starts[p]!);
              if (retentionBytes === null) expect(start).toBe(0);
              starts[p] = start;
            }
          }
          // Everything from each partition's start offset is there, in order, exactly once.
          for (let p = 0; p < PARTITIONS; p++) {
            const values: string[] = [];
            let offset = starts[p]!;
            for (;;) {
              const batch = await log.read('t', p, offset, 4096);
              if (batch.length === 0) break;
              values.push(...batch.map((r) => r.value.toString()));
              offset = batch[batch.length - 1]!.offset + 1;
            }
            expect(values).toEqual(model[p]!.slice(starts[p]));
          }
        } finally {
          await log.close();
        }
      },
    ), { numRuns: 200 });
  });
});
