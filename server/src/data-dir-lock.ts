import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StartupError } from './errors.js';

/** The lock file (an SQLite database only this uses) and the note saying who holds it. */
export const LOCK_FILE = 'sluice.lock';
const OWNER_FILE = 'sluice.lock.owner';

export interface DataDirLock {
  /** Drops the lock (on stop). The process ending drops it too, however it ends. */
  release(): void;
}

/**
 * One Sluice per data dir: two appending to the same log lose acknowledged messages. Node has no
 * flock, so the lock is SQLite's: a connection to `sluice.lock` in `locking_mode = EXCLUSIVE`
 * that has written keeps its POSIX (fcntl) write lock on the file until it closes. The kernel
 * drops such a lock when the process dies, kill -9 included, so a crash never leaves the dir
 * locked; and it does not depend on pids, which say nothing in Docker (every Sluice is pid 1).
 * SQLite also refuses a second connection in the same process. The note beside it (pid, host,
 * start time) only makes the refusal's message useful; it is never trusted as the lock.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  let db: Database.Database | undefined;
  try {
    // timeout 0: a lock that is held is a refusal now, not after a wait.
    db = new Database(file, { timeout: 0 });
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, started_at INTEGER NOT NULL)');
    // The write takes the exclusive lock, which EXCLUSIVE mode then keeps after the commit.
    db.prepare('INSERT OR REPLACE INTO holder (id, pid, started_at) VALUES (1, ?, ?)').run(process.pid, Date.now());
  } catch (err) {
    db?.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      throw new StartupError(`data dir ${dataDir} is in use by another Sluice (${describeOwner(dataDir)}); stop it, or give this one another --data-dir / DATA_DIR`, { cause: err });
    }
    // Never deleted to get past this: another Sluice may hold a lock on that very file.
    throw new StartupError(`cannot lock data dir ${dataDir} (${file}: ${(err as Error).message}); if no Sluice is running on it, delete ${file} and start again`, { cause: err });
  }
  fs.writeFileSync(path.join(dataDir, OWNER_FILE), JSON.stringify({ pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() }));
  const held = db;
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      held.close();
    },
  };
}

/** "pid N on host H, since T" from the holder's note, as far as it can be read. */
function describeOwner(dataDir: string): string {
  try {
    const note = JSON.parse(fs.readFileSync(path.join(dataDir, OWNER_FILE), 'utf8')) as { pid?: unknown; host?: unknown; startedAt?: unknown };
    const since = typeof note.startedAt === 'string' ? `, since ${note.startedAt}` : '';
    const host = typeof note.host === 'string' ? ` on host ${note.host}` : '';
    return `pid ${String(note.pid)}${host}${since}`;
  } catch {
    return 'pid unknown';
  }
}
