import { keyBytes } from './key-bytes.js';

/**
 * Key → partition, the same way Kafka's default partitioner does it (murmur2 of the key's UTF-8
 * bytes, sign bit cleared, modulo the partition count), so that moving the log to Kafka keeps
 * every device on the partition it had.
 */
export function murmur2(data: Uint8Array): number {
  const seed = 0x9747b28c;
  const m = 0x5bd1e995;
  const length = data.length;
  let h = seed ^ length;
  const blocks = length >> 2;
  for (let i = 0; i < blocks; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = blocks * 4;
  switch (length & 3) {
    case 3: h ^= (data[tail + 2]! & 0xff) << 16; // falls through
    case 2: h ^= (data[tail + 1]! & 0xff) << 8; // falls through
    case 1:
      h ^= data[tail]! & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

export function partitionForKey(key: string, partitions: number): number {
  return (murmur2(keyBytes(key)) & 0x7fffffff) % partitions;
}
