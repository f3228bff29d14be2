/**
 * The client's options and the events a stream yields. Results are the generated messages
 * (src/gen, from protos/translate_svc/api/v1/translate.proto: camelCase fields, int64 as number);
 * a stream's events wrap them in a union on `type`.
 */
import type {
  Commit,
  Draining,
  EagerEndOfTurn,
  InterimResult,
  ListenDropped,
  ListenStarted,
  ModelInfo,
  OutputOptions,
  SegmentResult,
  ServerLimits,
  SpeechEvent,
  StreamingConfig,
  StreamUpdated,
  Term,
  TurnResumed,
  VadOptions,
} from "./gen/translate_svc/api/v1/translate";
import type { RetryPolicy } from "./retry";

/** PEM bytes (e.g. `fs.readFileSync("ca.pem")`). */
export interface TlsOptions {
  /** the CA that signed the server's certificate (absent: the system's roots) */
  ca?: Uint8Array;
  /** a client certificate chain and its key, for mTLS */
  cert?: Uint8Array;
  key?: Uint8Array;
  /** the name the server's certificate is checked against, when it is not the address's host */
  serverName?: string;
}

export interface ClientOptions {
  /** absent: plaintext */
  tls?: TlsOptions;
  /** sent as `authorization: Bearer <token>` on every call; without TLS only to a loopback address or
   * a Unix socket, unless `allowPlaintextToken` says the network is trusted */
  token?: string;
  allowPlaintextToken?: boolean;
  /** each unary call's deadline, and how long a stream waits for a server to accept it (120 s) */
  timeoutMs?: number;
  /** unary retries and stream opens on RESOURCE_EXHAUSTED / UNAVAILABLE, honouring RetryInfo */
  retry?: Partial<RetryPolicy>;
  /** stream moves in a row without progress before giving up (5) */
  maxResumes?: number;
  /** the largest message sent or received (64 MiB: the server's max_message_bytes) */
  maxMessageBytes?: number;
  /** keepalive ping interval (20 s; the server allows one every 10 s) and its timeout (10 s);
   * null: no pings */
  keepaliveMs?: number | null;
  keepaliveTimeoutMs?: number;
  /** more @grpc/grpc-js channel options (they win) */
  channelOptions?: Record<string, string | number>;
}

export type RawEncoding = "linear16" | "float32" | "mulaw" | "alaw";
export type StreamEncoding = RawEncoding | "opus";

/** Headerless audio: `Int16Array` is linear16, `Float32Array` float32 (interleaved channels);
 * bytes need their `encoding`. */
export interface RawAudio {
  data: Int16Array | Float32Array | Uint8Array;
  sampleRate: number;
  channels?: number;
  encoding?: RawEncoding;
}

/** A phrase to get right; a plain string is a boost (as in the Python SDK). */
export type TermInput = string | Partial<Term>;

/** A conversation (docs/api.md "Conversations"): its 2-4 languages ("eng,spa" or a list), the
 * language of the coming audio where the client states it (a push-to-talk button per party), and
 * per language the voice (a speaker id) and speaking rate of the speech made in it: the speech its
 * party hears (`voices: { spa: 2 }, speeds: { spa: 0.85 }`; a language not named takes the call's). */
export interface ConversationInput {
  languages: string | readonly string[];
  stated?: string;
  voices?: Readonly<Record<string, number>>;
  speeds?: Readonly<Record<string, number>>;
}

export interface RequestOptions {
  /** target languages ("spa", "spa,fra" or a list); none: ASR only (with `source` or `detect`),
   * or a conversation */
  targets: string | readonly string[];
  /** a conversation instead of targets (send `targets: []`): each segment's language is identified
   * among these and translated into the others; the languages, or with a stated language */
  conversation?: string | readonly string[] | ConversationInput;
  source?: string;
  /** identify each segment's language: true (any) or the candidates */
  detect?: boolean | readonly string[];
  terms?: readonly TermInput[];
  /** what each segment carries (absent text/speech/transcript: true) */
  output?: Partial<OutputOptions>;
  vad?: Partial<VadOptions>;
}

export interface TranslateOptions extends RequestOptions {
  timeoutMs?: number;
}

export interface TranslateTextOptions {
  source: string;
  targets: string | readonly string[];
  terms?: readonly TermInput[];
  output?: Partial<OutputOptions>;
  timeoutMs?: number;
}

export interface StreamOptions extends RequestOptions {
  /** what `send` takes: linear16 (default), float32, mulaw, alaw, or opus (one packet per send) */
  encoding?: StreamEncoding;
  /** 16000 by default; opus: 48000 */
  sampleRate?: number;
  channels?: number;
  /** live captions every this many ms of audio (0: off) */
  interimMs?: number;
  /** simultaneous interpretation: `commit` events while the speaker talks */
  simultaneous?: boolean | { stepMs?: number; agreement?: number };
  /** speak into a room (docs/rooms.md): its listeners hear this stream in their languages */
  room?: { name: string; participant?: string };
  /** stereo PCM (`channels: 2`) whose channels are parties, each heard on its own: every event
   * names its `channel` (1, 2; a segment's `speaker` too); such a stream is not resumed */
  separateChannels?: boolean;
  /** the duration assumed for an Opus packet whose TOC cannot be read (20) */
  packetMs?: number;
  /** the most audio kept for a resume while no final result arrives (300 s; null: no bound) */
  maxReplaySeconds?: number | null;
  /** a deadline for the whole stream (absent: none) */
  timeoutMs?: number;
  /** events read ahead of the caller before the client stops reading (4) */
  maxBufferedEvents?: number;
}

