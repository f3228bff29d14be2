/**
 * `TranslateClient`: connections to one or more translate_svc servers, the unary calls (with
 * retries that honour the server's RetryInfo) and where live streams are made. The TypeScript twin
 * of the Python SDK's AsyncTranslateClient (docs/client.md, "TypeScript client").
 */
import { randomUUID } from "node:crypto";
import {
  type ChannelCredentials,
  type ClientWritableStream,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
  status as GrpcStatus,
} from "@grpc/grpc-js";
import { TranslateError } from "./errors";
import {
  AudioEncoding,
  ChannelMode,
  type AudioFormat,
  type DetectSyntheticRequest,
  type DetectSyntheticResponse,
  NoiseSuppression,
  type ListLanguagesResponse,
  type TranslateRequest,
  type TranslateResponse,
  type TranslateTextResponse,
  TranslatorClient,
} from "./gen/translate_svc/api/v1/translate";
import { AddressRotation, isLocal, parseTargets } from "./addresses";
import { ReplayBuffer } from "./replay";
import {
  ENCODINGS,
  SAMPLE_BYTES,
  bytesOf,
  detectionPb,
  outputPb,
  simultaneousPb,
  streamFormat,
  conversationPb,
  targetsList,
  termsPb,
  vadPb,
} from "./requests";
import { isRetryable, type RetryPolicy, retryDelayFromMetadata, retryDelayMs, retryPolicy } from "./retry";
import { RoomListener } from "./listen";
import { TranslateStream } from "./stream";
import type { ClientOptions, ListenOptions, RawAudio, StreamOptions, TranslateOptions, TranslateTextOptions } from "./types";

/** the metadata key of a call's request id (the server returns it and logs it) */
export const REQUEST_ID = "x-request-id";
/** a clip travels over TranslateChunked in messages of this much audio (within every server's
 * per-message limit, ServerLimits.max_stream_message_bytes) */
export const CLIP_CHUNK_BYTES = 256 * 1024;
const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/**
 * A client for one or more translate_svc servers. `targets`: several "host:port" addresses (an
 * array or a comma-separated string: the client picks the next one per call, and the next again on
 * a retry or a stream's move), or one gRPC target such as "dns:///svc.ns:50051". One connection per
 * address; `close()` releases them.
 */
export class TranslateClient {
  readonly addresses: readonly string[];
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  readonly maxResumes: number;
  /** where the client's notices go (a stream moving, a retry); default: nowhere */
  logger: (message: string) => void = () => undefined;

  private readonly rotation: AddressRotation;
  private readonly creds: ChannelCredentials;
  private readonly plaintextToken: string | undefined;
  private readonly channelOptions: Record<string, string | number>;
  private readonly stubs = new Map<string, TranslatorClient>();
  private closed = false;

  constructor(targets: string | readonly string[], options: ClientOptions = {}) {
    this.addresses = parseTargets(targets);
    const { tls, token } = options;
    if (token !== undefined && tls === undefined && !options.allowPlaintextToken) {
      const remote = this.addresses.find((a) => !isLocal(a));
      if (remote !== undefined) {
        throw new RangeError(
          `the token would travel in the clear to ${remote} (no TLS): connect with tls: {...}, or pass ` +
            "allowPlaintextToken: true if the network between you is trusted (loopback and Unix sockets need neither)",
        );
      }
    }
    this.rotation = new AddressRotation(this.addresses);
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.retry = retryPolicy(options.retry);
    this.maxResumes = options.maxResumes ?? 5;
    if (this.maxResumes < 0) throw new RangeError("maxResumes must not be negative");
    const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const keepalive = options.keepaliveMs === undefined ? 20_000 : options.keepaliveMs;
    this.channelOptions = {
      "grpc.max_receive_message_length": maxBytes,
      "grpc.max_send_message_length": maxBytes,
      "grpc.service_config": ROUND_ROBIN,
      ...(keepalive === null
        ? {}
        : {
            "grpc.keepalive_time_ms": keepalive,
            "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs ?? 10_000,
            // no pings without a call: gRPC's default server policy counts those as strikes
            "grpc.keepalive_permit_without_calls": 0,
          }),
      ...(tls?.serverName === undefined
        ? {}
        : { "grpc.ssl_target_name_override": tls.serverName, "grpc.default_authority": tls.serverName }),
      ...options.channelOptions,
    };
    if (tls !== undefined) {
      const ssl = grpcCredentials.createSsl(
        tls.ca === undefined ? null : Buffer.from(tls.ca),
        tls.key === undefined ? null : Buffer.from(tls.key),
        tls.cert === undefined ? null : Buffer.from(tls.cert),
      );
      this.creds =
        token === undefined
          ? ssl
          : grpcCredentials.combineChannelCredentials(
              ssl,
              grpcCredentials.createFromMetadataGenerator((_params, callback) => {
                const md = new Metadata();
                md.set("authorization", `Bearer ${token}`);
                callback(null, md);
              }),
            );
      this.plaintextToken = undefined;
    } else {
      // plaintext: gRPC refuses call credentials there, so the token travels as call metadata
      this.creds = grpcCredentials.createInsecure();
      this.plaintextToken = token;
    }
  }

