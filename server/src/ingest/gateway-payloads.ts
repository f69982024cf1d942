/**
 * The payloads of ThingsBoard's gateway API, as its SDK (tb-mqtt-client's TBGatewayMqttClient)
 * sends them:
 *   v1/gateway/connect             {"device": "Sensor A", "type": "thermometer"}
 *   v1/gateway/disconnect          {"device": "Sensor A"}
 *   v1/gateway/telemetry           {"Sensor A": [{"ts": ms, "values": {...}}, {...values...}], "Sensor B": {...}}
 *   v1/gateway/attributes          {"Sensor A": {"k": v}}
 *   v1/gateway/attributes/request  {"id": 1, "device": "Sensor A", "client": true, "key": "k"} (or "keys": [...])
 *   v1/gateway/rpc                 {"device": "Sensor A", "id": 1, "data": {...}}
 *   v1/gateway/claim               {"Sensor A": {"secretKey": "...", "durationMs": 60000}}
 * Only the envelope is checked here (what the gateway's software frames); each sub-device's
 * values are ingest's to validate, as a direct device's are. Runs per message: returns a reason
 * instead of throwing.
 */

export const GATEWAY_TOPIC_PREFIX = 'v1/gateway/';

export const gatewayTopics = ['connect', 'disconnect', 'telemetry', 'attributes', 'attributes/request', 'rpc', 'claim'] as const;
export type GatewayTopic = (typeof gatewayTopics)[number];

/** A sub-device's name: as a device name in the REST API, at most 200 characters. */
export const MAX_SUB_DEVICE_NAME_LENGTH = 200;
/** A sub-device's type, from connect: as in the REST API. */
export const MAX_SUB_DEVICE_TYPE_LENGTH = 100;
/** Keys one attributes request may name. */
export const MAX_REQUESTED_KEYS = 1000;
export const MAX_REQUESTED_KEY_LENGTH = 255;
export const MAX_CLAIM_SECRET_LENGTH = 256;

export type GatewayMessage =
  | { topic: 'connect'; device: string; type: string | undefined }
  | { topic: 'disconnect'; device: string }
  /** Each part: a sub-device's name and its payload (telemetry: an array or an object; attributes: an object). */
  | { topic: 'telemetry' | 'attributes'; parts: [string, unknown][] }
  | { topic: 'attributes/request'; device: string; id: number; client: boolean; keys: string[] }
  | { topic: 'rpc'; device: string; id: number; data: unknown }
  | { topic: 'claim'; parts: [string, { secretKey?: string; durationMs?: number }][] };

export const gatewayTopicOf = (topic: string): GatewayTopic | undefined => {
  if (!topic.startsWith(GATEWAY_TOPIC_PREFIX)) return undefined;
  const rest = topic.slice(GATEWAY_TOPIC_PREFIX.length);
  return (gatewayTopics as readonly string[]).includes(rest) ? rest as GatewayTopic : undefined;
};

/** The names a message speaks for, in its order. */
export function namesOf(message: GatewayMessage): string[] {
  return 'parts' in message ? message.parts.map(([name]) => name) : [message.device];
}