/** What the server said when the stream (or its latest resumed call) started. */
export interface StreamInfo {
  sessionId: string;
  resumeToken: string;
  /** the config in force: every default filled in */
  config: StreamingConfig | undefined;
  model: ModelInfo | undefined;
  limits: ServerLimits | undefined;
  /** the address the call went to */
  address: string;
}

/**
 * The last event of a stream: every result was delivered; how it ended. `reason` is StreamEnd's
 * reason name ("HALF_CLOSE", "QUOTA", ...); `code` and `details` the status the server ended the
 * call with (OK and "" for a clean end). `clean`: the caller closed and the server answered OK;
 * after any other end the iteration throws `StreamEndedError` on its next step.
 */
export interface StreamEnd {
  reason: string;
  code: number;
  details: string;
  requestId: string;
  clean: boolean;
  segmentsTotal: number;
  audioReceivedMs: number;
  resumeOffsetMs: number;
  audioFilledMs: number;
  packetsReordered: number;
  packetsDuplicate: number;
  packetsLate: number;
  audioConcealedMs: number;
}

/** What iterating a stream yields. */
export type StreamEvent =
  | { type: "segment"; segment: SegmentResult }
  | { type: "speech"; speech: SpeechEvent }
  | { type: "interim"; interim: InterimResult }
  /** `restart`: a resumed call started this segment's text for this target over (what the lost
   * call committed was already heard; the segment's final result holds the resumed call's text) */
  | { type: "commit"; commit: Commit; restart: boolean }
  | { type: "draining"; draining: Draining }
  | { type: "updated"; updated: StreamUpdated }
  /** `vad.eagerThreshold`: the segment may end here and is translated now (then its result, or `turnResumed`) */
  | { type: "eagerEndOfTurn"; eager: EagerEndOfTurn }
  /** speech resumed after an eager end of turn: the segment goes on */
  | { type: "turnResumed"; resumed: TurnResumed }
  | { type: "ended"; end: StreamEnd };

export interface ListenOptions {
  /** your id in the room: a speaker with the same participant is not heard (a two-way meeting) */
  participant?: string;
  /** after a drain, a lost connection or the server's longest listen, listen again on the next
   * address (true); false: such an end is told as any other (`ended`, then `ListenEndedError`) */
  resume?: boolean;
  /** events read ahead of the caller before the client stops reading (4) */
  maxBufferedEvents?: number;
  /** the speaking rate of the room's speech for this listener, 0.5..2.0 (unset: each speaker's own) */
  speed?: number;
  /** where a conversation speaks into the room: its turns heard in your language in the speaker's
   * own voice, as their translation into it (false: as text only) */
  original?: boolean;
}

/** The first event of a listen, and of each call it moved to (`resumes`: the moves so far).
 * `started.backlog`: the backlog segments that follow at once (text only). */
export interface ListenStartedEvent {
  type: "started";
  started: ListenStarted;
  /** the server of this call */
  address: string;
  resumes: number;
}

/** Why the server ended a listen: REVOKED (its token was removed or no longer covers the room:
 * UNAUTHENTICATED); with `resume: false` also DRAINING (the server shut down: UNAVAILABLE), LOST
 * (the connection) and MAX_LISTEN_DURATION (`rooms.max_listen_s`: OUT_OF_RANGE); ERROR: any other. */
export type ListenEndReason = "REVOKED" | "MAX_LISTEN_DURATION" | "DRAINING" | "LOST" | "ERROR";

/** The last event of a listen the server ended: the reason, the status, the server's `details`
 * (which say what to do), the listen's request id and the server's address. The iteration then
 * throws `ListenEndedError`. */
export interface ListenEnd {
  reason: ListenEndReason;
  code: number;
  details: string;
  requestId: string;
  address: string | undefined;
}

/** What iterating a listen yields. `segment`: a speaker's final result with the speaker's own
 * segment id and span, its translations this language only (with speech when the speaker's output
 * has it; `backlog`: sent on joining, text only); `caption`: a live caption (when the speaker asked
 * for them), superseded by its segment; `dropped`: this listener fell behind and lost its oldest
 * events (a notice); `draining`: the server shuts down. */
export type ListenEvent =
  | ListenStartedEvent
  | { type: "segment"; speaker: string; segment: SegmentResult; backlog: boolean }
  | { type: "caption"; speaker: string; interim: InterimResult }
  | { type: "dropped"; dropped: ListenDropped }
  | { type: "draining"; draining: Draining }
  | { type: "ended"; end: ListenEnd };
