import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

/**
 * Schema migrations, applied in order; `user_version` records how many ran. Append only:
 * a released migration is never edited.
 */
export const migrations: string[] = [
  `CREATE TABLE devices (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     type TEXT NOT NULL DEFAULT 'default',
     token TEXT NOT NULL UNIQUE,
     attributes TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE client_attributes (
     device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
     key TEXT NOT NULL,
     ts INTEGER NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (device_id, key)
   ) WITHOUT ROWID;
   -- One row per (device, key, ts): re-delivered log records overwrite, never duplicate.
   -- kind: 0 number, 1 boolean, 2 string, 3 JSON object. num holds numbers and booleans (0/1);
   -- str holds strings and JSON text.
   CREATE TABLE ts_kv (
     device_id TEXT NOT NULL,
     key TEXT NOT NULL,
     ts INTEGER NOT NULL,
     kind INTEGER NOT NULL,
     num REAL,
     str TEXT,
     PRIMARY KEY (device_id, key, ts)
   ) WITHOUT ROWID;
   CREATE TABLE ts_latest (
     device_id TEXT NOT NULL,
     key TEXT NOT NULL,
     ts INTEGER NOT NULL,
     kind INTEGER NOT NULL,
     num REAL,
     str TEXT,
     PRIMARY KEY (device_id, key)
   ) WITHOUT ROWID;`,
  // Points keyed by a small integer per (device, key) series: the B-tree compares integers
  // instead of a UUID and a key name on every insert (about 1.7x the write rate).
  `CREATE TABLE ts_series (
     id INTEGER PRIMARY KEY,
     device_id TEXT NOT NULL,
     key TEXT NOT NULL,
     UNIQUE (device_id, key)
   );
   CREATE TABLE ts_points (
     series INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     kind INTEGER NOT NULL,
     num REAL,
     str TEXT,
     PRIMARY KEY (series, ts)
   ) WITHOUT ROWID;
   INSERT INTO ts_series (device_id, key) SELECT DISTINCT device_id, key FROM ts_kv;
   INSERT INTO ts_points (series, ts, kind, num, str)
     SELECT s.id, p.ts, p.kind, p.num, p.str FROM ts_kv p JOIN ts_series s ON s.device_id = p.device_id AND s.key = p.key;
   DROP TABLE ts_kv;`,
  // Rules created or changed through the REST API (rules from the rules dir stay in their files).
  `CREATE TABLE rules (
     id TEXT PRIMARY KEY,
     document TEXT NOT NULL,
     updated_at INTEGER NOT NULL
   );`,
  // Window results, one row per (rule, window node, group, window start): re-emitting a result
  // (an update, or a replay after a crash) replaces it.
  `CREATE TABLE window_results (
     rule TEXT NOT NULL,
     node TEXT NOT NULL,
     grp TEXT NOT NULL,
     start INTEGER NOT NULL,
     end INTEGER NOT NULL,
     vals TEXT NOT NULL,
     final INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (rule, node, grp, start)
   ) WITHOUT ROWID;`,
  // The window engine's state and the rules group's offsets, written together in one statement:
  // a restart resumes from a consistent point (exactly-once window results).
  `CREATE TABLE window_checkpoint (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     offsets TEXT NOT NULL,
     state TEXT NOT NULL,
     saved_at INTEGER NOT NULL
   );`,
  // Alarms: at most one not yet cleared per (originator, type), enforced by the unique index.
  // Condition counters (duration, repeat) and the notification outbox live beside them.
  `CREATE TABLE alarms (
     id TEXT PRIMARY KEY,
     type TEXT NOT NULL,
     originator TEXT NOT NULL,
     rule TEXT NOT NULL,
     severity TEXT NOT NULL,
     status TEXT NOT NULL,
     cleared INTEGER NOT NULL DEFAULT 0,
     start_ts INTEGER NOT NULL,
     last_ts INTEGER NOT NULL,
     ack_ts INTEGER,
     clear_ts INTEGER,
     count INTEGER NOT NULL,
     details TEXT NOT NULL,
     webhook TEXT
   );
   CREATE UNIQUE INDEX alarms_one_open ON alarms (originator, type) WHERE cleared = 0;
   CREATE INDEX alarms_by_start ON alarms (start_ts);
   CREATE TABLE alarm_conditions (
     key TEXT PRIMARY KEY,
     since INTEGER NOT NULL,
     times INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE alarm_outbox (
     id TEXT PRIMARY KEY,
     alarm_id TEXT NOT NULL,
     url TEXT NOT NULL,
     payload TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_at INTEGER NOT NULL,
     delivered_at INTEGER,
     last_error TEXT
   );
   CREATE INDEX alarm_outbox_due ON alarm_outbox (next_at) WHERE delivered_at IS NULL;`,
  // Alarm notifications in order, per alarm (issue 17): `seq` numbers an alarm's notifications
  // 1, 2, 3… (existing rows in the order they were written); `head` marks the oldest one not yet
  // delivered, the only one of its alarm that may be sent. The due query reads heads only, per URL
  // (alarm_outbox_heads), so a long backlog behind a head costs nothing until its turn;
  // alarm_outbox_queued finds an alarm's next notification and counts the pending ones.
  `ALTER TABLE alarm_outbox ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE alarm_outbox ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
   UPDATE alarm_outbox SET seq = numbered.n
     FROM (SELECT rowid AS r, row_number() OVER (PARTITION BY alarm_id ORDER BY rowid) AS n FROM alarm_outbox) AS numbered
     WHERE alarm_outbox.rowid = numbered.r;
   CREATE UNIQUE INDEX alarm_outbox_order ON alarm_outbox (alarm_id, seq);
   CREATE INDEX alarm_outbox_queued ON alarm_outbox (alarm_id, seq) WHERE delivered_at IS NULL;
   DROP INDEX alarm_outbox_due;
   UPDATE alarm_outbox SET head = 1 WHERE delivered_at IS NULL
     AND seq = (SELECT min(seq) FROM alarm_outbox earlier WHERE earlier.alarm_id = alarm_outbox.alarm_id AND earlier.delivered_at IS NULL);
   UPDATE alarm_outbox SET payload = json_set(payload, '$.seq', seq) WHERE delivered_at IS NULL;
   CREATE INDEX alarm_outbox_heads ON alarm_outbox (url, next_at) WHERE delivered_at IS NULL AND head = 1;`,
  // Alarm conditions applied once per message (issue 17): the last position (log offset and entry,
  // or window end) whose effects are in, per condition and input stream, kept when a streak ends.
  // Streaks carry what the timer needs to raise a `for` alarm with no message: its due time
  // (indexed, so a tick reads only what is due), the severity and details to raise with, and the
  // node's settings; and the alarm they raise, so a clear ends them.
  `CREATE TABLE alarm_positions (
     key TEXT NOT NULL,
     stream TEXT NOT NULL,
     at INTEGER NOT NULL,
     entry INTEGER NOT NULL,
     PRIMARY KEY (key, stream)
   ) WITHOUT ROWID;
   ALTER TABLE alarm_conditions ADD COLUMN rule TEXT;
   ALTER TABLE alarm_conditions ADD COLUMN node TEXT;
   ALTER TABLE alarm_conditions ADD COLUMN originator TEXT;
   ALTER TABLE alarm_conditions ADD COLUMN type TEXT;
   ALTER TABLE alarm_conditions ADD COLUMN met INTEGER;
   ALTER TABLE alarm_conditions ADD COLUMN due_at INTEGER;
   ALTER TABLE alarm_conditions ADD COLUMN pending TEXT;
   ALTER TABLE alarm_conditions ADD COLUMN fingerprint TEXT;
   CREATE INDEX alarm_conditions_due ON alarm_conditions (due_at) WHERE due_at IS NOT NULL;
   CREATE INDEX alarm_conditions_alarm ON alarm_conditions (originator, type);`,
  // Where the `windows` topic ended when the checkpoint's state was taken: what a resume from it
  // emits again is recognised and not appended twice (window-results-topic.ts). NULL: not known.
  `ALTER TABLE window_checkpoint ADD COLUMN windows_end TEXT;`,
  // Gateways and their sub-devices, and device credentials other than an access token (issue 19):
  // a device with no device_credentials row is on its access token (devices.token); one with a
  // row is on MQTT basic credentials (client id and/or username, password scrypt-hashed) or an
  // X.509 certificate (its SHA-256 fingerprint and PEM), and its devices.token is dormant.
  // gateway_id: the gateway a sub-device was created by (NULL for other devices).
  `ALTER TABLE devices ADD COLUMN is_gateway INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE devices ADD COLUMN gateway_id TEXT;
   CREATE TABLE device_credentials (
     device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
     type TEXT NOT NULL CHECK (type IN ('mqtt_basic', 'x509')),
     client_id TEXT,
     username TEXT,
     password_hash TEXT,
     fingerprint TEXT UNIQUE,
     certificate TEXT
   );
   CREATE UNIQUE INDEX device_credentials_mqtt_basic ON device_credentials (ifnull(client_id, ''), ifnull(username, '')) WHERE type = 'mqtt_basic';`,
];

export function openDatabase(dataDir: string): Db {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, 'sluice.db'));
  db.pragma('journal_mode = WAL');
  // WAL + NORMAL: a commit survives a process crash; the log, not SQLite, is the durable record.
  // Power loss or a lost WAL are covered by the storage worker's checkpoints: the storage group
  // commits its offsets only once one has put the writes into this file (durable-checkpoint.ts).
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