  /** Close every connection (calls in flight fail with CANCELLED or UNAVAILABLE). */
  close(): void {
    this.closed = true;
    for (const stub of this.stubs.values()) stub.close();
    this.stubs.clear();
  }

  // -- plumbing (used by TranslateStream) ---------------------------------------------------

  nextAddress(avoid?: string): string {
    return this.rotation.next(avoid);
  }

  stub(address: string): TranslatorClient {
    if (this.closed) throw new Error("the client is closed");
    let stub = this.stubs.get(address);
    if (stub === undefined) {
      // a connection of its own: grpc-js would otherwise share one among equal channels
      stub = new TranslatorClient(address, this.creds, { ...this.channelOptions, "grpc.use_local_subchannel_pool": 1 });
      this.stubs.set(address, stub);
    }
    return stub;
  }

  metadataFor(requestId: string): Metadata {
    const md = new Metadata();
    if (this.plaintextToken !== undefined) md.set("authorization", `Bearer ${this.plaintextToken}`);
    md.set(REQUEST_ID, requestId);
    return md;
  }

  log(message: string): void {
    this.logger(message);
  }

  private error(e: ServiceError, address: string, attempts: number, requestId: string): TranslateError {
    return new TranslateError(e.code ?? GrpcStatus.UNKNOWN, e.details ?? e.message, {
      retryDelayMs: retryDelayFromMetadata(e.metadata),
      address,
      attempts,
      requestId,
    });
  }

