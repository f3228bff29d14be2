/**
 * `TranslateStream`: one live stream, continued across servers; the caller's face (send, flush,
 * update, close, async iteration) over the calls that carry it. The same machinery as the Python
 * SDK's translate_svc/client/aio/_calls.py and _stream.py (docs/client.md, "Streams that resume"):
 *
 * - every chunk sent is kept in a `ReplayBuffer` until a final result covers it. When a call ends
 *   with `ended{DRAINING}` (its server shut down), with ENGINE_FAILED, or is lost (UNAVAILABLE,
 *   CANCELLED, ABORTED, or no `ended`), the stream opens a new call on the next address with
 *   `StreamingConfig.resume` = (the resume token, the next segment id, the resume offset), sends the
 *   kept audio again from that offset (as timestamped AudioPackets), and goes on; the
 *   `StreamTracker` drops whatever the new call repeats. `send` waits meanwhile;
 * - on any other `ended` the client stops writing, half-closes, and reads the call's status: the
 *   `ended` event carries reason, code, details and request id; only HALF_CLOSE with OK is clean:
 *   after any other end the iteration yields `ended` and then throws `StreamEndedError`, and
 *   `send`/`flush`/`update` throw it.
 *
 * One Node event loop: no locks, but sends are queued in order (`serial`).
 */
import { randomUUID } from "node:crypto";
import { Metadata, type StatusObject, status as GrpcStatus } from "@grpc/grpc-js";
import { CallReader, EventQueue, sleep, within } from "./call";
import { StreamClosedError, StreamEndedError, StreamResumeError, TranslateError } from "./errors";
import {
  type Conversation,
  StreamControl,
  StreamEnd_Reason,
  type StreamEnd as StreamEndMsg,
  type StreamingConfig,
  type StreamingTranslateRequest,
  streamEnd_ReasonToJSON,
  type TranslatorClient,
} from "./gen/translate_svc/api/v1/translate";
import type { Chunk, ReplayBuffer } from "./replay";
import { bytesOf, conversationPb } from "./requests";
import { isRetryable, type RetryPolicy, retryDelayFromMetadata, retryDelayMs } from "./retry";
import { StreamTracker } from "./tracker";
import type { RequestOptions, StreamEnd, StreamEvent, StreamInfo } from "./types";

/** The client a stream belongs to, as far as its calls use it. */
export interface StreamOwner {
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  readonly maxResumes: number;
  nextAddress(avoid?: string): string;
  stub(address: string): TranslatorClient;
  metadataFor(requestId: string): Metadata;
  log(message: string): void;
}

/** a resumed call that stayed up this long counts as progress (maxResumes counts resumes in a row) */
const HEALTHY_CALL_MS = 30_000;
/** statuses after which a stream is continued elsewhere (besides ended{DRAINING}) */
const RESUMABLE = new Set<number>([GrpcStatus.UNAVAILABLE, GrpcStatus.CANCELLED, GrpcStatus.ABORTED]);

type Outcome =
  | { kind: "end"; end: StreamEnd; error?: StreamEndedError }
  | { kind: "drained" }
  | { kind: "lost"; error: TranslateError };

export class TranslateStream implements AsyncIterable<StreamEvent> {
  /** this stream's `x-request-id`, sent with each of its calls (resumes included) */
  readonly requestId = randomUUID().replace(/-/g, "");
  /** what the server said when the current call started */
  info: StreamInfo | undefined;
  /** how many times the stream moved to another call */
  resumes = 0;
  /** results a resumed call repeated and the client dropped */
  repeatsDropped = 0;

