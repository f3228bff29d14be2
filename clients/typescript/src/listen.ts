/**
 * `RoomListener`: one listen to a room (`Listen`, docs/rooms.md) in one language, continued across
 * servers; an async iterable of `ListenEvent`s. The TypeScript twin of the Python SDK's
 * translate_svc/client/aio/_listen.py (docs/client.md, "Rooms"):
 *
 * - when its call ends after a `draining` notice (the server shut down: UNAVAILABLE), is lost
 *   (UNAVAILABLE, CANCELLED, ABORTED) or reaches the server's longest listen (OUT_OF_RANGE), the
 *   listener listens again on the next address (unless `resume: false`): a new `started` event
 *   (`resumes` counts them), the backlog segments already delivered dropped (`repeatsDropped`),
 *   those missed while it moved delivered marked `backlog`;
 * - any other end (a revoked token: UNAUTHENTICATED; with `resume: false` also a drain, a lost
 *   connection, the longest listen) is told: the iteration yields `ended` and then throws
 *   `ListenEndedError`. `cancel()` stops it quietly.
 *
 * One Node event loop; events are read ahead of the caller up to `maxBufferedEvents`, then the
 * reading pauses (the server then drops this listener's oldest and says so in `dropped`). Leaving
 * a `for await` loop (`break`) leaves the listen open, as a stream's: `cancel()` stops it.
 */
import { randomUUID } from "node:crypto";
import { type ClientReadableStream, type StatusObject, status as GrpcStatus } from "@grpc/grpc-js";
import { EventQueue, sleep, within } from "./call";
import { ListenEndedError, TranslateError } from "./errors";
import type { ListenEvent as ListenEventMsg, ListenRequest } from "./gen/translate_svc/api/v1/translate";
import { isRetryable, retryDelayFromMetadata, retryDelayMs } from "./retry";
import type { StreamOwner } from "./stream";
import type { ListenEnd, ListenEndReason, ListenEvent, ListenStartedEvent } from "./types";

/** a call that stayed up this long counts as progress (maxResumes counts moves in a row without) */
const HEALTHY_CALL_MS = 30_000;
/** statuses after which a listen is continued elsewhere: a drain's end, a lost connection */
const LOST = new Set<number>([GrpcStatus.UNAVAILABLE, GrpcStatus.CANCELLED, GrpcStatus.ABORTED]);
/** segments remembered to drop a resumed call's backlog repeats of (a room's backlog keeps 256) */
const REMEMBERED = 4096;

type Call = ClientReadableStream<ListenEventMsg>;

/** One call: its messages in order (null at their end), and its status. */
class ListenCall {
  readonly status: Promise<StatusObject>;
  private readonly it: AsyncIterator<ListenEventMsg>;

  constructor(readonly call: Call) {
    call.on("error", () => undefined); // the status says it
    this.status = new Promise((resolve) => call.on("status", resolve));
    this.it = call[Symbol.asyncIterator]() as AsyncIterator<ListenEventMsg>;
  }

  async read(): Promise<ListenEventMsg | null> {
    try {
      const r = await this.it.next();
      return r.done ? null : r.value;
    } catch {
      return null; // a failed call: its status follows
    }
  }
}

export class RoomListener implements AsyncIterable<ListenEvent> {
  /** this listen's `x-request-id`, sent with each of its calls */
  readonly requestId = randomUUID().replace(/-/g, "");
  /** the `started` event of the current call */
  info: ListenStartedEvent | undefined;
  /** how many times the listen moved to another call */
  resumes = 0;
  /** backlog segments a resumed call repeated and the listener dropped */
  repeatsDropped = 0;

  private readonly events: EventQueue<ListenEvent>;
  private readonly delivered = new Set<string>();
  private readonly deliveredOrder: string[] = [];
  private current: ListenCall | undefined;
  private callStarted = 0;
  private callEvents = 0;
  private drained = false;
  private failure: Error | undefined;
  private endValue: ListenEnd | undefined;
  private cancelled = false;
  private pump: Promise<void> | undefined;
  private pumpDone = false;
  private iterDone = false;

