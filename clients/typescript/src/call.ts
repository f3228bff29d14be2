/** One StreamingTranslate call as the stream uses it: its messages in order, its status, and
 * writes that report whether the call was still there. Plus the timers the stream waits with, and
 * the queue of events a stream's or a listen's pump reads ahead of its caller. */
import type { ClientDuplexStream, StatusObject } from "@grpc/grpc-js";
import type { StreamingTranslateRequest, StreamingTranslateResponse } from "./gen/translate_svc/api/v1/translate";

export type Call = ClientDuplexStream<StreamingTranslateRequest, StreamingTranslateResponse>;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `p`, or "timeout" after `ms` (the timer is cleared: no pending timer keeps Node running). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** One call: its messages in order (null at their end), and its status. */
export class CallReader {
  readonly status: Promise<StatusObject>;
  private gotStatus = false;
  private readonly it: AsyncIterator<StreamingTranslateResponse>;

  constructor(readonly call: Call) {
    call.on("error", () => undefined); // the status says it
    this.status = new Promise((resolve) =>
      call.on("status", (s: StatusObject) => {
        this.gotStatus = true;
        resolve(s);
      }),
    );
    this.it = call[Symbol.asyncIterator]() as AsyncIterator<StreamingTranslateResponse>;
  }

  get over(): boolean {
    return this.gotStatus;
  }

  async read(): Promise<StreamingTranslateResponse | null> {
    try {
      const r = await this.it.next();
      return r.done ? null : r.value;
    } catch {
      return null; // a failed call: its status follows
    }
  }

  /** Write one message; false when the call ended first (it may or may not have gone out). */
  write(msg: StreamingTranslateRequest): Promise<boolean> {
    if (this.gotStatus || this.call.writableEnded || this.call.destroyed) return Promise.resolve(false);
    const written = new Promise<boolean>((resolve) => {
      try {
        this.call.write(msg, () => resolve(true));
      } catch {
        resolve(false);
      }
    });
    return Promise.race([written, this.status.then(() => false)]);
  }

  end(): void {
    if (!this.call.writableEnded && !this.call.destroyed) this.call.end();
  }
}

/**
 * The events a pump read ahead of its caller (a stream's, a listen's): at most `capacity`, then
 * `put` waits until the caller takes one (or `stopped()`). `changed` resolves when an event is
 * queued or `wake()` says the pump or the caller changed state.
 */
export class EventQueue<T> {
  private readonly items: T[] = [];
  private wakeP!: Promise<void>;
  private wakeResolve!: () => void;
  private roomP!: Promise<void>;
  private roomResolve!: () => void;

  constructor(private readonly capacity: number) {
    this.wake();
    this.room();
  }

  get length(): number {
    return this.items.length;
  }

  /** Resolves at the next `wake()` (an event queued included). */
  get changed(): Promise<void> {
    return this.wakeP;
  }

  /** Queue `ev`, waiting while `capacity` events wait for the caller, unless `stopped()`. */
  async put(ev: T, stopped: () => boolean): Promise<void> {
    while (this.items.length >= this.capacity && !stopped()) await this.roomP;
    this.items.push(ev);
    this.wake();
  }

  /** The oldest event (its place freed for the pump), or undefined when none waits. */
  shift(): T | undefined {
    const ev = this.items.shift();
    if (ev !== undefined) this.room();
    return ev;
  }

  /** Wake whoever waits: the caller for an event, and the pump for room. */
  wake(): void {
    this.wakeResolve?.();
    this.wakeP = new Promise((r) => (this.wakeResolve = r));
    this.room();
  }

  private room(): void {
    this.roomResolve?.();
    this.roomP = new Promise((r) => (this.roomResolve = r));
  }
}