  private readonly tracker = new StreamTracker();
  private readonly deadline: number | undefined;
  private readonly events: EventQueue<StreamEvent>;
  private reader: CallReader | undefined; // the current call
  private writable: CallReader | null = null; // the current call once it may take new chunks
  private coveredSeq = -1; // chunks up to this seq were sent again by the last replay
  private timestamped = false; // after a resume every chunk goes as an AudioPacket
  private halfClosed = false;
  private failure: Error | undefined;
  private endValue: StreamEnd | undefined;
  private over = false;
  private cancelled = false;
  private pump: Promise<void> | undefined;
  private pumpDone = false;
  private iterDone = false;
  private token = "";
  private callStarted = 0;
  private unanswered: StreamingTranslateRequest[] = [];
  private serial: Promise<unknown> = Promise.resolve();
  private changedP!: Promise<void>;
  private changedResolve!: () => void;

  constructor(
    private readonly client: StreamOwner,
    private readonly config: StreamingConfig,
    private readonly buffer: ReplayBuffer,
    maxBufferedEvents: number,
    timeoutMs: number | undefined,
  ) {
    this.deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    this.events = new EventQueue(maxBufferedEvents);
    this.notify();
  }

  // -- lifetime ----------------------------------------------------------------------------

  /** Open the stream (the first call), retrying RESOURCE_EXHAUSTED / UNAVAILABLE elsewhere. */
  async start(): Promise<void> {
    if (this.pump !== undefined) return;
    const { reader, info } = await this.open(undefined, undefined);
    this.token = info.resumeToken;
    this.install(reader, info, undefined);
    this.pump = this.run().finally(() => {
      this.pumpDone = true;
      this.events.wake();
    });
  }

  /** Stop now: cancel the call (results not yet delivered are dropped). */
  cancel(): void {
    this.cancelled = true;
    this.over = true;
    this.writable = null;
    this.reader?.call.cancel();
    this.notify();
    this.events.wake();
  }

  /** How the stream ended, once the client read its end (the iteration yields the same). */
  get ended(): StreamEnd | undefined {
    return this.endValue;
  }

  /** Where the stream would resume now (the end of the last final result, or a drain's offset). */
  get resumeOffsetMs(): number {
    return this.tracker.resumeOffsetMs;
  }

  // -- the caller's side -------------------------------------------------------------------

  /**
   * Send audio: bytes or a typed array in the stream's encoding (any whole number of frames), or
   * one Opus packet. `timestamp`: where its first sample lies, in samples at the stream's rate
   * (Opus: 48 kHz) since the stream's first sample; gaps are filled with silence by the server.
   * Resolves once the message is handed to the transport: it waits under flow control and while
   * the stream moves to another server.
   */
  send(chunk: Uint8Array | Int16Array | Float32Array, timestamp?: number): Promise<void> {
    const data = bytesOf(chunk);
    return this.serialized(async () => {
      this.checkOpen();
      await this.deliver(this.buffer.append(data, timestamp));
    });
  }

  /** End the current segment now, as if the speaker paused. */
  flush(): Promise<void> {
    return this.serialized(async () => {
      this.checkOpen();
      await this.deliver(this.buffer.appendFlush());
    });
  }

  /**
   * Change the stream's targets (the whole new list), voice or speaking rate (`speed`, 0.5..2.0),
   * or its conversation (the whole list of languages; with `stated`, or without to clear it)
   * while it runs: segments that close from now on use them. The server answers with an `updated` event (its `status` not OK when it
   * refused: the stream goes on unchanged). An update not answered when the stream moves to another
   * server is sent again there.
   */
  update(change: {
    targets?: readonly string[];
    speakerId?: number;
    speed?: number;
    conversation?: RequestOptions["conversation"];
  }): Promise<void> {
    if (
      change.targets === undefined &&
      change.speakerId === undefined &&
      change.speed === undefined &&
      change.conversation === undefined
    ) {
      return Promise.reject(new RangeError("update() changes nothing: pass targets, speakerId, speed or conversation"));
    }
    let conversation: Conversation | undefined;
    try {
      conversation = conversationPb(change.conversation);
    } catch (e) {
      return Promise.reject(e);
    }
    const request: StreamingTranslateRequest = {
      request: {
        $case: "update",
        update: {
          targets: change.targets === undefined ? undefined : { languages: [...change.targets] },
          speakerId: change.speakerId,
          speed: change.speed,
          conversation,
        },
      },
    };
    return this.serialized(async () => {
      this.checkOpen();
      this.unanswered.push(request);
      const w = this.writable;
      if (w !== null) await w.write(request); // a call lost meanwhile: its replacement gets it
    });
  }