  constructor(
    private readonly client: StreamOwner,
    private readonly request: ListenRequest,
    private readonly resume: boolean,
    maxBufferedEvents: number,
  ) {
    this.events = new EventQueue(maxBufferedEvents);
  }

  /** Open the listen (its first call, until `started`), retrying RESOURCE_EXHAUSTED / UNAVAILABLE
   * elsewhere; a refusal (PERMISSION_DENIED, INVALID_ARGUMENT...) throws `TranslateError`. */
  async start(): Promise<void> {
    if (this.pump !== undefined) return;
    const { call, started } = await this.open(undefined, 0);
    this.install(call, started);
    await this.put(started); // the queue is empty: at once
    this.pump = this.run().finally(() => {
      this.pumpDone = true;
      this.events.wake();
    });
  }

  /** Stop listening now (events not yet taken are dropped); the iteration then ends quietly. */
  cancel(): void {
    this.cancelled = true;
    this.current?.call.cancel();
    this.events.wake();
  }

  /** How the server ended the listen (undefined while it lives, and after `cancel()`). */
  get ended(): ListenEnd | undefined {
    return this.endValue;
  }

  [Symbol.asyncIterator](): AsyncIterator<ListenEvent> {
    return { next: () => this.next() };
  }

  private async next(): Promise<IteratorResult<ListenEvent>> {
    if (this.iterDone || this.cancelled) return { done: true, value: undefined };
    if (this.pump === undefined) throw new Error("the listen is not started: use `await client.listen(...)`");
    while (this.events.length === 0 && !this.pumpDone && !this.cancelled) await this.events.changed;
    if (this.cancelled) return { done: true, value: undefined };
    const ev = this.events.shift();
    if (ev !== undefined) return { done: false, value: ev };
    this.iterDone = true;
    if (this.failure !== undefined) throw this.failure;
    return { done: true, value: undefined };
  }

  private put(ev: ListenEvent): Promise<void> {
    return this.events.put(ev, () => this.cancelled);
  }

  // -- calls -------------------------------------------------------------------------------

  private async open(avoid: string | undefined, resumes: number): Promise<{ call: ListenCall; started: ListenStartedEvent }> {
    const client = this.client;
    for (let attempt = 1; ; attempt++) {
      const address = client.nextAddress(avoid);
      const call = new ListenCall(client.stub(address).listen(this.request, client.metadataFor(this.requestId)));
      let err: TranslateError;
      const first = await within(call.read(), client.timeoutMs);
      if (first === "timeout") {
        call.call.cancel();
        err = new TranslateError(GrpcStatus.UNAVAILABLE, `${address} did not start the listen within ${client.timeoutMs} ms`, {
          address,
          requestId: this.requestId,
        });
      } else if (first === null) {
        const st = await call.status;
        err = new TranslateError(st.code, st.details, {
          retryDelayMs: retryDelayFromMetadata(st.metadata),
          address,
          requestId: this.requestId,
        });
      } else if (first.event?.$case !== "started") {
        call.call.cancel();
        err = new TranslateError(GrpcStatus.INTERNAL, `${address} did not start the listen with \`started\``, {
          address,
          requestId: this.requestId,
        });
      } else {
        return { call, started: { type: "started", started: first.event.started, address, resumes } };
      }
      if (!isRetryable(err.code) || attempt >= client.retry.maxAttempts) {
        err.attempts = attempt;
        throw err;
      }
      const delay = retryDelayMs(client.retry, attempt, err.retryDelayMs);
      client.log(`listening to room ${this.request.room} on ${address} failed with ${err.codeName} (${err.details}); trying again in ${Math.round(delay)} ms`);
      avoid = address;
      await sleep(delay);
    }
  }

  private install(call: ListenCall, started: ListenStartedEvent): void {
    this.current = call;
    this.info = started;
    this.callStarted = Date.now();
    this.callEvents = 0;
    this.drained = false;
  }

