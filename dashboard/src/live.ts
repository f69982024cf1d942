import { io, type Socket } from 'socket.io-client';
import { token } from './api.js';

export interface Telemetry { deviceId: string; ts: number; values: Record<string, unknown> }
/** `replaces`: starts of earlier results of the same rule, node and group this one supersedes (merged session windows). */
export interface WindowResult { rule: string; node: string; group: string; start: number; end: number; values: Record<string, number | null>; final: boolean; replaces?: number[] }
export interface Alarm { id: string; type: string; originator: string; rule: string; severity: string; status: string; startTs: number; lastTs: number; ackTs: number | null; clearTs: number | null; count: number; details: Record<string, unknown> }
export interface Stats { ts: number; ingestRate: number; lag: number }

type Events = { telemetry: Telemetry; window: WindowResult; alarm: Alarm; stats: Stats; reconnect: undefined };

/**
 * The socket.io connection, shared by the views: they subscribe to events and are told when the
 * connection came back (to catch up by querying the API again).
 */
export class Live {
  private socket: Socket | undefined;
  private readonly listeners = new Map<keyof Events, Set<(e: never) => void>>();
  private connectedOnce = false;

  constructor(private readonly onStatus: (live: boolean) => void) {}

  connect(): void {
    this.socket = io({ auth: { token: token.get() }, transports: ['websocket'] });
    this.socket.on('connect', () => {
      this.onStatus(true);
      if (this.connectedOnce) this.emit('reconnect', undefined);
      this.connectedOnce = true;
    });
    this.socket.on('disconnect', () => this.onStatus(false));
    this.socket.on('connect_error', () => this.onStatus(false));
    for (const name of ['telemetry', 'window', 'alarm', 'stats'] as const) this.socket.on(name, (e: unknown) => this.emit(name, e as never));
  }

  on<K extends keyof Events>(name: K, fn: (e: Events[K]) => void): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn as (e: never) => void);
    return () => set.delete(fn as (e: never) => void);
  }

  private emit<K extends keyof Events>(name: K, e: Events[K]): void {
    for (const fn of this.listeners.get(name) ?? []) (fn as (e: Events[K]) => void)(e);
  }
}

/** Calls `render` at most every `ms` while something changed: never one DOM update per message. */
export function throttled(render: () => void, ms = 250): { mark(): void; stop(): void } {
  let dirty = false;
  const timer = setInterval(() => {
    if (!dirty) return;
    dirty = false;
    render();
  }, ms);
  return { mark: () => { dirty = true; }, stop: () => clearInterval(timer) };
}
