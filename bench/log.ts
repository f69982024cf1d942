/**
 * The embedded log on its own: append and sequential read of 100-byte records, per flush policy.
 * Appends come from many concurrent producers (a window of appends in flight), as ingest makes
 * them, so group commit batches them; keys are 1,000 device ids, 4 partitions, fresh temp dir.
 *
 * Usage: npm run bench:log -- [--records 1000000] [--always-records 200000] [--inflight 10000]
 *                             [--policy always|interval|never] [--markdown]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { FsyncPolicy } from '../server/src/config.js';
import { FileLog } from '../server/src/log/file-log.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' }, 'always-records': { type: 'string', default: '200000' },
    inflight: { type: 'string', default: '10000' }, policy: { type: 'string' }, markdown: { type: 'boolean', default: false },
  },
});
const RECORD_BYTES = 100;
const inflight = Number(values.inflight);
const keys = Array.from({ length: 1000 }, () => crypto.randomUUID());
const value = crypto.randomBytes(RECORD_BYTES);
const headers = Object.freeze({ kind: 'telemetry' });
const policies: Record<string, FsyncPolicy> = { always: { mode: 'always' }, interval: { mode: 'interval', intervalMs: 50 }, never: { mode: 'never' } };

interface Row { policy: string; records: number; appendPerSec: number; appendMBps: number; p50: number; p99: number; readPerSec: number; readMBps: number }

async function run(name: string, policy: FsyncPolicy, records: number): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-log-'));
  const log = new FileLog(dir, policy, pino({ level: 'silent' }), { retentionCheckMs: 0 });
  await log.ensureTopic('bench', 4);
  // Latency is measured per window: its appends are written (and acknowledged) together.
  const latencies: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < records; i += inflight) {
    const window: Promise<unknown>[] = [];
    const sentAt = performance.now();
    const now = Date.now();
    for (let j = i; j < Math.min(records, i + inflight); j++) {
      window.push(log.append('bench', { key: keys[j % keys.length]!, value, timestamp: now, headers }));
    }
    await Promise.all(window);
    latencies.push(performance.now() - sentAt);
  }
  const appendSec = (performance.now() - t0) / 1000;
  const bytes = (await log.describeTopics())[0]!.partitions.reduce((s, p) => s + p.bytes, 0);

  const t1 = performance.now();
  let read = 0;
  for (let p = 0; p < 4; p++) {
    let offset = 0;
    for (;;) {
      const batch = await log.read('bench', p, offset, 1024 * 1024);
      if (batch.length === 0) break;
      read += batch.length;
      offset = batch[batch.length - 1]!.offset + 1;
    }
  }
  const readSec = (performance.now() - t1) / 1000;
  if (read !== records) throw new Error(`read ${read} records, appended ${records}`);
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    policy: name, records,
    appendPerSec: records / appendSec, appendMBps: bytes / appendSec / 1e6,
    p50: latencies[Math.floor(latencies.length * 0.5)]!, p99: latencies[Math.floor(latencies.length * 0.99)]!,
    readPerSec: records / readSec, readMBps: bytes / readSec / 1e6,
  };
}

const names = values.policy ? [values.policy] : ['always', 'interval', 'never'];
// A short warm-up so that the first policy measured does not pay for the JIT.
await run('warm-up', { mode: 'never' }, 100_000);
const rows: Row[] = [];
for (const name of names) {
  const policy = policies[name];
  if (!policy) throw new Error(`--policy must be always, interval or never`);
  rows.push(await run(name, policy, name === 'always' ? Number(values['always-records']) : Number(values.records)));
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`${new Date().toISOString().slice(0, 10)}  ${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}  node ${process.version}  ${RECORD_BYTES}-byte values, 4 partitions, ${inflight} appends in flight`);
if (values.markdown) {
  console.log('| fsync | records | append rec/s | append MB/s | window of appends p50 / p99 ms | read rec/s | read MB/s |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.policy} | ${fmt(r.records)} | ${fmt(r.appendPerSec)} | ${r.appendMBps.toFixed(1)} | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} | ${fmt(r.readPerSec)} | ${r.readMBps.toFixed(1)} |`);
} else {
  for (const r of rows) {
    console.log(`${r.policy.padEnd(9)} append ${fmt(r.appendPerSec).padStart(10)} rec/s ${r.appendMBps.toFixed(1).padStart(6)} MB/s  p50 ${r.p50.toFixed(1)} ms p99 ${r.p99.toFixed(1)} ms   read ${fmt(r.readPerSec).padStart(10)} rec/s ${r.readMBps.toFixed(1).padStart(6)} MB/s`);
  }
}
