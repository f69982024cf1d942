import fs from 'node:fs';
import path from 'node:path';
import type { ProvisionedDevice } from './provision.js';

/**
 * A tokens file keeps the devices of a run (name, id, token) so the next run connects them without
 * asking the REST API: for load tests with thousands of devices, or where the operator token is
 * not at hand. It is JSON: `{"devices": [{"name", "id", "token"}, ...]}`.
 */
export class TokensFileError extends Error {
  override readonly name = 'TokensFileError';
}

interface TokensFileJson { devices: Array<{ name: string; id: string; token: string }> }

/** The devices of the file, or undefined when there is no file. Throws TokensFileError when it is unreadable. */
export function readTokensFile(file: string): Map<string, ProvisionedDevice> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokensFileError(`cannot read tokens file ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TokensFileError(`tokens file ${file} is not JSON: ${(err as Error).message}`);
  }
  const list = (json as Partial<TokensFileJson> | null)?.devices;
  if (!Array.isArray(list)) throw new TokensFileError(`tokens file ${file}: expected {"devices": [...]}`);
  const devices = new Map<string, ProvisionedDevice>();
  list.forEach((d: unknown, i) => {
    const { name, id, token } = (d ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || typeof id !== 'string' || typeof token !== 'string' || token === '') {
      throw new TokensFileError(`tokens file ${file}: devices[${i}] needs string "name", "id" and "token"`);
    }
    devices.set(name, { name, id, token, created: false });
  });
  return devices;
}

/** Writes the file whole (temp file + rename), so a crash never leaves half a file. */
export function writeTokensFile(file: string, devices: ProvisionedDevice[]): void {
  const json: TokensFileJson = { devices: devices.map(({ name, id, token }) => ({ name, id, token })) };
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temp, `${JSON.stringify(json, null, 1)}\n`, { mode: 0o600 });
  fs.renameSync(temp, file);
}
