import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { pino, type Logger } from 'pino';
import { testConfig, type Config } from '../../server/src/config.js';
import { startSluice, type Sluice } from '../../server/src/sluice.js';

export const silentLogger = pino({ level: 'silent' });

const tempDirsMade: string[] = [];

/** A fresh temp dir; every one made in a test file is removed when the file is done (test/support/remove-temp-dirs.ts). */
export function tempDir(prefix = 'sluice-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirsMade.push(dir);
  return dir;
}

/** Removes every temp dir tempDir() made in this process. */
export function removeTempDirs(): void {
  for (const dir of tempDirsMade.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export interface CreatedDevice {
  id: string;
  name: string;
  type: string;
  token: string;
  attributes: Record<string, unknown>;
}

/** A real Sluice on free ports over a temp data dir, with small helpers for its two APIs. */
export class TestServer {
  private constructor(readonly sluice: Sluice, readonly dataDir: string, readonly config: Config, private readonly ownsDataDir: boolean) {}

  /** Without a dataDir, on a temp dir of its own that stop() removes; with one, the caller's to keep. */
  static async start(overrides: Partial<Config> = {}, logger: Logger = silentLogger): Promise<TestServer> {
    const dataDir = overrides.dataDir ?? tempDir();
    const config = testConfig({ ...overrides, dataDir });
    return new TestServer(await startSluice(config, logger), dataDir, config, overrides.dataDir === undefined);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.sluice.ports.http}`;
  }

  /** The operator token, so a TestServer is an OperatorApi (test/support/consumer-lag.ts). */
  get adminToken(): string {
    return this.sluice.adminToken;
  }

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.sluice.ports.mqtt}`;
  }

  /** An operator request with the admin token; JSON bodies are serialised. */
  api(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${this.sluice.adminToken}`, ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    return fetch(`${this.baseUrl}${route}`, init);
  }

  /** An operator request whose JSON answer is returned; rejects on a non-2xx answer. */
  async json<T = unknown>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await this.api(method, route, body);
    if (!res.ok) throw new Error(`${method} ${route} → ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  createDevice(name: string, extra: Record<string, unknown> = {}): Promise<CreatedDevice> {
    return this.json<CreatedDevice>('POST', '/api/devices', { name, ...extra });
  }

  /** Connects as a device; rejects if the broker refuses the CONNECT. */
  connectDevice(token: string, options: IClientOptions = {}): Promise<MqttClient> {
    return connectMqtt(this.mqttUrl, { username: token, ...options });
  }

  async stop(): Promise<void> {
    await this.sluice.stop();
    if (this.ownsDataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** An MQTT client connected to `url` (no reconnects); rejects if the CONNECT fails. */
export function connectMqtt(url: string, options: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** Polls `check` every 25 ms until it gives a value other than undefined or false; rejects after `timeoutMs` (with its last error, if it threw). */
export function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = async () => {
      try {
        const value = await check();
        if (value !== undefined && value !== false) return resolve(value);
      } catch (err) {
        if (Date.now() > deadline) return reject(err);
      }
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(attempt, 25);
    };
    void attempt();
  });
}

/** The promise's value, or a failure naming what did not happen within `ms`. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A logger that keeps every line it logs, parsed, for tests that check what was reported. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown> & { msg: string; level: number }> } {
  const lines: Array<Record<string, unknown> & { msg: string; level: number }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line)); } });
  return { logger, lines };
}
