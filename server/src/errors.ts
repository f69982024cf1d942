/**
 * The one error family Sluice throws. The runtime knows nothing of HTTP: each code carries the
 * HTTP status the API layer answers with, and `retriable` tells callers whether trying again can
 * help. On the per-message hot path validation returns a rejection reason instead of throwing.
 */
export const errorCodes = {
  INVALID_INPUT: { status: 400, retriable: false },
  UNAUTHORIZED: { status: 401, retriable: false },
  NOT_FOUND: { status: 404, retriable: false },
  CONFLICT: { status: 409, retriable: false },
  PAYLOAD_TOO_LARGE: { status: 413, retriable: false },
  NOT_READY: { status: 503, retriable: true },
  LOG_CORRUPT: { status: 500, retriable: false },
  LOG_FULL: { status: 503, retriable: true },
  LOG_IO: { status: 503, retriable: true },
  OFFSET_OUT_OF_RANGE: { status: 416, retriable: false },
  STORAGE_BUSY: { status: 503, retriable: true },
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retriable: boolean;
  /** Facts a caller may act on, e.g. the valid offset range with OFFSET_OUT_OF_RANGE. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options);
    this.details = options?.details;
    this.name = 'SluiceError';
    this.code = code;
    this.status = errorCodes[code].status;
    this.retriable = errorCodes[code].retriable;
  }
}

export const invalidInput = (message: string) => new SluiceError('INVALID_INPUT', message);
export const notFound = (message: string) => new SluiceError('NOT_FOUND', message);
export const conflict = (message: string) => new SluiceError('CONFLICT', message);

/** Sluice cannot start for a reason the operator can fix (a busy port, say): main prints the message alone. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}
