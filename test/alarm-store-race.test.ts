import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AlarmStore } from '../server/src/alarms/alarm-store.js';
import { openDatabase } from '../server/src/storage/database.js';
import { tempDir } from './support/test-server.js';

/**
 * Several writers, each its own thread with its own SQLite connection and AlarmStore over the same
 * file, trigger the same (originator, type) at the same moment, round after round. Without care
 * each would check for an open alarm, find none and insert one, or read the count and write it
 * back over another's: the store takes turns (one IMMEDIATE transaction per trigger), so each round
 * makes exactly one alarm and counts every trigger. Under that, the unique index on open alarms
 * (alarms_one_open) refuses a second open alarm from a writer that does not look first.
 */
const WRITERS = 4;
const ROUNDS = 60;

// Runs in each worker thread (plain JavaScript: the TypeScript modules are loaded through tsx).
const writer = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  const { tsImport } = await import(workerData.tsx);
  const { openDatabase } = await tsImport(workerData.database, workerData.from);
  const { AlarmStore } = await tsImport(workerData.alarmStore, workerData.from);
  const store = new AlarmStore(openDatabase(workerData.dir));
  // gate[0]: the round now open; gate[1]: writers that reached the start of a round, in all.
  const gate = new Int32Array(workerData.gate);
  const outcomes = [];
  for (let round = 0; round < workerData.rounds; round++) {
    if (Atomics.add(gate, 1, 1) + 1 === workerData.writers * (round + 1)) {
      Atomics.store(gate, 0, round + 1);
      Atomics.notify(gate, 0);
    } else {
      Atomics.wait(gate, 0, round);
    }
    try {
      outcomes.push(store.trigger({ type: 'Race', originator: 'dev-' + round, rule: 'r', severity: 'MINOR', startTs: round, ts: round, details: {}, webhook: null }).change);
    } catch (err) {
      outcomes.push(err.code ?? String(err));
    }
  }
  parentPort.postMessage(outcomes);
})().catch((err) => parentPort.postMessage(String(err && err.stack || err)));
`;

function runWriter(dir: string, gate: SharedArrayBuffer): Promise<string[]> {
  const require = createRequire(import.meta.url);
  const workerData = {
    dir, gate, rounds: ROUNDS, writers: WRITERS,
    tsx: pathToFileURL(require.resolve('tsx/esm/api')).href,
    from: import.meta.url,
    database: '../server/src/storage/database.ts',
    alarmStore: '../server/src/alarms/alarm-store.ts',
  };
  return new Promise((resolve, reject) => {
    const worker = new Worker(writer, { eval: true, workerData });
    worker.once('message', (m: string[] | string) => (typeof m === 'string' ? reject(new Error(m)) : resolve(m)));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`writer exited (${code}) before it answered`)));
  });
}

describe('one open alarm per originator and type, with writers racing', () => {
  it('connections raising the same alarm at once make exactly one open alarm, which counts every trigger', async () => {
    const dir = tempDir();
    openDatabase(dir).close(); // the schema exists before the writers start
    const gate = new SharedArrayBuffer(8);
    const outcomes = await Promise.all(Array.from({ length: WRITERS }, () => runWriter(dir, gate)));

    const store = new AlarmStore(openDatabase(dir));
    for (let round = 0; round < ROUNDS; round++) {
      const here = outcomes.map((o) => o[round]!);
      const open = store.query({ device: `dev-${round}`, from: 0, to: Number.MAX_SAFE_INTEGER, limit: 10 });
      expect(open, `round ${round}: ${here.join(', ')}`).toHaveLength(1);
      expect(here.sort(), `round ${round}`).toEqual(['created', ...Array.from({ length: WRITERS - 1 }, () => 'updated')]);
      expect(open[0]!.count, `round ${round}`).toBe(WRITERS);
    }
  });

  it('refuses a second open alarm of an originator and type from a writer that does not look first; cleared ones may repeat', () => {
    const dir = tempDir();
    const store = new AlarmStore(openDatabase(dir));
    const other = openDatabase(dir);
    const insert = other.prepare(`INSERT INTO alarms (id, type, originator, rule, severity, status, cleared, start_ts, last_ts, count, details)
      VALUES (?, 'Race', 'dev', 'r', 'MINOR', ?, ?, 1, 1, 1, '{}')`);
    const first = store.trigger({ type: 'Race', originator: 'dev', rule: 'r', severity: 'MINOR', startTs: 1, ts: 1, details: {}, webhook: null }).alarm;
    expect(() => insert.run('second', 'ACTIVE_UNACK', 0)).toThrow(expect.objectContaining({ code: 'SQLITE_CONSTRAINT_UNIQUE' }));
    insert.run('old-1', 'CLEARED_ACK', 1);
    insert.run('old-2', 'CLEARED_UNACK', 1);
    store.clear(first.id, 2);
    insert.run('third', 'ACTIVE_UNACK', 0);
    expect(store.trigger({ type: 'Race', originator: 'dev', rule: 'r', severity: 'MINOR', startTs: 3, ts: 3, details: {}, webhook: null }))
      .toMatchObject({ change: 'updated', alarm: { id: 'third', count: 2 } });
  });
});
