/** One StreamingTranslate call as the stream uses it: its messages in order, its status, and
 * writes that report whether the call was still there. Plus the timers the stream waits with. */
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
