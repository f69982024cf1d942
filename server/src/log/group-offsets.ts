import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../errors.js';
import type { Logger } from '../logger.js';
import { writeFileAtomicSync } from './atomic-file.js';
import { DamagedOffsetsFile, isValidOffset, parseOffsetsFile, type OffsetsFileContent } from './offsets-file.js';

/**
 * Committed offsets of consumer groups: one small JSON file per group, replaced atomically
 * (write to a temp file, fsync, rename). Commits are kept in memory and persisted at most every
 * `persistEveryMs`; consumers are at-least-once, so a crash replays at most that much. A damaged
 * file or offset found at start means "from the earliest offset" (offsets-file.ts).
 */
export class GroupOffsets {
  private readonly dir: string;
  private readonly offsets = new Map<string, Map<string, number[]>>();
  private readonly dirtyGroups = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private inflight: Promise<void> | undefined;

  constructor(dir: string, private readonly persistEveryMs: number, private readonly logger: Logger, private readonly discarded: (count: number) => void = () => {}) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
    for (const file of fs.readdirSync(dir)) {
      if (file.endsWith('.json')) this.load(path.join(dir, file));
    }
  }

  /**
   * Reads one group's file. A file that cannot be read or parsed stops nothing: it is moved aside
   * (kept for a post-mortem, and out of the way of the next write) and the group starts over from
   * the earliest offsets; an invalid offset costs only its partition the same way.
   */
  private load(file: string): void {
    let group: string;
    let content: OffsetsFileContent;
    try {
      group = decodeURIComponent(path.basename(file, '.json'));
      content = parseOffsetsFile(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      const reason = err instanceof DamagedOffsetsFile ? err.message : ((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      const aside = `${file}.damaged-${Date.now()}`;
      let moved = `moved it to ${aside}`;
      try {
        fs.renameSync(file, aside);
      } catch (renameErr) {
        moved = `could not move it aside (${(renameErr as Error).message})`;
      }
      this.logger.warn({ file, aside, reason },
        `consumer offsets file ${file} is damaged (${reason}); ${moved}; its group re-reads every partition from the earliest offset`);
      this.discarded(1);
      return;
    }
    for (const { topic, partition, value } of content.invalid) {
      const where = partition === undefined ? `topic "${topic}"` : `${topic}/${partition}`;
      this.logger.warn({ file, group, topic, partition, value },
        `consumer offsets file ${file}: invalid committed offset ${JSON.stringify(value)} for ${where}; group "${group}" re-reads ${partition === undefined ? 'the topic' : 'that partition'} from the earliest offset`);
    }
    if (content.invalid.length > 0) this.discarded(content.invalid.length);
    this.offsets.set(group, content.topics);
  }

  get(group: string, topic: string, partition: number): number | undefined {
    return this.offsets.get(group)?.get(topic)?.[partition] ?? undefined;
  }

  set(group: string, topic: string, partition: number, offset: number): void {
    // Never persist what the next start would have to discard.
    if (!isValidOffset(offset)) throw new SluiceError('INVALID_INPUT', `a committed offset must be an integer >= 0, got ${offset}`);
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