  private async run(): Promise<void> {
    try {
      let inARow = 0;
      for (;;) {
        const st = await this.readCall(this.current!);
        if (this.cancelled) return;
        const address = this.info?.address;
        const longest = st.code === GrpcStatus.OUT_OF_RANGE;
        if (!this.resume || !(LOST.has(st.code) || longest)) {
          const end: ListenEnd = { reason: reasonOf(st.code, this.drained), code: st.code, details: st.details, requestId: this.requestId, address };
          this.endValue = end;
          await this.put({ type: "ended", end });
          throw new ListenEndedError(end, { retryDelayMs: retryDelayFromMetadata(st.metadata) });
        }
        const healthy = Date.now() - this.callStarted >= HEALTHY_CALL_MS;
        inARow = this.callEvents > 0 || healthy || longest ? 1 : inARow + 1;
        if (inARow > this.client.maxResumes) {
          throw new TranslateError(
            st.code,
            `the listen was lost ${inARow} times in a row without an event (maxResumes=${this.client.maxResumes}); last: ${st.details}`,
            { address, attempts: inARow, requestId: this.requestId },
          );
        }
        const why = this.drained ? "its server drained" : longest ? "it reached its longest" : "it was lost";
        this.client.log(`listening to room ${this.request.room} again after ${why} (${st.details})`);
        this.current?.call.cancel();
        let opened: { call: ListenCall; started: ListenStartedEvent };
        try {
          opened = await this.open(longest ? undefined : address, this.resumes + 1);
        } catch (e) {
          if (!(e instanceof TranslateError)) throw e;
          throw new TranslateError(e.code, `the listen could not be resumed on any server: ${e.details}`, {
            retryDelayMs: e.retryDelayMs,
            address: e.address,
            attempts: e.attempts,
            requestId: this.requestId,
          });
        }
        if (this.cancelled) {
          opened.call.call.cancel();
          return;
        }
        this.resumes += 1;
        this.install(opened.call, opened.started);
        await this.put(opened.started);
      }
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      if (!(e instanceof ListenEndedError)) this.client.log(`the listen failed: ${this.failure.message}`);
    } finally {
      this.current?.call.cancel();
    }
  }

  /** Deliver one call's events until it ends; its status (a server never ends a listen OK: such
   * an end counts as lost). */
  private async readCall(call: ListenCall): Promise<StatusObject> {
    for (;;) {
      const msg = await call.read();
      if (msg === null) {
        const st = await call.status;
        if (st.code === GrpcStatus.OK) return { ...st, code: GrpcStatus.UNAVAILABLE, details: "the listen ended without a status" };
        return st;
      }
      const ev = msg.event;
      if (ev === undefined) continue;
      switch (ev.$case) {
        case "segment": {
          const s = ev.segment;
          const key = `${msg.speaker}\u0000${s.segmentId}\u0000${s.startMs}\u0000${s.endMs}`;
          if (msg.backlog && this.resumes > 0 && this.delivered.has(key)) {
            this.repeatsDropped += 1;
            continue;
          }
          this.remember(key);
          this.callEvents += 1;
          await this.put({ type: "segment", speaker: msg.speaker, segment: s, backlog: msg.backlog });
          break;
        }
        case "interim":
          this.callEvents += 1;
          await this.put({ type: "caption", speaker: msg.speaker, interim: ev.interim });
          break;
        case "dropped":
          this.callEvents += 1;
          await this.put({ type: "dropped", dropped: ev.dropped });
          break;
        case "draining":
          this.drained = true;
          this.callEvents += 1;
          this.client.log(`${this.info?.address} is shutting down: the listen moves in ${ev.draining.remainingMs} ms`);
          await this.put({ type: "draining", draining: ev.draining });
          break;
        case "started":
          break; // only a call's first message
      }
    }
  }

  private remember(key: string): void {
    if (this.delivered.has(key)) return;
    this.delivered.add(key);
    this.deliveredOrder.push(key);
    if (this.deliveredOrder.length > REMEMBERED) this.delivered.delete(this.deliveredOrder.shift()!);
  }
}

function reasonOf(code: number, drained: boolean): ListenEndReason {
  if (code === GrpcStatus.UNAUTHENTICATED) return "REVOKED";
  if (code === GrpcStatus.OUT_OF_RANGE) return "MAX_LISTEN_DURATION";
  if (LOST.has(code)) return drained ? "DRAINING" : "LOST";
  return "ERROR";
}