  /** One call (`invoke` makes it on a stub), retried on the next address after RESOURCE_EXHAUSTED
   * or UNAVAILABLE, waiting as the server's RetryInfo says. */
  private async unary<T>(
    method: string,
    timeoutMs: number | undefined,
    invoke: (stub: TranslatorClient, md: Metadata, deadline: Date, done: (e: ServiceError | null, r?: T) => void) => void,
  ): Promise<T> {
    const requestId = randomUUID().replace(/-/g, "");
    let avoid: string | undefined;
    for (let attempt = 1; ; attempt++) {
      const address = this.nextAddress(avoid);
      try {
        return await new Promise<T>((resolve, reject) => {
          invoke(this.stub(address), this.metadataFor(requestId), new Date(Date.now() + (timeoutMs ?? this.timeoutMs)), (e, r) =>
            e ? reject(e) : resolve(r as T),
          );
        });
      } catch (e) {
        if (!isServiceError(e)) throw e;
        const err = this.error(e, address, attempt, requestId);
        if (!isRetryable(err.code) || attempt >= this.retry.maxAttempts) throw err;
        const delay = retryDelayMs(this.retry, attempt, err.retryDelayMs);
        this.log(
          `${method} on ${address} failed with ${err.codeName} (${err.details}); retrying in ${Math.round(delay)} ms` +
            (err.retryDelayMs !== undefined ? " as the server asked" : ""),
        );
        avoid = address;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  // -- the API -----------------------------------------------------------------------------

  /** The loaded model's languages, model card and this server's limits. */
  listLanguages(opts: { timeoutMs?: number } = {}): Promise<ListLanguagesResponse> {
    return this.unary("ListLanguages", opts.timeoutMs, (stub, md, deadline, done) =>
      stub.listLanguages({}, md, { deadline }, done),
    );
  }

  /**
   * Translate a whole clip: file bytes (WAV, FLAC, MP3, OGG, WebM: the server reads the container)
   * or headerless audio (`RawAudio`). The clip travels over TranslateChunked in 256 KiB messages, so
   * any clip up to the server's `max_message_bytes` passes its per-message limit; a server without
   * TranslateChunked (UNIMPLEMENTED) gets it whole over Translate.
   */
  async translate(audio: Uint8Array | RawAudio, opts: TranslateOptions): Promise<TranslateResponse> {
    const { content, format } = clipOf(audio);
    const asr = opts.source !== undefined || (opts.detect !== undefined && opts.detect !== false);
    const conversation = conversationPb(opts.conversation);
    const request: TranslateRequest = {
      audio: { content: new Uint8Array(), format },
      sourceLanguage: opts.source ?? "",
      targetLanguages: targetsList(opts.targets, asr || conversation !== undefined),
      output: outputPb(opts.output),
      vad: vadPb(opts.vad),
      languageDetection: detectionPb(opts.detect),
      terms: termsPb(opts.terms),
      // the server's defaults (not yet options of this client): no noise suppression, no speaker
      // labels, no stored glossaries, speech not fitted to the source's clock
      noiseSuppression: NoiseSuppression.NOISE_SUPPRESSION_UNSPECIFIED,
      speakers: 0,
      glossaries: [],
      fit: undefined,
      conversation,
      channelMode: ChannelMode.CHANNEL_MODE_MIXED, // a stereo clip's channels mixed (SEPARATE: not an option here yet)
    };
    try {
      return await this.unary<TranslateResponse>("TranslateChunked", opts.timeoutMs, (stub, md, deadline, done) => {
        const call: ClientWritableStream<TranslateRequest> = stub.translateChunked(md, { deadline }, done);
        call.write({ ...request, audio: { format, content: content.subarray(0, CLIP_CHUNK_BYTES) } });
        for (let at = CLIP_CHUNK_BYTES; at < content.length; at += CLIP_CHUNK_BYTES) {
          call.write({ ...emptyRequest(), audio: { format: undefined, content: content.subarray(at, at + CLIP_CHUNK_BYTES) } });
        }
        call.end();
      });
    } catch (e) {
      if (!(e instanceof TranslateError) || e.code !== GrpcStatus.UNIMPLEMENTED) throw e;
    }
    this.log("the server has no TranslateChunked (an older server): sending the clip in one Translate message");
    const whole: TranslateRequest = { ...request, audio: { format, content } };
    return this.unary("Translate", opts.timeoutMs, (stub, md, deadline, done) => stub.translate(whole, md, { deadline }, done));
  }

  /**
   * Whether a clip carries the watermark this service puts on every speech it makes: file bytes
   * (any format the server reads) or headerless audio (`RawAudio`), at most the server's
   * `max_detect_seconds`. The answer: `probability`, `marked`, `conclusive` (2 s of speech and
   * more), the marked `spans`, the `watermarker`, and the file's `contentCredentials` (its C2PA
   * manifest, read and checked by the server) when it carries one.
   */
  detectSynthetic(audio: Uint8Array | RawAudio, opts: { timeoutMs?: number } = {}): Promise<DetectSyntheticResponse> {
    const request: DetectSyntheticRequest = { audio: clipOf(audio) };
    return this.unary("DetectSynthetic", opts.timeoutMs, (stub, md, deadline, done) =>
      stub.detectSynthetic(request, md, { deadline }, done),
    );
  }

  /** Translate texts (each on its own) from `source` into every target, with their speech unless
   * `output: { speech: false }`. Results: one per text, in order, one translation per target. */
  translateText(texts: string | readonly string[], opts: TranslateTextOptions): Promise<TranslateTextResponse> {
    const request = {
      texts: typeof texts === "string" ? [texts] : [...texts],
      sourceLanguage: opts.source,
      targetLanguages: targetsList(opts.targets, true), // none: the server says what to send
      output: outputPb(opts.output),
      terms: termsPb(opts.terms),
      glossaries: [],
    };
    return this.unary("TranslateText", opts.timeoutMs, (stub, md, deadline, done) =>
      stub.translateText(request, md, { deadline }, done),
    );
  }

  /**
   * A live stream, opened (the server accepted it) when the promise resolves. Send audio with
   * `send` while iterating its events (`for await (const ev of stream)`) in another async flow;
   * `close()` when done, `cancel()` to abandon it.
   */
  async stream(opts: StreamOptions): Promise<TranslateStream> {
    const maxBuffered = opts.maxBufferedEvents ?? 4;
    if (!(maxBuffered >= 1)) throw new RangeError("maxBufferedEvents must be at least 1");
    const fmt = streamFormat(opts);
    const asr = opts.source !== undefined || (opts.detect !== undefined && opts.detect !== false);
    const conversation = conversationPb(opts.conversation);
    const config = {
      format: { encoding: ENCODINGS[fmt.encoding], sampleRateHz: fmt.rate, channels: fmt.channels },
      sourceLanguage: opts.source ?? "",
      targetLanguages: targetsList(opts.targets, asr || conversation !== undefined),
      output: outputPb(opts.output),
      vad: vadPb(opts.vad),
      interimIntervalMs: opts.interimMs ?? 0,
      resume: undefined,
      languageDetection: detectionPb(opts.detect),
      terms: termsPb(opts.terms),
      simultaneous: simultaneousPb(opts.simultaneous),
      room: opts.room ? { name: opts.room.name, participant: opts.room.participant ?? "" } : undefined,
      noiseSuppression: NoiseSuppression.NOISE_SUPPRESSION_UNSPECIFIED,
      speakers: 0,
      glossaries: [],
      conversation,
      // stereo PCM whose channels are parties: each heard on its own, every event names its channel
      channelMode: opts.separateChannels ? ChannelMode.CHANNEL_MODE_SEPARATE : ChannelMode.CHANNEL_MODE_MIXED,
    };
    const frameBytes = fmt.encoding === "opus" ? null : SAMPLE_BYTES[fmt.encoding] * fmt.channels;
    const buffer = new ReplayBuffer(fmt.rate, frameBytes, { packetMs: opts.packetMs, maxSeconds: opts.maxReplaySeconds });
    const stream = new TranslateStream(this, config, buffer, maxBuffered, opts.timeoutMs);
    await stream.start();
    return stream;
  }

  /**
   * Listen to a room (docs/rooms.md) in one language (a model code with text output, e.g. "spa"),
   * opened (the server sent `started`) when the promise resolves; a refusal rejects with a
   * `TranslateError` (PERMISSION_DENIED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED after its retries...).
   * Iterate its events (`for await (const ev of listener)`): `started`, the backlog's `segment`s
   * (`backlog: true`, text only), then every speaker's live `segment`s and `caption`s; `cancel()`
   * stops it.
   */
  async listen(room: string, language: string, opts: ListenOptions = {}): Promise<RoomListener> {
    const maxBuffered = opts.maxBufferedEvents ?? 4;
    if (!(maxBuffered >= 1)) throw new RangeError("maxBufferedEvents must be at least 1");
    const request = {
      room,
      language,
      participant: opts.participant ?? "",
      speed: opts.speed,
      originalAudio: opts.original ?? false,
    };
    const listener = new RoomListener(this, request, opts.resume ?? true, maxBuffered);
    await listener.start();
    return listener;
  }
}

function emptyRequest(): TranslateRequest {
  return {
    audio: undefined,
    sourceLanguage: "",
    targetLanguages: [],
    output: undefined,
    vad: undefined,
    languageDetection: undefined,
    terms: [],
    noiseSuppression: NoiseSuppression.NOISE_SUPPRESSION_UNSPECIFIED,
    speakers: 0,
    glossaries: [],
    fit: undefined,
    conversation: undefined,
    channelMode: ChannelMode.CHANNEL_MODE_MIXED,
  };
}

function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === "number";
}

/** A clip as the server takes it: file bytes (the server reads the container) or raw samples in
 * their encoding, checked to be whole frames. */
function clipOf(audio: Uint8Array | RawAudio): { content: Uint8Array; format: AudioFormat } {
  if (audio instanceof Uint8Array) {
    return { content: audio, format: { encoding: AudioEncoding.CONTAINER, sampleRateHz: 0, channels: 0 } };
  }
  const enc =
    audio.encoding ?? (audio.data instanceof Int16Array ? "linear16" : audio.data instanceof Float32Array ? "float32" : undefined);
  if (enc === undefined) throw new RangeError("raw audio bytes need their encoding (linear16, float32, mulaw or alaw)");
  const channels = audio.channels ?? 1;
  const content = bytesOf(audio.data);
  if (content.length % (SAMPLE_BYTES[enc] * channels) !== 0) {
    throw new RangeError(`${content.length} bytes are not a whole number of ${enc} frames of ${channels} channel(s)`);
  }
  return { content, format: { encoding: ENCODINGS[enc], sampleRateHz: audio.sampleRate, channels } };
}
