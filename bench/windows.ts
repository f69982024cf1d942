/**
 * The window operator alone, one core: events for 10,000 keys in event-time order with a little
 * disorder, through tumbling avg/count, sliding and session windows; events/s and the memory an
 * open window takes.
 *
 * Usage: npm run bench:windows -- [--events 3000000]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { WindowOperator, type WindowJobSpec, type WindowKind } from '../server/src/windows/window-operator.js';

const { values: args } = parseArgs({ options: { events: { type: 'string', default: '3000000' } } });
const N = Number(args.events);
const KEYS = 10_000;
const groups = Array.from({ length: KEYS }, (_, i) => `device-${i}`);

function run(name: string, window: WindowKind): void {
  let results = 0;
  const spec: WindowJobSpec = {
    rule: name, window, aggregates: [{ name: 'avg_t', op: 'avg', field: 't' }, { name: 'count', op: 'count' }],
    outOfOrdernessMs: 2000, allowedLatenessMs: 0, idleTimeoutMs: 60_000, earlyEveryMs: 0, maxOpenWindows: 10_000_000,
  };
  const op = new WindowOperator(spec, () => { results++; }, () => {});
  // Each key reports every 10 s of event time, with a minute's pause after every 10 reports (so
  // sessions end); events arrive up to ~1 s out of order.
  const values = { t: 21.5 };
  const event = { group: '', ts: 0, partition: 0, values };
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    event.group = groups[i % KEYS]!;
    const round = Math.floor(i / KEYS);
    event.ts = round * 10_000 + Math.floor(round / 10) * 60_000 + (i % KEYS) + ((i * 7919) % 1000);
    values.t = 15 + (i % 20);
    op.process(event, 0);
  }
  const sec = (performance.now() - t0) / 1000;
  // Memory per open window: heap before and after filling one window per key once more.
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  const openBefore = op.openWindows;
  const farTs = (Math.floor(N / KEYS) + 100) * 100_000;
  for (let k = 0; k < KEYS; k++) op.process({ group: groups[k]!, ts: farTs + k, partition: 1, values }, 0);
  globalThis.gc?.();
  const perWindow = (process.memoryUsage().heapUsed - before) / Math.max(1, op.openWindows - openBefore);
  console.log(`${name.padEnd(28)} ${Math.round(N / sec).toLocaleString('en-US').padStart(10)} events/s   ${results.toLocaleString('en-US')} results   ~${Math.round(perWindow)} bytes per open window${globalThis.gc ? '' : ' (run with --expose-gc for a steadier figure)'}`);
}

console.log(`${new Date().toISOString().slice(0, 10)}  ${os.cpus()[0]?.model ?? '?'}  node ${process.version}  ${N.toLocaleString('en-US')} events, ${KEYS.toLocaleString('en-US')} keys`);
run('tumbling 1 min avg+count', { kind: 'tumbling', size: 60_000 });
run('sliding 1 min / 15 s', { kind: 'sliding', size: 60_000, slide: 15_000 });
run('session gap 30 s', { kind: 'session', gap: 30_000 });