/** The message, or the reason its envelope is not one of the gateway API's (a bad_shape rejection). */
export function parseGatewayMessage(topic: GatewayTopic, json: unknown, maxDevices: number): GatewayMessage | { reason: string } {
  if (!isObject(json)) return { reason: `a ${topic} message must be a JSON object, got ${describe(json)}` };
  switch (topic) {
    case 'connect': {
      const device = nameField(json);
      if (typeof device !== 'string') return device;
      if (json.type !== undefined && !(typeof json.type === 'string' && json.type.trim().length > 0 && json.type.length <= MAX_SUB_DEVICE_TYPE_LENGTH)) {
        return { reason: `"type" must be a string of 1 to ${MAX_SUB_DEVICE_TYPE_LENGTH} characters, got ${describe(json.type)}` };
      }
      return { topic, device, type: json.type };
    }
    case 'disconnect': {
      const device = nameField(json);
      return typeof device === 'string' ? { topic, device } : device;
    }
    case 'attributes/request': {
      const device = nameField(json);
      if (typeof device !== 'string') return device;
      if (!isRequestId(json.id)) return { reason: `"id" must be a non-negative whole number (the request's id), got ${describe(json.id)}` };
      if (typeof json.client !== 'boolean') return { reason: `"client" must be true (client attributes) or false (shared ones), got ${describe(json.client)}` };
      if (json.key === undefined && json.keys === undefined) return { reason: 'an attributes request needs "key" (a string) or "keys" (an array of strings)' };
      const keys: string[] = [];
      if (json.key !== undefined) {
        if (!isKey(json.key)) return { reason: `"key" must be a string of 1 to ${MAX_REQUESTED_KEY_LENGTH} characters, got ${describe(json.key)}` };
        keys.push(json.key);
      }
      if (json.keys !== undefined) {
        if (!Array.isArray(json.keys) || json.keys.length === 0 || json.keys.length > MAX_REQUESTED_KEYS || !json.keys.every(isKey)) {
          return { reason: `"keys" must be an array of 1 to ${MAX_REQUESTED_KEYS} strings of 1 to ${MAX_REQUESTED_KEY_LENGTH} characters` };
        }
        keys.push(...json.keys as string[]);
      }
      return { topic, device, id: json.id, client: json.client, keys };
    }
    case 'rpc': {
      const device = nameField(json);
      if (typeof device !== 'string') return device;
      if (!isRequestId(json.id)) return { reason: `"id" must be a non-negative whole number (the RPC request's id), got ${describe(json.id)}` };
      if (!('data' in json)) return { reason: '"data" is missing: the RPC reply\'s result' };
      return { topic, device, id: json.id, data: json.data };
    }
    case 'telemetry':
    case 'attributes':
    case 'claim': {
      const parts = Object.entries(json);
      if (parts.length === 0) return { reason: `a ${topic} message must name at least one device` };
      if (parts.length > maxDevices) return { reason: `the message names ${parts.length} devices, more than ${maxDevices}` };
      for (const [name, value] of parts) {
        const bad = nameProblem(name);
        if (bad) return { reason: bad };
        if (topic === 'telemetry' && !(isObject(value) || Array.isArray(value))) {
          return { reason: `telemetry of "${short(name)}" must be an array or an object, got ${describe(value)}` };
        }
        if (topic === 'attributes' && !isObject(value)) return { reason: `attributes of "${short(name)}" must be a JSON object, got ${describe(value)}` };
        if (topic === 'claim') {
          const problem = claimProblem(name, value);
          if (problem) return { reason: problem };
        }
      }
      return topic === 'claim' ? { topic, parts: parts as [string, { secretKey?: string; durationMs?: number }][] } : { topic, parts };
    }
  }
}

/**
 * Whether `value` nests objects and arrays more than `maxDepth` levels, counted from its own
 * outermost brackets as ingest counts a payload's. Iterative, and it stops at the first level too
 * many: a part can be serialised for ingest once this says no.
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: [object, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > maxDepth) return true;
    for (const child of Object.values(node)) {
      if (typeof child === 'object' && child !== null) stack.push([child as object, depth + 1]);
    }
  }
  return false;
}

function nameField(json: Record<string, unknown>): string | { reason: string } {
  if (typeof json.device !== 'string') return { reason: `"device" must be a string (the sub-device's name), got ${describe(json.device)}` };
  const bad = nameProblem(json.device);
  return bad ? { reason: bad } : json.device;
}

function nameProblem(name: string): string | undefined {
  if (name.trim().length === 0) return 'a device name must not be empty';
  if (name.length > MAX_SUB_DEVICE_NAME_LENGTH) return `device name "${short(name)}" is longer than ${MAX_SUB_DEVICE_NAME_LENGTH} characters`;
  return undefined;
}

function claimProblem(name: string, value: unknown): string | undefined {
  if (!isObject(value)) return `the claim of "${short(name)}" must be a JSON object ({"secretKey", "durationMs"}), got ${describe(value)}`;
  const { secretKey, durationMs } = value;
  if (secretKey !== undefined && !(typeof secretKey === 'string' && secretKey.length <= MAX_CLAIM_SECRET_LENGTH)) {
    return `"secretKey" of "${short(name)}" must be a string of at most ${MAX_CLAIM_SECRET_LENGTH} characters, got ${describe(secretKey)}`;
  }
  if (durationMs !== undefined && !isRequestId(durationMs)) return `"durationMs" of "${short(name)}" must be a non-negative whole number of milliseconds, got ${describe(durationMs)}`;
  return undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isRequestId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isKey = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_REQUESTED_KEY_LENGTH;
const short = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(short(v))}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
