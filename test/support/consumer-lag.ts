import { TELEMETRY_TOPIC } from '../../server/src/telemetry/device-message.js';
import { RULES_GROUP, WINDOW_RULES_GROUP } from '../../server/src/rules/rules-consumer.js';
import { WINDOWS_TOPIC } from '../../server/src/rules/rules-runtime.js';
import { STORAGE_GROUP } from '../../server/src/storage/storage-consumer.js';
import { waitFor } from './test-server.js';

/** Where a server's operator API is: a TestServer has both; for a child server, its HTTP URL and admin token. */
export interface OperatorApi {
  baseUrl: string;
  adminToken: string;
}

/** The operator API of a server in a child process (child-server.ts), for the helpers here. */
export function childOperatorApi(server: { ports: { http: number } }, adminToken: string): OperatorApi {
  return { baseUrl: `http://127.0.0.1:${server.ports.http}`, adminToken };
}

/** The topic each of Sluice's consumer groups reads. */
export const groupTopics: Record<string, string> = {
  [STORAGE_GROUP]: TELEMETRY_TOPIC, [RULES_GROUP]: TELEMETRY_TOPIC, [WINDOW_RULES_GROUP]: WINDOWS_TOPIC,
};

interface LogState {
  topics: { name: string; partitions: { partition: number; startOffset: number; endOffset: number }[] }[];
  groups: { name: string; topic: string; partitions: { partition: number; lag: number }[] }[];
}

/**
 * Each group's lag over all its partitions as /api/log has it now. A group that never committed
 * is not listed there: its lag is then all its topic holds (it starts from the earliest offset).
 */
export async function consumerLag(server: OperatorApi, groups: readonly string[]): Promise<Record<string, number>> {
  const res = await fetch(`${server.baseUrl}/api/log`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  if (!res.ok) throw new Error(`GET /api/log → ${res.status} ${await res.text()}`);
  const state = (await res.json()) as LogState;
  return Object.fromEntries(groups.map((group) => {
    const listed = state.groups.find((g) => g.name === group);
    if (listed) return [group, listed.partitions.reduce((sum, p) => sum + p.lag, 0)];
    const topic = groupTopics[group];
    if (topic === undefined) throw new Error(`no topic known for consumer group "${group}"`);
    const partitions = state.topics.find((t) => t.name === topic)?.partitions ?? [];
    return [group, partitions.reduce((sum, p) => sum + p.endOffset - p.startOffset, 0)];
  }));
}

/** Waits (with a deadline) until each group has handled everything in the log: lag 0 on every partition. */
export async function waitForZeroLag(server: OperatorApi, groups: readonly string[], timeoutMs = 15_000): Promise<void> {
  let last: Record<string, number> = {};
  await waitFor(`zero lag of ${groups.join(', ')}`, async () => {
    last = await consumerLag(server, groups);
    return Object.values(last).every((lag) => lag === 0) ? true : undefined;
  }, timeoutMs).catch((err: Error) => { throw new Error(`${err.message}; last lag: ${JSON.stringify(last)}`); });
}
