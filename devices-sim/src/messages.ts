import type { PlannedDevice } from './device-plan.js';
import type { Readings } from './profiles.js';
import { deriveSeed, mulberry32 } from './random.js';

/** Payload form: `ts` {"ts","values"}, `flat` {k: v} (server time), `array` [{"ts","values"}]. */
export type PayloadForm = 'ts' | 'flat' | 'array';

/** How often each fault appears in a device's messages. */
export interface FaultOptions {
  /** Fractions of messages, each 0..1: timestamps 1–60 s in the past; not JSON; a spike in one value. */
  late: number;
  malformed: number;
  anomalies: number;
}

/** One message before it is rendered: its values as JSON, how late it is, and whether it is broken. */
export interface DrawnMessage {
  valuesJson: string;
  /** 0, or how many ms in the past its timestamp is. */
  lateByMs: number;
  malformed: boolean;
}

/** Random streams of a device, one per purpose, so that drawing one never shifts another. */
export const VALUES_STREAM = 0;
export const JITTER_STREAM = 1;
export const FAULTS_STREAM = 2;

/**
 * A device's message source: each call draws its next message for time `now`. Values come from
 * the profile's seeded stream, faults from their own, so the same seed, device and times give the
 * same messages, faults included.
 */
export function deviceMessages(plan: PlannedDevice, seed: number, options: FaultOptions): (now: number) => DrawnMessage {
  const readings = plan.profile.createDevice(mulberry32(deriveSeed(seed, plan.index, VALUES_STREAM)));
  const faults = mulberry32(deriveSeed(seed, plan.index, FAULTS_STREAM));
  const { late, malformed, anomalies } = options;
  return (now) => {
    const values: Readings = readings(now);
    // One draw per knob per message, always in this order: the same seed gives the same faults.
    const isLate = faults() < late;
    const lateBy = 1000 + Math.floor(faults() * 59_000);
    const isMalformed = faults() < malformed;
    const isAnomaly = faults() < anomalies;
    const keys = Object.keys(values);
    const spiked = keys[Math.floor(faults() * keys.length)];
    if (isAnomaly && spiked !== undefined) values[spiked] = Math.round(values[spiked]! * 3 * 100) / 100;
    return { valuesJson: JSON.stringify(values), lateByMs: isLate ? lateBy : 0, malformed: isMalformed };
  };
}

/** The MQTT payload of a drawn message sent at `now`, in the form asked for. */
export function renderPayload(form: PayloadForm, now: number, message: DrawnMessage): string {
  const ts = now - message.lateByMs;
  if (message.malformed) return `{"ts": ${ts}, "values": {`; // cut short: not JSON
  switch (form) {
    case 'flat': return message.valuesJson;
    case 'array': return `[{"ts":${ts},"values":${message.valuesJson}}]`;
    case 'ts': return `{"ts":${ts},"values":${message.valuesJson}}`;
  }
}
