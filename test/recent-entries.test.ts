import { describe, expect, it } from 'vitest';
import { RecentEntries } from '../server/src/telemetry/recent-entries.js';

describe('recent entries (values ingest parsed, for the rules group)', () => {
  const entries = (n: number) => [{ ts: n, values: { n } }];

  it('gives a record\'s entries once, by partition and offset', () => {
    const recent = new RecentEntries(2, 4);
    recent.put(0, 7, entries(7));
    recent.put(1, 7, entries(70));
    expect(recent.take(0, 7)).toEqual(entries(7));
    expect(recent.take(0, 7)).toBeUndefined(); // a retried batch parses again
    expect(recent.take(1, 7)).toEqual(entries(70));
  });

  it('misses records it never had, or no longer has, or of partitions it does not know', () => {
    const recent = new RecentEntries(1, 4);
    for (let offset = 0; offset < 6; offset++) recent.put(0, offset, entries(offset));
    expect(recent.take(0, 1)).toBeUndefined(); // overwritten by offset 5
    expect(recent.take(0, 5)).toEqual(entries(5));
    expect(recent.take(0, 9)).toBeUndefined();
    expect(recent.take(3, 0)).toBeUndefined();
    recent.put(3, 0, entries(0)); // ignored
  });
});
