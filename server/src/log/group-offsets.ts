import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from './atomic-file.js';

/**
 * Committed offsets of consumer groups: one small JSON file per group, replaced atomically
 * (write to a temp file, fsync, rename). Commits are kept in memory and persisted at most every
 * `persistEveryMs`; consumers are at-least-once, so a crash replays at most that much.
 */
export class GroupOffsets {
  private readonly dir: string;
  private readonly offsets = new Map<string, Map<string, number[]>>();
  private readonly dirtyGroups = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private inflight: Promise<void> | undefined;

  constructor(dir: string, private readonly persistEveryMs: number) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
    for (const file of fs.readdirSync(dir)) {
      if (!file.endsWith('.json')) continue;
      const group = decodeURIComponent(file.slice(0, -'.json'.length));
      const data = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Record<string, number[]>;
      this.offsets.set(group, new Map(Object.entries(data)));
    }
  }

  get(group: string, topic: string, partition: number): number | undefined {
    return this.offsets.get(group)?.get(topic)?.[partition] ?? undefined;
  }

  set(group: string, topic: string, partition: number, offset: number): void {
    let topics = this.offsets.get(group);
    if (!topics) this.offsets.set(group, (topics = new Map()));
    let partitions = topics.get(topic);
    if (!partitions) topics.set(topic, (partitions = []));
    partitions[partition] = offset;
    this.dirtyGroups.add(group);
    this.reschedule();
  }

  entries(): { group: string; topic: string; partitions: (number | undefined)[] }[] {
    const out = [];
    for (const [group, topics] of this.offsets) {
      for (const [topic, partitions] of topics) out.push({ group, topic, partitions: [...partitions] });
    }
    return out;
  }

  /** The timer's way: the same steps off the event loop, so the broker does not wait for the disk. */
  private async persistInBackground(): Promise<void> {
    this.timer = undefined;
    const groups = [...this.dirtyGroups];
    this.dirtyGroups.clear();
    try {
      for (const group of groups) {
        const file = path.join(this.dir, `${encodeURIComponent(group)}.json`);
        const tmp = `${file}.tmp-bg`;
        const handle = await fs.promises.open(tmp, 'w');
        try {
          await handle.writeFile(JSON.stringify(Object.fromEntries(this.offsets.get(group) ?? [])));
          await handle.sync();
        } finally {
          await handle.close();
        }
        await fs.promises.rename(tmp, file);
      }
    } catch {
      for (const g of groups) this.dirtyGroups.add(g);
      this.reschedule();
    }
  }

  private reschedule(): void {
    if (this.closed) return;
    // Background writes run one after another: a later one never lands before an earlier one.
    this.timer ??= setTimeout(() => { this.inflight = (this.inflight ?? Promise.resolve()).then(() => this.persistInBackground()); }, this.persistEveryMs);
  }

  /** Waits for a background write, then writes what is left, synchronously. */
  async close(): Promise<void> {
    this.closed = true;
    await this.inflight;
    this.persist();
  }

  /** Writes every changed group now, synchronously (on close). */
  persist(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const group of this.dirtyGroups) {
      const file = path.join(this.dir, `${encodeURIComponent(group)}.json`);
      writeFileAtomicSync(file, JSON.stringify(Object.fromEntries(this.offsets.get(group) ?? [])));
    }
    this.dirtyGroups.clear();
  }
}
