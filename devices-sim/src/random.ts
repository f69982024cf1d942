/**
 * A small seeded PRNG, so a run can be repeated value for value: the same seed gives the same
 * sequence. Not for anything secret.
 */

/** Returns numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: 32 bits of state, fast, and good enough for simulated sensor noise. */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seed for one stream of a run (device `index`, stream `stream`), so each device's values do not
 * depend on how many other devices run beside it.
 */
export function deriveSeed(seed: number, index: number, stream = 0): number {
  // Mix with the golden-ratio constant and a murmur3 finaliser, so neighbouring indexes diverge.
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A uniform number in [min, max). */
export function uniform(random: Random, min: number, max: number): number {
  return min + (max - min) * random();
}

/** A normally distributed number (Box–Muller). */
export function gaussian(random: Random, mean = 0, stdDev = 1): number {
  const u = 1 - random(); // (0, 1]: log(0) would be -Infinity
  const v = random();
  return mean + stdDev * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
