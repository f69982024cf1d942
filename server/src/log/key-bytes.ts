/**
 * Keys repeat (one per device), so their UTF-8 bytes are kept for the partitioner and the batch
 * encoder; the cache starts over when it is full.
 */
const MAX_CACHED_KEYS = 100_000;
const cache = new Map<string, Buffer>();

export function keyBytes(key: string): Buffer {
  let b = cache.get(key);
  if (b === undefined) {
    if (cache.size >= MAX_CACHED_KEYS) cache.clear();
    b = Buffer.from(key, 'utf8');
    cache.set(key, b);
  }
  return b;
}
