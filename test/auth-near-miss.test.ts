import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, type CreatedDevice } from './support/test-server.js';

/**
 * Tokens that are almost right are wrong: a prefix, one character more, the other case, empty or
 * padded. The admin token over REST and socket.io, a device token over MQTT CONNECT and the
 * device HTTP API, against one real server.
 */
const ADMIN = 'Adm1n-Near-Miss-Token-xyZ';

const swapCase = (s: string) => [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');

/** The near misses of a token, by name; every one must be refused. */
function nearMisses(token: string): [string, string][] {
  const misses: [string, string][] = [
    ['its first character', token.slice(0, 1)],
    ['its first half', token.slice(0, Math.floor(token.length / 2))],
    ['all but its last character', token.slice(0, -1)],
    ['it plus one character', `${token}x`],
    ['it twice', `${token}${token}`],
    ['its last character changed', `${token.slice(0, -1)}${token.endsWith('a') ? 'b' : 'a'}`],
    ['it in upper case', token.toUpperCase()],
    ['it in lower case', token.toLowerCase()],
    ['it with the case swapped', swapCase(token)],
    ['it with a space inside', `${token.slice(0, 3)} ${token.slice(3)}`],
  ];
  for (const [name, miss] of misses) {
    // A near miss that happened to equal the token would make its case test nothing.
    if (miss === token) throw new Error(`the near miss "${name}" is the token itself`);
  }
  return misses;
}

describe('near-miss tokens are refused', () => {
  let server: TestServer;
  let device: CreatedDevice;

  beforeAll(async () => {
    server = await TestServer.start({ adminToken: ADMIN });
    device = await server.createDevice('near-miss-device');
  });
  afterAll(async () => { await server?.stop(); });

  describe('the admin token over REST', () => {
    const get = (headers: Record<string, string>) => fetch(`${server.baseUrl}/api/devices`, { headers });

    it('takes the token itself, with the scheme in any case and any spacing after it', async () => {
      for (const authorization of [`Bearer ${ADMIN}`, `bearer ${ADMIN}`, `BEARER ${ADMIN}`, `Bearer    ${ADMIN}`, `Bearer\t${ADMIN}`, `Bearer ${ADMIN}   `]) {
        expect((await get({ authorization })).status, authorization).toBe(200);
      }
    });

    for (const [name, miss] of nearMisses(ADMIN)) {
      it(`refuses ${name} with 401`, async () => {
        const res = await get({ authorization: `Bearer ${miss}` });
        expect(res.status).toBe(401);
        expect(await res.json()).toEqual({ error: 'the admin token is wrong' });
      });
    }

    it('refuses an empty or blank token, another scheme, and the token without its scheme', async () => {
      const wrong = ['Bearer', 'Bearer ', 'Bearer     ', `Basic ${ADMIN}`, ADMIN, `Bearer: ${ADMIN}`, `xBearer ${ADMIN}`, `Bearer${ADMIN}`, `Token Bearer ${ADMIN}`];
      for (const authorization of wrong) {
        const res = await get({ authorization });
        expect(res.status, authorization).toBe(401);
        expect(await res.json(), authorization).toEqual({ error: 'the admin token is wrong' });
      }
    });

    it('refuses a request without the header, saying what is missing', async () => {
      const res = await get({});
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'missing Authorization: Bearer <admin token>' });
    });
  });

  describe('the admin token over socket.io', () => {
    /** Resolves with 'connected' or the connect error's message. */
    const tryConnect = (auth: Record<string, unknown>) => new Promise<string>((resolve) => {
      const socket = io(server.baseUrl, { auth, transports: ['websocket'], reconnection: false });
      socket.once('connect', () => { socket.close(); resolve('connected'); });
      socket.once('connect_error', (err) => { socket.close(); resolve(err.message); });
    });

    it('connects with the token itself', async () => {
      expect(await tryConnect({ token: ADMIN })).toBe('connected');
    });

    it('refuses every near miss, an empty or padded token and a token that is not a string', async () => {
      const wrong: [string, unknown][] = [
        ...nearMisses(ADMIN),
        ['an empty token', ''],
        ['a blank token', '   '],
        ['the token after a space', ` ${ADMIN}`],
        ['the token before a space', `${ADMIN} `],
        ['the token as the Bearer header', `Bearer ${ADMIN}`],
        ['a number', 12345],
        ['an array holding the token', [ADMIN]],
        ['no token at all', undefined],
      ];
      for (const [name, token] of wrong) {
        expect(await tryConnect(token === undefined ? {} : { token }), name).toMatch(/^unauthorized: the admin token is wrong or missing$/);
      }
    });
  });

  describe('a device token over MQTT CONNECT', () => {
    const tryConnect = async (username: string) => {
      try {
        const client = await server.connectDevice(username);
        client.end(true);
        return 'connected';
      } catch (err) {
        return (err as Error).message;
      }
    };

    it('connects with the token itself', async () => {
      expect(await tryConnect(device.token)).toBe('connected');
    });

    it('refuses every near miss and an empty or padded token', async () => {
      const wrong = [...nearMisses(device.token), ['an empty token', ''], ['a blank token', ' '],
        ['the token after a space', ` ${device.token}`], ['the token before a space', `${device.token} `]] as [string, string][];
      for (const [name, username] of wrong) {
        expect(await tryConnect(username), name).toMatch(/Bad username or password/i);
      }
    });
  });

  describe('a device token on the device HTTP API', () => {
    const post = (token: string) => fetch(`${server.baseUrl}/api/v1/${encodeURIComponent(token)}/telemetry`, { method: 'POST', body: '{"nearMiss":1}' });

    it('takes the token itself', async () => {
      expect((await post(device.token)).status).toBe(200);
    });

    it('refuses every near miss and a padded token with 401', async () => {
      const wrong = [...nearMisses(device.token), ['a blank token', ' '],
        ['the token after a space', ` ${device.token}`], ['the token before a space', `${device.token} `]] as [string, string][];
      for (const [name, token] of wrong) {
        const res = await post(token);
        expect(res.status, name).toBe(401);
        expect(await res.json(), name).toEqual({ error: 'unknown device token' });
      }
    });

    it('refuses an empty token with 401 (no device route matches, and the operator API wants the admin token)', async () => {
      const res = await post('');
      expect(res.status).toBe(401);
      await res.body?.cancel();
    });
  });
});
