import { profileForIndex, type Profile } from './profiles.js';

/** One device of a run: what to register it as and how it behaves. */
export interface PlannedDevice {
  index: number;
  name: string;
  type: string;
  attributes: { site: string; floor: number };
  profile: Profile;
}

const SITES = ['north', 'south', 'east'];
const FLOORS_PER_SITE = 4;

/**
 * The devices of a run, by index: `<prefix>1`, `<prefix>2`, ... Names, profiles and places depend
 * on the index only, so a second run with the same prefix finds the same devices again.
 */
export function planDevices(prefix: string, count: number): PlannedDevice[] {
  return Array.from({ length: count }, (_, index) => {
    const profile = profileForIndex(index);
    return {
      index,
      name: `${prefix}${index + 1}`,
      type: profile.name,
      attributes: { site: SITES[index % SITES.length]!, floor: 1 + (Math.floor(index / SITES.length) % FLOORS_PER_SITE) },
      profile,
    };
  });
}
