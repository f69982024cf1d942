/**
 * The content of one consumer group's offsets file (`{"<topic>": [offset per partition]}`),
 * checked. A committed offset is the next offset to read: a safe integer ≥ 0. `null` is how a
 * partition never committed looks (JSON of a sparse array). Anything else is damage, and a
 * damaged partition is left out, so the group reads it again from the earliest offset: re-reading
 * is safe (consumers are at-least-once), jumping to the end is not.
 */
export interface OffsetsFileContent {
  /** Per topic, a sparse array: a partition with no valid offset is a hole. */
  topics: Map<string, number[]>;
  /** What was left out, for the warning: a whole topic (no partition) or one partition. */
  invalid: { topic: string; partition?: number; value: unknown }[];
}

/** Thrown when the text is not a JSON object at all: the whole file is damaged. */
export class DamagedOffsetsFile extends Error {}

export function isValidOffset(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

export function parseOffsetsFile(text: string): OffsetsFileContent {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new DamagedOffsetsFile(text.length === 0 ? 'the file is empty' : `not JSON (${(err as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new DamagedOffsetsFile(`not a JSON object of topics (${Array.isArray(data) ? 'an array' : JSON.stringify(data)})`);
  }
  const topics = new Map<string, number[]>();
  const invalid: OffsetsFileContent['invalid'] = [];
  for (const [topic, partitions] of Object.entries(data)) {
    if (!Array.isArray(partitions)) {
      invalid.push({ topic, value: partitions });
      continue;
    }
    const offsets: number[] = [];
    partitions.forEach((value: unknown, partition) => {
      if (isValidOffset(value)) offsets[partition] = value;
      else if (value !== null) invalid.push({ topic, partition, value });
    });
    topics.set(topic, offsets);
  }
  return { topics, invalid };
}
