import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from './test-server.js';

/** One request a receiver took, whole. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** What the receiver answered it. */
  answer: ReceiverAnswer;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

/** An HTTP status to answer with, `'drop'` to destroy the connection, or `'hang'` never to answer. */
export type ReceiverAnswer = number | 'drop' | 'hang';

export interface HttpReceiver {
  /** Where to send: the receiver's address and `path`. */
  url: string;
  /** Every request, in arrival order, once its body has arrived. */
  requests: ReceivedRequest[];
  /** The parsed JSON bodies, in arrival order. */
  bodies<T = unknown>(): T[];
  /** Waits (with a deadline) until at least `n` requests arrived; resolves with all of them. */
  waitForRequests(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  /** Closes the server and every open connection (hung ones too). */
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1 and a free port, the target of webhook tests: `answer` decides
 * each request (given it and its 1-based number), 200 by default; it keeps every request it took.
 */
export async function startHttpReceiver(answer: (request: ReceivedRequest, n: number) => ReceiverAnswer = () => 200, path = '/hook'): Promise<HttpReceiver> {
  const requests: ReceivedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const request: ReceivedRequest = {
        method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, answer: 'hang',
        json: <T>() => JSON.parse(body) as T,
      };
      request.answer = answer(request, requests.length + 1);
      requests.push(request);
      if (request.answer === 'drop') req.socket.destroy();
      else if (typeof request.answer === 'number') res.writeHead(request.answer).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    requests,
    bodies: <T>() => requests.map((r) => r.json<T>()),
    waitForRequests: (n, timeoutMs = 10_000) => waitFor(`${n} requests at the HTTP receiver (${requests.length} so far)`, () => (requests.length >= n ? requests : undefined), timeoutMs),
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
