/**
 * When to retry a call and how long to wait first (pure; randomness passed in).
 *
 * The server says how long to wait in a google.rpc.RetryInfo detail of RESOURCE_EXHAUSTED (the
 * `grpc-status-details-bin` trailer, a google.rpc.Status); that wait is honoured as given. Without
 * one, the wait is an exponential backoff with jitter. Only RESOURCE_EXHAUSTED and UNAVAILABLE are
 * retried: every other status (INVALID_ARGUMENT above all) says the request itself must change.
 * Mirrors translate_svc/client/_retry.py.
 */
import { type Metadata, status as GrpcStatus } from "@grpc/grpc-js";
import { RetryInfo } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";

const DETAILS_KEY = "grpc-status-details-bin";
const RETRY_INFO_URL = "type.googleapis.com/google.rpc.RetryInfo";

/**
 * `maxAttempts` counts the first try. The backoff before retry `n` (1-based) is
 * `initialBackoffMs * multiplier**(n-1)`, capped at `maxBackoffMs`, times a random factor in
 * `[1 - jitter, 1 + jitter]`. A server hint (RetryInfo) replaces it, capped at `maxRetryDelayMs`.
 */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
  jitter: number;
  maxRetryDelayMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  initialBackoffMs: 200,
  maxBackoffMs: 10_000,
  multiplier: 2,
  jitter: 0.2,
  maxRetryDelayMs: 60_000,
});

export function retryPolicy(p: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy = { ...DEFAULT_RETRY, ...p };
  if (!(policy.maxAttempts >= 1)) throw new RangeError("retry.maxAttempts must be at least 1");
  if (!(policy.jitter >= 0 && policy.jitter < 1)) throw new RangeError("retry.jitter must be in [0, 1)");
  return policy;
}

/** Milliseconds to wait before retry number `retry` (1 = the first retry). */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  hintMs: number | undefined,
  rand: () => number = Math.random,
): number {
  if (hintMs !== undefined) return Math.min(Math.max(0, hintMs), policy.maxRetryDelayMs);
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** Math.max(0, retry - 1));
  return base * (1 - policy.jitter + 2 * policy.jitter * rand());
}

export function isRetryable(code: number): boolean {
  return code === GrpcStatus.RESOURCE_EXHAUSTED || code === GrpcStatus.UNAVAILABLE;
}

/** The RetryInfo delay (ms) of a serialized google.rpc.Status; undefined when it carries none. */
export function retryDelayFromStatusBytes(bytes: Uint8Array): number | undefined {
  let status: Status;
  try {
    status = Status.decode(bytes);
  } catch {
    return undefined;
  }
  for (const detail of status.details) {
    if (detail.typeUrl === RETRY_INFO_URL) {
      try {
        const d = RetryInfo.decode(detail.value).retryDelay;
        return d === undefined ? undefined : d.seconds * 1000 + d.nanos / 1e6;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The RetryInfo delay (ms) carried in a call's trailing metadata. */
export function retryDelayFromMetadata(metadata: Metadata | undefined): number | undefined {
  for (const value of metadata?.get(DETAILS_KEY) ?? []) {
    if (typeof value !== "string") return retryDelayFromStatusBytes(value);
  }
  return undefined;
}
