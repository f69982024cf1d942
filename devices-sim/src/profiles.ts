import { gaussian, uniform, type Random } from './random.js';

/** One telemetry message's values, as in `{"ts": ms, "values": {...}}`. */
export type Readings = Record<string, number>;

/** A kind of simulated device. Its name is also the device's `type` in the registry. */
export interface Profile {
  name: string;
  keys: readonly string[];
  /**
   * A new device of this kind, drawing from `random`; returns its readings at each time asked.
   * Devices keep state between readings, so the same seed and the same times give the same values.
   */
  createDevice(random: Random): (ts: number) => Readings;
}

const DAY_MS = 24 * 60 * 60 * 1000;

const round = (value: number, decimals: number) => {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
};
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));

/**
 * A room sensor: temperature follows a daily cycle (coolest at 03:00 UTC, warmest at 15:00 UTC)
 * plus noise; relative humidity moves against it.
 */
export const roomSensor: Profile = {
  name: 'room-sensor',
  keys: ['temperature', 'humidity'],
  createDevice(random) {
    const base = uniform(random, 19.5, 23);
    const swing = uniform(random, 1.5, 3);
    const humidityBase = uniform(random, 40, 55);
    return (ts) => {
      const dayFraction = (((ts % DAY_MS) + DAY_MS) % DAY_MS) / DAY_MS;
      const cycle = Math.sin(2 * Math.PI * (dayFraction - 0.375));
      return {
        temperature: round(base + swing * cycle + gaussian(random, 0, 0.15), 2),
        humidity: round(clamp(humidityBase - 2.5 * cycle + gaussian(random, 0, 0.8), 0, 100), 1),
      };
    };
  },
};

/**
 * A rotating machine: rpm wanders around its set point, current follows the speed, and vibration
 * now and then spikes (about one reading in a hundred), which gives alarm rules something to find.
 */
export const machine: Profile = {
  name: 'machine',
  keys: ['vibration', 'current', 'rpm'],
  createDevice(random) {
    const setPoint = uniform(random, 1400, 1600);
    let rpm = setPoint;
    return () => {
      rpm += gaussian(random, 0, 6) + 0.1 * (setPoint - rpm);
      const spike = random() < 0.01 ? uniform(random, 2, 5) : 0;
      return {
        vibration: round(0.6 + 0.0004 * rpm + Math.abs(gaussian(random, 0, 0.05)) + spike, 3),
        current: round(6 + (rpm / 1500) * 4 + gaussian(random, 0, 0.1), 2),
        rpm: Math.round(rpm),
      };
    };
  },
};

/**
 * An asset tracker: it moves around its home point at walking-to-driving speeds, and its battery
 * drains with every report (about 0.05% each), starting anywhere between 60% and 100%.
 */
export const tracker: Profile = {
  name: 'tracker',
  keys: ['battery', 'lat', 'lon', 'speed'],
  createDevice(random) {
    let lat = uniform(random, 48.1, 48.2);
    let lon = uniform(random, 11.5, 11.6);
    let battery = uniform(random, 60, 100);
    let heading = uniform(random, 0, 2 * Math.PI);
    return () => {
      const speed = clamp(Math.abs(gaussian(random, 12, 8)), 0, 90);
      heading += gaussian(random, 0, 0.3);
      // About one report a second: km/h → degrees moved (1° of latitude ≈ 111 km).
      lat += (Math.cos(heading) * speed) / 3600 / 111;
      lon += (Math.sin(heading) * speed) / 3600 / 74;
      battery = Math.max(0, battery - uniform(random, 0.03, 0.07));
      return { battery: round(battery, 2), lat: round(lat, 6), lon: round(lon, 6), speed: round(speed, 1) };
    };
  },
};

export const profiles: readonly Profile[] = [roomSensor, machine, tracker];

/** Profiles are dealt round-robin: device 0 is a room sensor, device 1 a machine, device 2 a tracker, and so on. */
export function profileForIndex(index: number): Profile {
  return profiles[index % profiles.length]!;
}
