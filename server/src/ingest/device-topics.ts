import type { MessageKind } from '../telemetry/device-message.js';

/** The MQTT topics a device publishes to (ThingsBoard's device API). */
const publishTopics: Record<string, MessageKind> = {
  'v1/devices/me/telemetry': 'telemetry',
  'v1/devices/me/attributes': 'attributes',
};

export function kindOfDeviceTopic(topic: string): MessageKind | undefined {
  return Object.hasOwn(publishTopics, topic) ? publishTopics[topic] : undefined;
}

/** What a device may subscribe to: messages from the server to itself, nothing of other devices. */
const subscribableTopics = new Set([
  'v1/devices/me/attributes',
  'v1/devices/me/attributes/response/+',
  'v1/devices/me/rpc/request/+',
  // Answers to the device's own requests (ThingsBoard's client-side RPC, e.g. getSessionLimits).
  'v1/devices/me/rpc/response/+',
]);

/** Where rules republish (`republish` nodes): any connected client may subscribe below it. */
export const RULE_OUTPUT_PREFIX = 'rules/';

/** Where alarm notifications go: `sluice/alarms/<alarm type>`. */
export const ALARM_TOPIC_PREFIX = 'sluice/alarms/';

export function deviceMaySubscribe(topic: string): boolean {
  return subscribableTopics.has(topic)
    || [RULE_OUTPUT_PREFIX, ALARM_TOPIC_PREFIX].some((prefix) => topic.startsWith(prefix) && topic.length > prefix.length);
}

export const publishTopicList = Object.keys(publishTopics);
