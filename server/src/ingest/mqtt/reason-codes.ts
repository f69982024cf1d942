/**
 * The reason codes Sluice's device transport sends (MQTT 5 §2.4) and the MQTT 3.1.1 CONNACK
 * return codes (§3.2.2.3) they fall back to. docs/architecture.md ("Device transport") has the
 * table of when each is sent.
 */

/** MQTT 5 reason codes. */
export const RC = {
  SUCCESS: 0x00,
  NO_SUBSCRIPTION_EXISTED: 0x11,
  UNSPECIFIED_ERROR: 0x80,
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC_ERROR: 0x83,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  CLIENT_IDENTIFIER_NOT_VALID: 0x85,
  BAD_USERNAME_OR_PASSWORD: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_BUSY: 0x89,
  BAD_AUTHENTICATION_METHOD: 0x8c,
  KEEP_ALIVE_TIMEOUT: 0x8d,
  SESSION_TAKEN_OVER: 0x8e,
  TOPIC_FILTER_INVALID: 0x8f,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_IDENTIFIER_NOT_FOUND: 0x92,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  TOPIC_ALIAS_INVALID: 0x94,
  PACKET_TOO_LARGE: 0x95,
  QUOTA_EXCEEDED: 0x97,
  PAYLOAD_FORMAT_INVALID: 0x99,
  SERVER_SHUTTING_DOWN: 0x8b,
  SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: 0x9e,
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: 0xa1,
} as const;

/** MQTT 3.1.1 CONNACK return codes. */
export const V3 = {
  ACCEPTED: 0,
  UNACCEPTABLE_PROTOCOL_VERSION: 1,
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;

/** A refused CONNECT as each protocol version says it. */
export interface ConnackRefusal {
  v5: number;
  v3: number;
}

export const REFUSE = {
  bad_credentials: { v5: RC.BAD_USERNAME_OR_PASSWORD, v3: V3.BAD_USERNAME_OR_PASSWORD },
  not_authorized: { v5: RC.NOT_AUTHORIZED, v3: V3.NOT_AUTHORIZED },
  server_busy: { v5: RC.SERVER_BUSY, v3: V3.SERVER_UNAVAILABLE },
  server_unavailable: { v5: RC.SERVER_UNAVAILABLE, v3: V3.SERVER_UNAVAILABLE },
  client_id: { v5: RC.CLIENT_IDENTIFIER_NOT_VALID, v3: V3.IDENTIFIER_REJECTED },
} satisfies Record<string, ConnackRefusal>;

/**
 * The PUBACK / PUBREC reason code (MQTT 5) of a message Sluice rejected, by the rejected list's
 * category: a payload it cannot take as sent is "payload format invalid", one over a size or key
 * cap "quota exceeded", a topic it has no use for "topic name invalid".
 */
export function rejectionReasonCode(category: string): number {
  switch (category) {
    case 'not_json':
    case 'bad_shape':
    case 'too_complex':
      return RC.PAYLOAD_FORMAT_INVALID;
    case 'too_large':
    case 'too_many_keys':
      return RC.QUOTA_EXCEEDED;
    case 'unknown_topic':
      return RC.TOPIC_NAME_INVALID;
    case 'not_authorized':
      return RC.NOT_AUTHORIZED;
    default:
      return RC.IMPLEMENTATION_SPECIFIC_ERROR;
  }
}
