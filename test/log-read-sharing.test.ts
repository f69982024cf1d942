import { afterEach, describe, expect, it } from 'vitest';
import { FileLog } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { silentLogger, tempDir } from './support/test-server.js';

/** Two consumer groups at the same offset share one read of the log. */
describe('FileLog reads shared between groups', () => {
  const logs: FileLog[] = [];
  afterEach(async () => {
    for (const l of logs.splice(0)) await l.close();
  });
  const open = async (options = {}) => {
    const log = new FileLog(tempDir(), { mode: 'never' }, silentLogger, { retentionCheckMs: 0, ...options });
    logs.push(log);
    await log.ensureTopic('t', 1);
    return log;
  };

  it('gives a second reader at the same offset and size the records the first one got, decoded once', async () => {
    const log = await open();
    for (let i = 0; i < 3; i++) await log.append('t', record('k', `v${i}`));
    const first = await log.read('t', 0, 0, 1 << 20);
    await log.append('t', record('k', 'v3'));
    const second = await log.read('t', 0, 0, 1 << 20);
    expect(second).toBe(first); // the same array: no second read or decode
    expect(second.map((r) => r.value.toString())).toEqual(['v0', 'v1', 'v2']);
    // The next batch, from where both stand now, has the new record.
    expect((await log.read('t', 0, 3, 1 << 20)).map((r) => r.value.toString())).toEqual(['v3']);
  });

  it('reads anew for another offset, another size, or an offset retention has deleted', async () => {
    const log = await open({ retention: { segmentBytes: 1024, retentionBytes: 2048 } });
    for (let i = 0; i < 60; i++) await log.append('t', record('k', `value-${i}`.padEnd(60, '.')));
    const whole = await log.read('t', 0, 0, 1 << 20);
    const small = await log.read('t', 0, 0, 1);
    expect(small).not.toBe(whole);
    expect(small.length).toBeLessThan(whole.length);
    expect(await log.read('t', 0, 1, 1 << 20)).not.toBe(whole);
    await log.read('t', 0, 0, 1 << 20);
    await log.enforceRetention();
    expect((await log.offsets('t', 0)).start).toBeGreaterThan(0);
    await expect(log.read('t', 0, 0, 1 << 20)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
  });
});