  /** Half-close: no more audio. Iterate on to get the remaining results and the `ended` event. */
  close(): Promise<void> {
    return this.serialized(async () => {
      if (this.halfClosed || this.over) return;
      this.halfClosed = true;
      this.writable?.end(); // a call lost meanwhile is half-closed by its replacement's replay
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    return { next: () => this.next() };
  }

  private async next(): Promise<IteratorResult<StreamEvent>> {
    if (this.iterDone) return { done: true, value: undefined };
    if (this.pump === undefined) throw new Error("the stream is not started: use `await client.stream(...)`");
    while (this.events.length === 0 && !this.pumpDone && !this.cancelled) await this.events.changed;
    const ev = this.events.shift();
    if (ev !== undefined) return { done: false, value: ev };
    this.iterDone = true; // the pump is over and everything it read was delivered
    if (this.failure !== undefined && !this.cancelled) throw this.failure;
    return { done: true, value: undefined };
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn);
    this.serial = run.catch(() => undefined);
    return run;
  }

  private checkOpen(): void {
    if (this.failure instanceof StreamEndedError) throw this.failure;
    if (this.failure !== undefined) throw new StreamClosedError(`the stream failed: ${this.failure.message}`, { cause: this.failure });
    if (this.halfClosed) throw new StreamClosedError("the stream was half-closed (close()): no more audio can be sent");
    if (this.over) throw new StreamClosedError("the stream has ended");
    if (this.pump === undefined) throw new StreamClosedError("the stream is not started: use `await client.stream(...)`");
  }

  /** Write `c` on the current call; if that call breaks, the resume's replay carries it. */
  private async deliver(c: Chunk): Promise<void> {
    for (;;) {
      if (this.failure !== undefined || this.over) this.checkOpen();
      if (c.seq <= this.coveredSeq) return; // a resume's replay sent it
      const w = this.writable;
      const changed = this.changedP;
      if (w === null) {
        await changed;
        continue;
      }
      if (await w.write(this.request(c))) return;
      if (this.writable === w) this.writable = null; // the call is over: the pump resumes (or fails)
      await changed;
    }
  }

  private request(c: Chunk): StreamingTranslateRequest {
    if (c.data === null) return { request: { $case: "control", control: StreamControl.FLUSH } };
    if (this.timestamped || c.timestamped) {
      return { request: { $case: "packet", packet: { data: c.data, timestamp: c.start } } };
    }
    return { request: { $case: "audio", audio: c.data } };
  }

  private notify(): void {
    this.changedResolve?.();
    this.changedP = new Promise((r) => (this.changedResolve = r));
  }

  private put(ev: StreamEvent): Promise<void> {
    return this.events.put(ev, () => this.cancelled);
  }

  // -- calls -------------------------------------------------------------------------------

  private remainingMs(): number | undefined {
    if (this.deadline === undefined) return undefined;
    const left = this.deadline - Date.now();
    if (left <= 0) {
      throw new TranslateError(GrpcStatus.DEADLINE_EXCEEDED, "the stream's deadline (timeoutMs) passed", {
        requestId: this.requestId,
      });
    }
    return left;
  }

  /** A new call that a server accepted (`started` received), on the next address. */
  private async open(
    resume: { resumeToken: string; nextSegmentId: number; offsetMs: number; leadInMs: number } | undefined,
    avoid: string | undefined,
  ): Promise<{ reader: CallReader; info: StreamInfo }> {
    const client = this.client;
    const attempts = client.retry.maxAttempts;
    const config: StreamingConfig = { ...this.config, resume };
    for (let attempt = 1; ; attempt++) {
      const address = client.nextAddress(avoid);
      const left = this.remainingMs();
      const call = client
        .stub(address)
        .streamingTranslate(client.metadataFor(this.requestId), left === undefined ? {} : { deadline: Date.now() + left });
      const reader = new CallReader(call);
      let err: TranslateError;
      void reader.write({ request: { $case: "config", config } }); // a refusal shows on the read below
      const first = await within(reader.read(), client.timeoutMs);
      if (first === "timeout") {
        call.cancel();
        err = new TranslateError(GrpcStatus.UNAVAILABLE, `${address} did not accept the stream within ${client.timeoutMs} ms`, {
          address,
          requestId: this.requestId,
        });
      } else if (first === null) {
        const st = await reader.status;
        err = new TranslateError(st.code, st.details, {
          retryDelayMs: retryDelayFromMetadata(st.metadata),
          address,
          requestId: this.requestId,
        });
      } else if (first.response?.$case !== "started") {
        call.cancel();
        err = new TranslateError(GrpcStatus.INTERNAL, `${address} did not start the stream with \`started\``, {
          address,
          requestId: this.requestId,
        });
      } else {
        const s = first.response.started;
        const info: StreamInfo = {
          sessionId: s.sessionId,
          resumeToken: s.resumeToken || this.token,
          config: s.config,
          model: s.model,
          limits: s.limits,
          address,
        };
        return { reader, info };
      }
      if (!isRetryable(err.code) || attempt >= attempts) {
        err.attempts = attempt;
        throw err;
      }
      const delay = retryDelayMs(client.retry, attempt, err.retryDelayMs);
      client.log(`opening the stream on ${address} failed with ${err.codeName} (${err.details}); trying again in ${Math.round(delay)} ms`);
      avoid = address;
      await sleep(delay);
    }
  }

  /** Make `reader`'s call current: read it now; let new chunks onto it once the kept audio from
   * `offsetMs` (a resume) is sent again. Synchronous: the replay is exactly the buffer now. */
  private install(reader: CallReader, info: StreamInfo, offsetMs: number | undefined): void {
    this.reader = reader;
    this.info = info;
    this.callStarted = Date.now();
    if (offsetMs === undefined) {
      this.writable = reader;
      this.notify();
      return;
    }
    const { chunks } = this.buffer.replayFrom(offsetMs);
    this.coveredSeq = this.buffer.lastSeq; // a send waiting with a chunk: the replay carries it
    void this.sendAgain(reader, chunks);
  }

  private async sendAgain(reader: CallReader, chunks: Chunk[]): Promise<void> {
    for (const u of [...this.unanswered]) if (!(await reader.write(u))) return;
    for (const c of chunks) if (!(await reader.write(this.request(c)))) return; // broke again: the pump resumes
    if (this.halfClosed) reader.end();
    if (this.reader === reader && !this.over) {
      this.writable = reader;
      this.notify();
    }
  }

  // -- the pump: reads every call, resumes lost ones --------------------------------------------

  private async run(): Promise<void> {
    try {
      let inARow = 0;
      let lastProgress = this.tracker.progress();
      for (;;) {
        const outcome = await this.readCall(this.reader!);
        if (this.cancelled) return;
        if (outcome.kind === "end") {
          this.endValue = outcome.end;
          await this.put({ type: "ended", end: outcome.end });
          if (outcome.error !== undefined) throw outcome.error; // after `ended`: the iteration yields it first
          return;
        }
        const failed = this.info?.address;
        const healthy = Date.now() - this.callStarted >= HEALTHY_CALL_MS;
        const progress = this.tracker.progress();
        inARow = progress !== lastProgress || healthy ? 1 : inARow + 1;
        lastProgress = progress;
        const error = outcome.kind === "lost" ? outcome.error : undefined;
        if (inARow > this.client.maxResumes) {
          throw new StreamResumeError(
            error?.code ?? GrpcStatus.UNAVAILABLE,
            `the stream was lost ${inARow} times in a row without progress (maxResumes=${this.client.maxResumes}); ` +
              `last: ${error?.message ?? "drained"}`,
            { resumeOffsetMs: this.tracker.resumeOffsetMs, attempts: inARow, requestId: this.requestId, cause: error },
          );
        }
        await this.resume(failed, outcome);
      }
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      if (!(e instanceof StreamEndedError)) this.client.log(`the stream failed: ${this.failure.message}`);
    } finally {
      this.over = true;
      this.writable = null;
      this.reader?.call.cancel();
      this.notify();
    }
  }

  private async readCall(reader: CallReader): Promise<Outcome> {
    const tracker = this.tracker;
    for (;;) {
      const msg = await reader.read();
      if (msg === null) {
        const st = await reader.status;
        const error = new TranslateError(
          st.code,
          st.code === GrpcStatus.OK ? "the call ended without `ended`" : st.details,
          { retryDelayMs: retryDelayFromMetadata(st.metadata), address: this.info?.address, requestId: this.requestId },
        );
        if (st.code === GrpcStatus.OK || RESUMABLE.has(st.code)) return { kind: "lost", error };
        throw error;
      }
      const r = msg.response;
      if (r === undefined) continue;
      switch (r.$case) {
        case "segment":
          if (tracker.segment(r.segment)) {
            this.buffer.trim(tracker.resumeOffsetMs);
            await this.put({ type: "segment", segment: r.segment });
          } else this.repeatsDropped += 1;
          break;
        case "commit": {
          const verdict = tracker.commit(r.commit);
          if (verdict !== null) await this.put({ type: "commit", commit: r.commit, restart: verdict.restart });
          else this.repeatsDropped += 1;
          break;
        }
        case "speechEvent":
          if (tracker.speech(r.speechEvent)) await this.put({ type: "speech", speech: r.speechEvent });
          else this.repeatsDropped += 1;
          break;
        case "interim":
          if (tracker.interim(r.interim)) await this.put({ type: "interim", interim: r.interim });
          else this.repeatsDropped += 1;
          break;
        case "updated": {
          const u = r.updated;
          this.unanswered.shift();
          if ((u.status?.code ?? 0) === GrpcStatus.OK && u.config !== undefined) {
            // from now on part of the stream: a resume opens with it
            this.config.targetLanguages = [...u.config.targetLanguages];
            if (u.config.output?.speakerId !== undefined || this.config.output !== undefined) {
              this.config.output = { ...(this.config.output ?? {}), speakerId: u.config.output?.speakerId } as StreamingConfig["output"];
            }
            const speed = u.config.output?.speed;
            if (speed !== undefined && (speed !== 1 || this.config.output !== undefined)) {
              this.config.output = { ...(this.config.output ?? {}), speed } as StreamingConfig["output"];
            }
          }
          await this.put({ type: "updated", updated: u });
          break;
        }
        case "eagerEndOfTurn":
          await this.put({ type: "eagerEndOfTurn", eager: r.eagerEndOfTurn });
          break;
        case "turnResumed":
          await this.put({ type: "turnResumed", resumed: r.turnResumed });
          break;
        case "draining":
          this.client.log(`${this.info?.address} is shutting down: the stream moves in ${r.draining.remainingMs} ms`);
          await this.put({ type: "draining", draining: r.draining });
          break;
        case "ended": {
          const e = r.ended;
          if (e.reason === StreamEnd_Reason.DRAINING) {
            tracker.drained(e.resumeOffsetMs);
            this.buffer.trim(tracker.resumeOffsetMs);
            return { kind: "drained" };
          }
          if (e.reason === StreamEnd_Reason.ENGINE_FAILED) {
            // its status (UNAVAILABLE) follows: resume
            const st = await this.finish(reader);
            const error = new TranslateError(st.code, st.details, { address: this.info?.address, requestId: this.requestId });
            return { kind: "lost", error };
          }
          return this.ending(reader, e);
        }
        case "started":
          break; // only a call's first message
      }
    }
  }

  /** Stop writing, half-close, read to the end and return the call's status (a timeout: UNKNOWN).
   * The server holds a failed call open until its client stops sending (so that a client
   * mid-write gets the status, not its own write failure). */
  private async finish(reader: CallReader): Promise<StatusObject> {
    this.writable = null; // a send from now on waits for the pump's end, then throws
    this.notify();
    reader.end();
    const drained = (async () => {
      while ((await reader.read()) !== null);
      return reader.status;
    })();
    const timeout = this.client.timeoutMs;
    const st = await within(drained, timeout);
    if (st !== "timeout") return st;
    reader.call.cancel();
    return {
      code: GrpcStatus.UNKNOWN,
      details: `the server sent \`ended\` but no status within ${timeout} ms`,
      metadata: new Metadata(),
    };
  }

  private async ending(reader: CallReader, e: StreamEndMsg): Promise<Outcome> {
    const st = await this.finish(reader);
    const reason = streamEnd_ReasonToJSON(e.reason);
    const end: StreamEnd = {
      reason,
      code: st.code,
      details: st.details ?? "",
      requestId: this.requestId,
      clean: e.reason === StreamEnd_Reason.HALF_CLOSE && st.code === GrpcStatus.OK,
      segmentsTotal: e.segmentsTotal,
      audioReceivedMs: e.audioReceivedMs,
      resumeOffsetMs: e.resumeOffsetMs,
      audioFilledMs: e.audioFilledMs,
      packetsReordered: e.packetsReordered,
      packetsDuplicate: e.packetsDuplicate,
      packetsLate: e.packetsLate,
      audioConcealedMs: e.audioConcealedMs,
    };
    if (end.clean) return { kind: "end", end };
    const error = new StreamEndedError(end, { retryDelayMs: retryDelayFromMetadata(st.metadata), address: this.info?.address });
    return { kind: "end", end, error };
  }

  /** Continue the stream on a new call: resume token, next id, offset; then send the kept audio again. */
  private async resume(failed: string | undefined, outcome: Outcome): Promise<void> {
    const old = this.reader!;
    this.writable = null;
    this.notify();
    old.call.cancel();
    const offsetMs = this.tracker.resumeOffsetMs;
    if (this.buffer.droppedTo > this.buffer.frameAt(offsetMs)) {
      this.client.log(
        `resuming at ${offsetMs} ms, but audio up to ${Math.round((this.buffer.droppedTo * 1000) / this.buffer.rate)} ms ` +
          "was dropped from the replay buffer (maxReplaySeconds): that audio is not translated",
      );
    }
    const { resumeMs, leadInMs, chunks } = this.buffer.replayFrom(offsetMs); // chunks: logged; sent as of install
    const resume = { resumeToken: this.token, nextSegmentId: this.tracker.nextSegmentId, offsetMs: resumeMs, leadInMs };
    const why = outcome.kind === "drained" ? "it drained" : `the call was lost (${outcome.kind === "lost" ? outcome.error.message : ""})`;
    this.client.log(
      `resuming the stream after ${why}: from ${offsetMs} ms (audio from ${resumeMs} ms: a lead-in of ${leadInMs} ms), segment ${resume.nextSegmentId}, ${chunks.length} chunk(s) to send again`,
    );
    let opened: { reader: CallReader; info: StreamInfo };
    try {
      opened = await this.open(resume, failed);
    } catch (e) {
      if (!(e instanceof TranslateError)) throw e;
      throw new StreamResumeError(e.code, `the stream could not be resumed on any server: ${e.details}`, {
        resumeOffsetMs: offsetMs,
        attempts: e.attempts,
        requestId: this.requestId,
        cause: e,
      });
    }
    if (this.cancelled) {
      opened.reader.call.cancel();
      return;
    }
    this.resumes += 1;
    this.tracker.newCall();
    this.timestamped = true;
    this.install(opened.reader, opened.info, offsetMs);
  }
}
