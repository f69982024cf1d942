import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Structured JSON logs; pretty and coloured when a person is watching the terminal. */
export function createLogger(level: string, humanReadable: boolean): Logger {
  if (!humanReadable) return pino({ level, base: { service: 'sluice' } });
  const stream = pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true });
  return pino({ level, base: undefined }, stream);
}
