import type { PlannedDevice } from './device-plan.js';

/** A device as registered in Sluice, with the access token it connects with. */
export interface ProvisionedDevice {
  id: string;
  name: string;
  token: string;
  /** false when a device of that name existed and is reused. */
  created: boolean;
}

/** Provisioning failed in a way retrying will not fix (wrong token, server unreachable, bad answer). */
export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
}

export interface SluiceApi {
  /** HTTP base URL, without a trailing slash. */
  url: string;
  adminToken: string;
}

interface DeviceJson { id: string; name: string; token: string }

/** Requests in flight at once: enough to be quick, few enough not to swamp a small server. */
const CONCURRENCY = 8;

/**
 * Registers the planned devices over the REST API (`POST /api/devices`). A name that is taken
 * (409) is reused: its id and token come from `GET /api/devices`, read once.
 */
export async function provisionDevices(api: SluiceApi, planned: PlannedDevice[]): Promise<ProvisionedDevice[]> {
  let existing: Promise<Map<string, DeviceJson>> | undefined;
  const findExisting = async (name: string): Promise<ProvisionedDevice> => {
    existing ??= listDevices(api).then((list) => new Map(list.map((d) => [d.name, d])));
    const device = (await existing).get(name);
    if (!device) throw new ProvisionError(`POST /api/devices answered 409 for "${name}", but GET /api/devices does not list it`);
    return { id: device.id, name: device.name, token: device.token, created: false };
  };

  const provisionOne = async (device: PlannedDevice): Promise<ProvisionedDevice> => {
    const body = { name: device.name, type: device.type, attributes: device.attributes };
    const res = await request(api, 'POST', '/api/devices', body);
    if (res.status === 409) return findExisting(device.name);
    if (res.status !== 201) throw await unexpected(res, `POST /api/devices ("${device.name}")`);
    const created = await res.json() as DeviceJson;
    return { id: created.id, name: created.name, token: created.token, created: true };
  };

  const result: ProvisionedDevice[] = new Array(planned.length);
  let next = 0;
  const worker = async () => {
    while (next < planned.length) {
      const i = next++;
      result[i] = await provisionOne(planned[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, planned.length) }, worker));
  return result;
}

async function listDevices(api: SluiceApi): Promise<DeviceJson[]> {
  const res = await request(api, 'GET', '/api/devices');
  if (res.status !== 200) throw await unexpected(res, 'GET /api/devices');
  return await res.json() as DeviceJson[];
}

async function request(api: SluiceApi, method: string, route: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${api.adminToken}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await fetch(`${api.url}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ProvisionError(`cannot reach Sluice at ${api.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
  }
}

async function unexpected(res: Response, what: string): Promise<ProvisionError> {
  let detail = '';
  try {
    const json = await res.json() as { error?: unknown };
    if (typeof json.error === 'string') detail = `: ${json.error}`;
  } catch {
    // not JSON: the status says enough
  }
  const hint = res.status === 401 ? ' (check --admin-token / ADMIN_TOKEN)' : '';
  return new ProvisionError(`${what} answered ${res.status}${detail}${hint}`);
}
