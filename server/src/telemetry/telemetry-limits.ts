/**
 * What one device's telemetry may cost, until these are flags in Config (docs/limits.md): each
 * one left out keeps its default.
 */
export interface TelemetryLimits {
  /** Levels of objects and arrays in a payload (DEFAULT_MAX_PAYLOAD_DEPTH, 16). */
  maxPayloadDepth?: number;
  /** Keys and array items in a message's values, nested ones included (DEFAULT_MAX_PAYLOAD_KEYS, 1,000). */
  maxPayloadKeys?: number;
  /** Distinct telemetry keys per device (DEFAULT_MAX_KEYS_PER_DEVICE, 1,000). */
  maxKeysPerDevice?: number;
  /** Distinct client attributes per device (DEFAULT_MAX_ATTRIBUTES_PER_DEVICE, 1,000). */
  maxAttributesPerDevice?: number;
  /** Heap the parsed values kept for the rules group may take (DEFAULT_RECENT_ENTRIES_MAX_BYTES, 32 MiB). */
  recentValuesMaxBytes?: number;
}
