/**
 * What the client throws (call-level failures; a failed segment is `SegmentResult.status`).
 * Mirrors the Python SDK's translate_svc/client/errors.py.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { ListenEnd, StreamEnd } from "./types";

/** The name of a gRPC status code ("RESOURCE_EXHAUSTED"). */
export function codeName(code: number): string {
  return GrpcStatus[code] ?? `CODE_${code}`;
}

/**
 * A call failed with a gRPC status: `code` and the server's `details` (which say what to fix).
 * `retryDelayMs`: the server's google.rpc.RetryInfo, when it sent one; `address`: the target of
 * the failed attempt; `requestId`: the `x-request-id` sent with the call (the server's access log
 * has a line with it).
 */
export class TranslateError extends Error {
  readonly code: number;
  readonly details: string;
  readonly retryDelayMs: number | undefined;
  readonly address: string | undefined;
  attempts: number;
  readonly requestId: string | undefined;

  constructor(
    code: number,
    details: string,
    opts: { retryDelayMs?: number; address?: string; attempts?: number; requestId?: string } = {},
  ) {
    super(`${codeName(code)}: ${details}` + (opts.requestId ? ` [request_id ${opts.requestId}]` : ""));
    this.name = "TranslateError";
    this.code = code;
    this.details = details;
    this.retryDelayMs = opts.retryDelayMs;
    this.address = opts.address;
    this.attempts = opts.attempts ?? 1;
    this.requestId = opts.requestId;
  }

  /** The status code's name ("UNAVAILABLE"). */
  get codeName(): string {
    return codeName(this.code);
  }
}

/**
 * A stream was lost and could not be continued on any server (`maxResumes` or the retry
 * policy's attempts used up). Results delivered before it stand; audio from `resumeOffsetMs` on
 * was not translated. `cause` is the last failure.
 */
export class StreamResumeError extends TranslateError {
  readonly resumeOffsetMs: number;

  constructor(
    code: number,
    details: string,
    opts: { resumeOffsetMs: number; attempts: number; requestId?: string; cause?: unknown },
  ) {
    super(code, details, { attempts: opts.attempts, requestId: opts.requestId });
    this.name = "StreamResumeError";
    this.resumeOffsetMs = opts.resumeOffsetMs;
    if (opts.cause !== undefined) this.cause = opts.cause;
  }
}

/**
 * The server ended a stream other than cleanly: the tenant's audio budget was spent (`QUOTA`,
 * RESOURCE_EXHAUSTED with `retryDelayMs`), its token was revoked (`REVOKED`, UNAUTHENTICATED), a
 * message could not be used (`ERROR`), it was idle too long (`IDLE_TIMEOUT`) or ran too long
 * (`MAX_STREAM_DURATION`, both OUT_OF_RANGE). The iteration yields every result and the `ended`
 * event first, then throws this; `send` and `flush` throw it from the moment the client read the
 * end. Never thrown for a drain or a dead model worker: the client resumes those elsewhere.
 */
export class StreamEndedError extends TranslateError {
  readonly end: StreamEnd;
  readonly reason: string;

  constructor(end: StreamEnd, opts: { retryDelayMs?: number; address?: string } = {}) {
    super(end.code, end.details, { ...opts, requestId: end.requestId });
    this.name = "StreamEndedError";
    this.end = end;
    this.reason = end.reason;
    const rid = end.requestId ? ` [request_id ${end.requestId}]` : "";
    this.message = `the stream ended: ${end.reason} (${codeName(end.code)}): ${end.details}${rid}`;
  }
}

/**
 * The server ended a listen and the client did not continue it elsewhere: its token was revoked
 * (`REVOKED`, UNAUTHENTICATED), or another status; with `resume: false` also a drain, a lost
 * connection or the longest listen. The iteration yields the `ended` event first, then throws this.
 */
export class ListenEndedError extends TranslateError {
  readonly end: ListenEnd;
  readonly reason: string;

  constructor(end: ListenEnd, opts: { retryDelayMs?: number } = {}) {
    super(end.code, end.details, { ...opts, address: end.address, requestId: end.requestId });
    this.name = "ListenEndedError";
    this.end = end;
    this.reason = end.reason;
    this.message = `the listen ended: ${end.reason} (${codeName(end.code)}): ${end.details} [request_id ${end.requestId}]`;
  }
}

/** `send`/`flush`/`update` after `close()`, after the stream ended cleanly, or after it failed
 * (a `StreamEndedError` is thrown as itself). */
export class StreamClosedError extends Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message);
    this.name = "StreamClosedError";
    if (opts.cause !== undefined) this.cause = opts.cause;
  }
}
