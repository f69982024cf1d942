import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { SluiceError } from '../errors.js';
import { writeFileAtomicSync } from './atomic-file.js';

/** How a topic's partitions keep their data. Every setting applies to each partition on its own. */
export interface RetentionSettings {
  /** A segment rolls when the next batch would take it past this size. */
  segmentBytes: number;
  /** ... or when its first record is this old. */
  segmentMs: number;
  /** Whole segments whose newest record is older than this are deleted; null keeps them. */
  retentionMs: number | null;
  /** The oldest segments are deleted while the partition is larger than this; null: no limit. */
  retentionBytes: number | null;
  /** Bytes of batches between two entries of the sparse offset index. */
  indexIntervalBytes: number;
}

export interface TopicSettings extends RetentionSettings {
  partitions: number;
  /** fdatasync a segment when it is sealed (not under `fsync: never`). */
  fsyncOnRoll: boolean;
}

export const defaultRetention: RetentionSettings = {
  segmentBytes: 64 * 1024 * 1024,
  segmentMs: 24 * 3600 * 1000,
  retentionMs: 7 * 24 * 3600 * 1000,
  retentionBytes: null,
  indexIntervalBytes: 4096,
};

const positive = z.number().int().positive();
export const retentionOverrides = z.object({
  segmentBytes: positive.min(1024).max(1024 * 1024 * 1024).optional(),
  segmentMs: positive.optional(),
  retentionMs: positive.nullable().optional(),
  retentionBytes: positive.nullable().optional(),
  indexIntervalBytes: positive.max(1024 * 1024).optional(),
}).strict();
export type RetentionOverrides = z.infer<typeof retentionOverrides>;

const topicFile = retentionOverrides.extend({ partitions: positive.max(1024) });
export type TopicFile = z.infer<typeof topicFile>;

const TOPIC_FILE = 'topic.json';

export function readTopicFile(topicDir: string): TopicFile | undefined {
  const file = path.join(topicDir, TOPIC_FILE);
  if (!fs.existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new SluiceError('LOG_CORRUPT', `${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = topicFile.safeParse(json);
  if (!parsed.success) throw new SluiceError('LOG_CORRUPT', `${file}: ${parsed.error.issues[0]!.path.join('.')} ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** Replaces topic.json atomically. */
export function writeTopicFile(topicDir: string, data: TopicFile): void {
  writeFileAtomicSync(path.join(topicDir, TOPIC_FILE), JSON.stringify(data));
}
