import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSluice, startChildSluice, type ChildServer } from './support/child-server.js';
import { TestServer, tempDir, waitFor, within } from './support/test-server.js';

/** Every file under the log dir with its size and modification time: what "touching the log" would change. */
function logSnapshot(dataDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = fs.statSync(p);
        out[path.relative(dataDir, p)] = `${st.size}@${st.mtimeMs}`;
      }
    }
  };
  walk(path.join(dataDir, 'log'));
  return out;
}

async function stopChild(server: Pick<ChildServer, 'child' | 'exited'>): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGTERM');
  await server.exited;
}

describe('one Sluice per data dir', () => {
  it('a second process on the same data dir exits non-zero at start, naming the dir and the holder, before touching the log', async () => {
    const dataDir = tempDir();
    const first = await startChildSluice(dataDir);
    const servers: Pick<ChildServer, 'child' | 'exited'>[] = [first];
    try {
      const res = await fetch(`http://127.0.0.1:${first.ports.http}/api/devices`, {
        method: 'POST', headers: { authorization: 'Bearer x', 'content-type': 'application/json' }, body: '{}',
      });
      expect(res.status).toBe(401); // the first one is up and serving
      const before = logSnapshot(dataDir);
      const portsBefore = fs.readFileSync(path.join(dataDir, 'ports.json'), 'utf8');

      const second = spawnSluice(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
      servers.push(second); // stopped below if it did not exit by itself
      const code = await within(15_000, 'the second process\'s exit', second.exited)
        .catch((err: Error) => { throw new Error(`${err.message}; its output: ${second.output()}`); });
      expect(code, second.output()).not.toBe(0);
      expect(second.output()).toContain(`data dir ${dataDir} is in use by another Sluice (pid ${first.child.pid}`);
      // It wrote nothing: the log, the offsets and ports.json are the first one's.
      expect(logSnapshot(dataDir)).toEqual(before);
      expect(fs.readFileSync(path.join(dataDir, 'ports.json'), 'utf8')).toBe(portsBefore);

      // kill -9: the kernel drops the lock with the process; a new one starts at once, even though
      // the lock's note names a live pid (in Docker every Sluice is pid 1: liveness proves nothing).
      first.child.kill('SIGKILL');
      await first.exited;
      const note = fs.readdirSync(dataDir).find((f) => f.startsWith('sluice.lock') && f !== 'sluice.lock');
      expect(note).toBeDefined();
      fs.writeFileSync(path.join(dataDir, note!), JSON.stringify({ pid: process.pid, host: 'elsewhere', startedAt: Date.now() }));
      const third = await startChildSluice(dataDir);
      servers.push(third);
      expect(third.output()).not.toContain('in use');
    } finally {
      for (const s of servers) await stopChild(s);
    }
  });

  it('in one process too: a second startSluice on the dir fails, and the lock is released on stop', async () => {
    const dataDir = tempDir();
    const first = await TestServer.start({ dataDir });
    try {
      await expect(TestServer.start({ dataDir })).rejects.toThrow(`data dir ${dataDir} is in use by another Sluice (pid ${process.pid}`);
    } finally {
      await first.stop();
    }
    const again = await TestServer.start({ dataDir });
    await again.stop();
  });

  it('two started at the same moment: exactly one runs', async () => {
    const dataDir = tempDir();
    const a = spawnSluice(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    const b = spawnSluice(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    try {
      const loser = await waitFor('one of them to exit', () => (a.child.exitCode !== null ? a : b.child.exitCode !== null ? b : undefined), 20_000);
      expect(loser.child.exitCode).not.toBe(0);
      expect(loser.output()).toContain(`data dir ${dataDir} is in use by another Sluice`);
      const winner = loser === a ? b : a;
      await waitFor('the other to be up', () => (fs.existsSync(path.join(dataDir, 'ports.json')) ? true : undefined), 20_000);
      expect(winner.child.exitCode).toBeNull();
    } finally {
      for (const s of [a, b]) await stopChild(s);
    }
  });
});
