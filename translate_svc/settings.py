"""Typed configuration, built once at start-up and passed down as sub-objects.

Environment: ``TRANSLATE_SVC_<SECTION>__<FIELD>`` (e.g. ``TRANSLATE_SVC_ENGINE__MAX_BATCH_SIZE=32``).
CLI flags override the environment. Components never read the environment themselves.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic.networks import IPvAnyNetwork
from pydantic_settings import BaseSettings, SettingsConfigDict

from translate_svc.vad.segmenter import SegmenterConfig

# the webhooks' settings have a module of their own; imported from here as the others are
from translate_svc.webhook_settings import WebhookEndpoint as WebhookEndpoint
from translate_svc.webhook_settings import WebhookSettings as WebhookSettings

DEFAULT_MODEL_DIR = Path("model_cache/seamless-m4t-v2-large")
DEFAULT_LID_DIR = Path("model_cache/mms-lid-126")


class ModelSettings(BaseModel):
    path: Path = DEFAULT_MODEL_DIR
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    #: torch CPU threads for the model; None: all cores but one on CPU (the event loop, gRPC and
    #: VAD need one; oversubscribed OpenMP threads spin and stall them), torch's default on CUDA.
    cpu_threads: int | None = Field(None, ge=1, le=256)
    #: Benchmark only (random full-size weights): force every text row to this many tokens per
    #: second of audio, and text-to-unit to ``forced_units_per_s``. Output is noise. See model/forced.py.
    forced_text_tokens_per_s: float | None = Field(None, gt=0)
    forced_units_per_s: float = Field(50.0, gt=0)
    #: Test and benchmark only: ``stable`` serves model/stable.py's made-up translator (words from
    #: the audio's length, exact commit points for simultaneous mode) instead of the model; ``path``
    #: must be the test checkpoint (refused next to real weights). Output is not a translation.
    test_translator: Literal["stable"] | None = None
    #: runaway decodes: at most this many text tokens per second of a segment's audio, plus
    #: ``max_text_tokens_base`` (and never more than the model's own max_new_tokens). Real speech
    #: stays far below; a row that never emits EOS stops here instead of holding its batch.
    max_text_tokens_per_s: float = Field(16.0, gt=0)
    max_text_tokens_base: int = Field(16, ge=1)
    #: the spoken-language identifier (MMS-LID, ``translate-svc download-lid-model``), loaded
    #: when this directory exists; without it, language detection answers FAILED_PRECONDITION
    #: and everything else works. None: never load one.
    lid_path: Path | None = DEFAULT_LID_DIR
    #: what runs before the server says ready (engine/warmup.py): ``batches``, every batch size the
    #: scheduler can form (1..engine.max_batch_size) at each of ``warmup_lengths_s`` (on CUDA a
    #: batch of a new shape costs several times its compute: docs/performance.md); ``one``, a single
    #: one-second segment; ``auto``: ``batches`` on CUDA, ``one`` on CPU
    warmup: Literal["auto", "one", "batches"] = "auto"
    warmup_lengths_s: list[Annotated[float, Field(gt=0, le=600)]] = Field(default_factory=lambda: [1.0, 2.5, 6.0])
    #: no warm-up batch starts after this many seconds (the rest of the plan runs cold); None: no limit
    warmup_max_s: float | None = Field(120.0, ge=0)


class LimitsSettings(BaseModel):
    """What one request or stream may ask for; reported to clients (ListLanguages, StreamStarted)."""

    max_target_languages: int = Field(4, ge=1, le=32)
    #: LanguageDetection.candidates per request or stream
    max_candidate_languages: int = Field(4, ge=1, le=16)
    #: Term entries per request or stream, and characters of one phrase
    max_terms: int = Field(32, ge=0, le=1024)
    max_term_chars: int = Field(64, ge=1, le=1024)
    #: glossary entries (TRANSLATE terms) per request or stream, counted apart from max_terms; a
    #: phrase and its translation each at most max_term_chars
    max_glossary_entries: int = Field(128, ge=0, le=4096)
    #: TranslateText: texts per request, characters of one text, and characters of all its texts
    max_texts: int = Field(16, ge=1, le=1024)
    max_text_chars: int = Field(2000, ge=1, le=100_000)
    max_text_request_chars: int = Field(8000, ge=1, le=1_000_000)
    #: the largest clip (a Translate request's, or all a TranslateChunked call's chunks) and the
    #: largest answer the server sends (gRPC's send limit)
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    #: the largest message the gRPC port takes in (gRPC's receive limit, one for the whole port),
    #: enforced by the transport as bytes arrive: what any one admitted call can make the server
    #: buffer. It must hold a stream message (an audio chunk and its config). 4 MiB, gRPC's own
    #: default: a Translate clip over it goes over TranslateChunked (docs/security.md)
    max_receive_message_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    #: largest audio payload of one StreamingTranslate message
    max_chunk_bytes: int = Field(1024 * 1024, ge=320)
    #: longest clip Translate accepts
    max_clip_seconds: float = Field(600.0, gt=0)
    #: Translate calls in progress at once on the node, counted before a clip is read or decoded;
    #: beyond it: RESOURCE_EXHAUSTED + retry hint. Bounds what clips hold (docs/security.md):
    #: about this many times (max_message_bytes + the largest clip decoded) at the defaults
    max_translate_calls: int = Field(4, ge=1, le=1024)
    #: threads that decode and resample Translate clips (their own pool: clips cannot take the
    #: threads live streams decode on)
    translate_decode_threads: int = Field(2, ge=1, le=64)
    #: StreamingTranslate calls open at once on this server; beyond it: RESOURCE_EXHAUSTED + retry hint
    max_streams: int = Field(256, ge=1)
    #: a stream that sends no message for this long is closed (its open speech translated first);
    #: also the longest stretch a packet timestamp may skip. Ten minutes: a muted participant's
    #: stream lives on (a dead connection is found by HTTP/2 keepalive, not by this). On the OpenAI
    #: WebSocket a configured session whose client answers pings is not idle (a muted speaker: kept
    #: up to max_stream_seconds); its pings find a dead client within this long
    idle_timeout_s: float = Field(600.0, gt=0)
    #: a stream whose sender stops in the middle of speech (mute, push-to-talk, a paused track)
    #: has that speech closed into a segment, as at a pause, once no message came for this long
    #: beyond the last message's audio (wall clock); later audio carries on the timeline. 0: off
    stall_close_ms: int = Field(1000, ge=0, le=60_000)
    #: a stream (any door) holds one of max_streams and of its tenant's streams from the moment its
    #: call or socket opens; one whose config has not come this long after that is ended
    #: (OUT_OF_RANGE, reason config_timeout), so unconfigured calls cannot hold slots for long
    config_timeout_ms: int = Field(5000, ge=100, le=600_000)
    #: a Translate call whose clip (its one message) has not fully arrived this long after the
    #: call opened is ended (OUT_OF_RANGE): it holds one of max_translate_calls while it waits.
    #: 60 s: a max_message_bytes clip over a 10 Mbit/s link
    clip_read_timeout_s: float = Field(60.0, gt=0, le=3600)
    #: a unary call (ListLanguages, TranslateText, Riva's TranslateText and
    #: ListSupportedLanguagePairs; health Check and Watch) whose request has not fully arrived this
    #: long after the call opened is ended (DEADLINE_EXCEEDED): it holds a call slot meanwhile
    request_read_timeout_s: float = Field(5.0, gt=0, le=600)
    #: unary calls (as above, health aside) in progress at once for one token, per server process,
    #: and for one tenant, node-wide (a tenant's ``unary_calls`` in the tokens file replaces the
    #: latter), counted before the request is read; beyond: RESOURCE_EXHAUSTED + retry hint
    max_unary_calls_per_token: int = Field(16, ge=1, le=100_000)
    max_unary_calls_per_tenant: int = Field(64, ge=1, le=100_000)
    #: Translate (and TranslateChunked) calls of one tenant still receiving their clip, node-wide:
    #: a tenant that keeps opening calls and never sends their clip holds at most this many of
    #: max_translate_calls (each until clip_read_timeout_s), not all of them
    max_clip_reads_per_tenant: int = Field(2, ge=1, le=1024)
    #: simultaneous mode (StreamingConfig.simultaneous): the range a stream's step_ms may take,
    #: and the most translations its local agreement may wait for
    min_simultaneous_step_ms: int = Field(500, ge=100, le=60_000)
    max_simultaneous_step_ms: int = Field(10_000, ge=100, le=600_000)
    max_simultaneous_agreement: int = Field(4, ge=1, le=16)
    #: the least new speech a simultaneous commit's chunk carries (except a segment's last): fewer
    #: makes a stutter of tiny pieces, more makes the first speech later (400 ms: two words of a
    #: step of 1 s can be spoken at once; Meta's agent waits for 50 units, 1 s)
    simultaneous_min_chunk_ms: int = Field(400, ge=0, le=10_000)
    #: a simultaneous stream's segments are cut at this length (its vad.max_segment_ms, if longer,
    #: is lowered to it): each step re-translates its open segment from the start, so this bounds
    #: the audio re-translated per second of speech however long the speaker goes on without a
    #: pause (about (cap / step - 1) / 2: 2.5 s a second at 1 s steps; issue 46)
    simultaneous_max_segment_ms: int = Field(6_000, ge=1_000, le=60_000)
    #: AudioPackets that arrive out of order within this much timeline are put back in order
    #: (an SFU's jitter); later ones are dropped and their time filled. 0: none held
    reorder_window_ms: int = Field(100, ge=0, le=2000)
    #: longest audio one stream may send; then it is closed (its open speech translated first)
    max_stream_seconds: float = Field(4 * 3600.0, gt=0)
    #: segments a stream may have in the engine or computed and not yet taken by its client's
    #: transport; at the bound the server stops reading that stream's audio (flow control) until
    #: the client reads. Small, so a client that never reads gets a few segments computed (issue
    #: 34); a real-time stream has one or two at a time. Raise it to let one stream fed faster than
    #: real time batch deeper with itself. Also the bound on a stream's other events not yet taken
    #: (update answers, captions, commits, notices; issue 52): at it the server reads none of the
    #: stream's messages either, so a client that sends updates and never reads is answered a few
    max_unread_results: int = Field(4, ge=1, le=4096)
    #: segments of one Translate clip in the engine at once (within its fair share): how deep a
    #: clip batches with itself. Its results are collected as they come, so max_unread_results
    #: (a bound for clients that do not read) is not a clip's bound
    max_clip_segments_queued: int = Field(16, ge=1, le=4096)
    #: smallest live-caption interval a stream may ask for (StreamingConfig.interim_interval_ms)
    min_interim_interval_ms: int = Field(250, ge=20, le=60_000)
    #: calls open at once on one HTTP/2 connection (its SETTINGS_MAX_CONCURRENT_STREAMS: a client
    #: queues the rest itself). Room for a sidecar that sends every stream (max_streams) and some
    #: unary calls over one connection; health Watch calls count too.
    max_calls_per_connection: int = Field(320, ge=1, le=100_000)
    #: calls in flight in one server process, all connections together (gRPC's
    #: maximum_concurrent_rpcs); beyond it a new call gets RESOURCE_EXHAUSTED at once
    max_calls: int = Field(1024, ge=1, le=1_000_000)
    #: a connection with no call for this long is closed (GOAWAY); the client reconnects when needed
    connection_idle_s: float = Field(600.0, gt=0)
    #: a connection is asked to go away after this long (so clients rebalance over replicas); its
    #: calls then get max_stream_seconds more to finish, so no stream is cut by it
    connection_max_age_s: float = Field(24 * 3600.0, gt=0)
    #: the WebRTC door (POST .../calls, issue 34 N9 N10): the largest SDP offer read (a browser's is
    #: 3-8 KiB); a larger one is refused with 413 before it is parsed
    webrtc_max_offer_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024)
    #: remote ICE candidates taken from one offer (those at usable addresses, below); the rest are
    #: dropped before aiortc sees them: the server sends STUN checks to these and to no other
    webrtc_max_candidates: int = Field(8, ge=0, le=64)
    #: networks (CIDR) an offer's candidates may name besides the offer's own HTTP peer address (an
    #: SFU's, a NAT's); others are dropped. A client that reaches the server is found anyway, from
    #: its own checks (a peer-reflexive candidate)
    webrtc_candidate_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    #: the STUN server ("stun:host:port") the door's ICE agent asks for its public address (aioice
    #: takes one); None, the default: none is contacted (aiortc's own default is Google's public one)
    webrtc_stun_server: Annotated[str, Field(pattern=r"^stun:[^\s]+$")] | None = None
    #: a WebRTC call must be connected (ICE, DTLS, its oai-events channel open) and its microphone's
    #: first audio must have come this long after its offer; else the call is closed and its stream
    #: slot released (then limits.config_timeout_ms runs for its session.update)
    webrtc_connect_timeout_ms: int = Field(10_000, ge=100, le=120_000)
    #: the HTTP port (issue 34 N6), per process: connections open at once, whatever they carry (a
    #: WebSocket session, a page load, an offer, a request not yet sent whole). One more is closed as
    #: soon as it is accepted (plaintext: after a 503), so the process keeps file descriptors for its
    #: other doors; room for max_streams WebSocket sessions and the short requests around them.
    #: Never more than half the process's file descriptors (ulimit -n) whatever this says
    http_max_connections: int = Field(512, ge=1, le=100_000)
    #: the HTTP port: a request's line and headers must have come whole this long after its
    #: connection was accepted (with TLS: its handshake ended; the handshake has as long) or its
    #: previous response was sent, else the connection is closed; also how long an idle keep-alive
    #: connection stays open, and how long a mint request's body may take
    http_header_timeout_s: float = Field(5.0, gt=0, le=300)
    #: the most audio one ``input_audio_buffer.append`` of the OpenAI-compatible door may carry
    #: (decoded bytes; 3 MiB: 65 s of its 24 kHz PCM16), published in ``session.created``
    #: (``x_limits``); the server splits it into chunks of ``max_chunk_bytes``. A WebSocket message
    #: may be 4/3 of it (base64) and 64 KiB of JSON: what one socket can make the server buffer
    ws_max_append_bytes: int = Field(3 * 1024 * 1024, ge=4800, le=64 * 1024 * 1024)
    #: each realtime WebSocket's kernel send buffer (SO_SNDBUF; Linux doubles it), fixed: what a
    #: client that stops reading lets the server push before its writes wait, so its session stops
    #: a few segments later (issue 34). Linux would grow it to net.ipv4.tcp_wmem's 4 MiB, where
    #: 4 sockets nobody read had every segment of their audio computed. It also bounds the
    #: socket's bytes in flight: 128 KiB a round trip, 40 times the 24 kHz speech a session sends.
    #: Also what aiohttp's writer queues above the socket before a send waits, and what a WebRTC
    #: call's data channel holds unacknowledged before its next event waits (issue 52)
    ws_send_buffer_bytes: int = Field(64 * 1024, ge=4096, le=16 * 1024 * 1024)
    #: browser pages (origins such as "https://app.example.com"; "*": any) that may open a realtime
    #: WebSocket or a WebRTC call, or mint a client secret, on the HTTP port (issue 34 N12). A request
    #: without an Origin header (not a browser: the SDKs, curl) and one from this server's own pages
    #: (the demo page) need no entry; any other browser request is refused with 403
    http_allowed_origins: list[str] = Field(default_factory=list)
    # -- what a caller without a token may hold (issue 34 N1) --
    #: health Watch calls open at once on each port (main, health) of one server process; beyond
    #: it Watch answers RESOURCE_EXHAUSTED at once. They have slots of their own, on top of max_calls,
    #: so a Watch (health needs no token) never takes a slot another call, or a probe's Check, needs
    max_health_watches: int = Field(16, ge=1, le=1024)
    #: health Check calls in progress at once on each port of one server process: the main port
    #: keeps this many call slots for them that no other call can take (a probe is answered while
    #: max_calls are busy); beyond it Check answers RESOURCE_EXHAUSTED at once
    max_health_checks: int = Field(32, ge=1, le=1024)
    #: refused streams (no or a bad token) that may read what their client still sends for up to
    #: server.error_drain_s at once, per process, also on top of max_calls; beyond it a refused
    #: stream is ended at once, without that courtesy
    max_refusal_drains: int = Field(16, ge=0, le=1024)
    # -- a stream whose results are not read (issue 34) --
    #: bytes a call's HTTP/2 receive window lets its client send ahead of what the server has read
    #: (fixed: gRPC's BDP probing, which grows it to 4 MiB and more, is off). A stream whose session
    #: stopped reading (max_unread_results reached) holds at most this much more audio; a message
    #: being read gets its whole size on top, so a large Translate clip is not slowed by it. A
    #: realtime WebSocket's kernel receive buffer (SO_RCVBUF) is fixed at it too
    stream_window_bytes: int = Field(256 * 1024, ge=16 * 1024, le=16 * 1024 * 1024)


class EngineSettings(BaseModel):
    max_batch_size: int = Field(16, ge=1, le=1024)
    max_wait_ms: float = Field(10.0, ge=0, le=10_000)
    #: budget of padded audio seconds per batch (longest segment x batch size)
    max_batch_audio_s: float = Field(240.0, gt=0)
    #: segments waiting for the model, all streams together; beyond it: RESOURCE_EXHAUSTED
    max_queued_segments: int = Field(512, ge=1)
    #: budget of an optional batch (live captions, simultaneous steps), in row-seconds: its text
    #: rows (one per target language, the transcript's included) x its longest input. A final
    #: waits behind at most one such batch; optional work beyond it waits, and a caption or step
    #: over it alone is skipped (80: a step or caption of 15 s with 4 targets and a transcript fits)
    optional_batch_audio_s: float = Field(80.0, gt=0)


class ServerSettings(BaseModel):
    #: loopback by default: a server is reachable from other machines only when asked to be
    #: (``0.0.0.0`` / ``::`` serves the network; the container images and k8s/ set it). ``/metrics``
    #: and the health port bind to this host too.
    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)
    #: seconds in-flight calls get to finish on SIGTERM
    grace_s: float = Field(30.0, ge=0)
    #: on SIGTERM, live streams are translated this much longer (never past ``grace_s``), then end
    #: with "resume elsewhere"; the rest of the grace period finishes their last segments
    drain_s: float = Field(20.0, ge=0)
    #: after a stream fails, read and discard what the client still sends for up to this long
    #: before ending the call, so the status reaches a client that is still writing intact (grpc-
    #: python's asyncio client reports INTERNAL if one of its writes fails after the status came)
    error_drain_s: float = Field(2.0, ge=0, le=60)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    #: TLS on the gRPC port: PEM certificate (chain) and unencrypted PEM key, both or neither.
    #: Re-read when the files change (cert-manager rotation), at most once per second.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: PEM CA certificate(s): clients must present a certificate signed by one of them (mTLS)
    tls_client_ca_file: Path | None = None
    #: serve grpc.health.v1 (and nothing else) in plaintext on this port too, for probes that
    #: cannot speak TLS or send a token (kubelet's gRPC probe); None: health on the main port only
    health_port: int | None = Field(None, ge=0, le=65535)
    #: the OpenAI-compatible realtime translation door (WebSocket at /v1/realtime/translations,
    #: docs/openai-compat.md) on this HTTP port; None: off. Same host, tokens, limits and drain.
    http_port: int | None = Field(None, ge=0, le=65535)
    #: the browser demo page at /demo on ``http_port`` (docs/openai-compat.md): it mints its own
    #: short-lived client secrets, so anyone who reaches the HTTP port can open sessions. For
    #: trying the service out; off by default.
    demo_page: bool = False
    #: the Riva-compatible door (docs/riva-compat.md): NVIDIA Riva's RivaTranslation and
    #: RivaSpeechRecognition.StreamingRecognize on the gRPC port, for Riva's clients; off by default
    riva: bool = False
    #: server reflection; auto: on without token auth, off with it
    reflection: Literal["auto", "on", "off"] = "auto"
    #: front-end worker processes: 1 runs everything in one process; N >= 2 runs one engine
    #: process (the model) and N workers (gRPC, decoding, VAD, sessions) sharing the port
    #: (``serving/``); auto: one per CPU (``cpus``), less two for the engine process
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    #: the CPUs this server may use, for ``workers: auto``: in Kubernetes the pod's CPU request
    #: (the downward API; a container sees every core of its node); None: the CPUs this process
    #: may run on (its affinity mask)
    cpus: int | None = Field(None, ge=1, le=1024)

    @model_validator(mode="after")
    def _check_tls(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("server.tls_cert_file and server.tls_key_file go together: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("server.tls_client_ca_file (mTLS) needs server.tls_cert_file and server.tls_key_file")
        if self.demo_page and self.http_port is None:
            raise ValueError("server.demo_page is served on the HTTP port: set server.http_port (--http-port) too")
        if self.health_port is not None and self.health_port != 0 and self.health_port == self.port:
            raise ValueError("server.health_port must differ from server.port")
        return self

    def worker_count(self) -> int:
        """``workers`` as a number (``auto``: ``cpus`` less two, at least one)."""
        if self.workers != "auto":
            return self.workers
        return max(1, (self.cpus or len(os.sched_getaffinity(0))) - 2)


class AuthSettings(BaseModel):
    #: bearer tokens, one per line: ``<token> [<permission>,...]`` (docs/security.md); None: no
    #: token needed. Re-read when the file changes, at most once per second.
    tokens_file: Path | None = None
    #: lifetime of the client secrets the OpenAI-compatible door mints for browsers (permission
    #: ``stream`` only); a client may ask for less, never more
    client_secret_ttl_s: int = Field(600, ge=10, le=7200)
    #: the key that signs client secrets: every process of a node must share it (``serve
    #: --workers`` passes one to its workers); None: a random key per process
    client_secret_key: str | None = Field(None, min_length=32)


class PhoneSettings(BaseModel):
    """The phone door (issue 44, docs/telephony.md): carriers' call audio in, translated speech
    played back into the call."""

    #: the carriers' WebSocket framings (Twilio Media Streams and its cousins, Asterisk
    #: chan_websocket) at /v1/phone/... on ``server.http_port``; off by default
    websocket: bool = False
    #: Asterisk AudioSocket (TCP) on this port; None: off. 0 picks a free one
    audiosocket_port: int | None = Field(None, ge=0, le=65535)
    #: the address AudioSocket listens on: loopback unless set, since AudioSocket carries no
    #: credentials (start-up warns when it listens beyond loopback: firewall the port)
    audiosocket_host: str = Field("127.0.0.1", min_length=1)
    #: the tenant every AudioSocket call belongs to: its caps and audio seconds per minute from the
    #: tokens file apply (a tenant no line names has none of its own; the limits below still hold)
    audiosocket_tenant: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$")
    #: AudioSocket calls at once on the node, whoever connects: well below ``limits.max_streams``,
    #: so connections to this credential-less port cannot take every other tenant's streams
    audiosocket_max_calls: int = Field(32, ge=1, le=1_000_000)
    #: an AudioSocket call whose peer sends no audio frame for this long is ended (``input_timeout``;
    #: Asterisk sends one every 20 ms, silence included)
    audiosocket_input_timeout_s: float = Field(5.0, gt=0, le=600)
    #: the languages of a call that names none (an AudioSocket call always: it has no URL)
    source_language: str = "eng"
    target_language: str = "spa"
    #: simultaneous mode (the caller hears words while the speaker still talks); off: segment mode
    simultaneous: bool = True
    #: the Twilio account's auth token: every Twilio connection must then carry a valid
    #: ``X-Twilio-Signature`` (HMAC-SHA1 of the URL it was given); None: not checked
    twilio_auth_token: str | None = Field(None, min_length=1)
    #: the rooms a call Twilio signed may speak into (``room`` in its TwiML's ``<Parameter>``s):
    #: shell-style patterns, as a token's ``publish=`` (docs/rooms.md); empty: none
    twilio_rooms: list[str] = ["*"]
    #: the public base URL the carrier dials (``wss://phone.example.com``), as Twilio signs it
    #: behind a proxy; None: the URL as the request came
    public_url: str | None = None
    #: accept the token as ``?token=`` in the URL, for carriers that cannot set headers (the
    #: token then sits in the carrier's configuration and in proxies' logs: docs/telephony.md)
    query_tokens: bool = True
    #: unplayed translated speech a carrier may hold before it is cleared (Twilio ``clear``,
    #: Asterisk ``FLUSH_MEDIA``), counted; None: kept, however long
    max_backlog_s: float | None = Field(None, gt=0, le=600)
    #: how long a call's end (a drain, a limit) waits for its translated tail to be played
    tail_s: float = Field(10.0, ge=0, le=120)
    #: speech the door holds for a carrier that stopped taking it (Asterisk's XOFF, a full
    #: socket) before the call ends
    max_held_s: float = Field(30.0, gt=0, le=600)
    #: the largest message (WebSocket) or frame (AudioSocket: 65,535 by its 16-bit length) read
    max_message_bytes: int = Field(65_536, ge=1024, le=1024 * 1024)
    #: two-party calls: what a leg hears of the other leg's own voice: kept "under" its
    #: translation at ``original_gain`` (the default: a three-way call with an interpreter
    #: sounds so, and the listener hears when the other side speaks), or "removed" (the
    #: translation alone)
    original_voice: Literal["removed", "under"] = "under"
    #: the original's gain under the translation (0.25: -12 dB)
    original_gain: float = Field(0.25, gt=0, le=1)
    #: two-party calls: a leg whose other leg has not joined within this is ended, saying so
    #: (``partner_timeout``), rather than left open hearing nothing
    partner_timeout_s: float = Field(60.0, gt=0, le=3600)


class SipSettings(BaseModel):
    """The SIP door (issue 60, docs/telephony.md): SIP trunks, PBXs and phones call in over UDP and
    TCP on ``port`` of ``server.host``, G.711 RTP on ``rtp_ports``; calls run as the phone door's
    (``phone.*``: languages, simultaneous, tail, held speech)."""

    #: SIP over UDP and TCP on this port; None: off. 0 picks a free one (the same for both)
    port: int | None = Field(None, ge=0, le=65535)
    #: SIP over TLS (RFC 3261 §26.2, ``sips:``/``transport=tls``) on this port of its own, with the
    #: server's certificate (``server.tls_cert_file``/``tls_key_file``, and its mTLS when
    #: ``server.tls_client_ca_file`` is set); None: off. 0 picks a free one
    tls_port: int | None = Field(None, ge=0, le=65535)
    #: the calls' RTP ports, an inclusive range [low, high] (an even port per call); None: any free port
    rtp_ports: tuple[int, int] | None = None
    #: the address put in our SDP and Contact (what the caller sends media and requests to); None:
    #: ``server.host`` (set it when that is 0.0.0.0 or behind NAT)
    public_address: str | None = None
    #: who may call: source addresses in these networks (JSON list in the environment); their calls
    #: are tenant ``tenant``'s, whose caps and audio quota in the tokens file apply
    allowed_cidrs: list[str] = ["127.0.0.0/8", "::1/128"]
    tenant: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$")
    #: a request from elsewhere gets no answer at all (scanners learn nothing); off: 403
    drop_refused: bool = False
    #: INVITEs a source address may send, per second and in a burst, before any dialog state is
    #: kept; beyond, dropped (a flood gets nothing)
    invites_per_s: float = Field(5.0, gt=0, le=10_000)
    invite_burst: int = Field(20, ge=1, le=100_000)
    #: SIP calls at once on the node, whoever calls (beyond: 486 Busy Here with Retry-After)
    max_calls: int = Field(64, ge=1, le=1_000_000)
    #: a call whose RTP stopped (or never came) for this long is ended with a BYE
    media_timeout_s: float = Field(30.0, gt=0, le=3600)
    #: a 200 OK never ACKed is retransmitted this long (RFC 3261 Timer H, 64*T1), then the call ends
    ack_timeout_s: float = Field(32.0, gt=0, le=300)
    #: how long a call rings (180) before it is answered (a PBX's caller may CANCEL meanwhile)
    ring_s: float = Field(0.0, ge=0, le=60)
    #: the largest SIP message read (a UDP datagram; a TCP message's head and body)
    max_message_bytes: int = Field(8192, ge=1024, le=65_535)
    #: SIP over TCP and TLS: connections open at once, both ports together (beyond, the newcomer is
    #: closed at accept); never more than its share, with the HTTP port's, of half this process's
    #: file descriptors (``ulimit -n``: ``transport/descriptors.py``)
    max_tcp_connections: int = Field(1024, ge=1, le=1_000_000)
    #: TCP and TLS connections open at once from one source address (IPv6: one /64); beyond, the
    #: newcomer is closed at accept
    tcp_connections_per_source: int = Field(16, ge=1, le=100_000)
    #: a TCP or TLS connection that carries no call is closed when no whole message has come on it
    #: for this long (a keep-alive CRLF does not count); one that carries a call, when the call ends
    #: and then this long passes
    tcp_idle_s: float = Field(30.0, gt=0, le=3600)
    #: DTMF digits (RFC 4733) that switch a call's target language, digit -> language code (JSON
    #: object in the environment: ``{"1": "spa", "2": "fra"}``); segments after the digit use it
    dtmf_targets: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> SipSettings:
        if self.rtp_ports is not None and not 1024 <= self.rtp_ports[0] < self.rtp_ports[1] <= 65535:
            raise ValueError("sip.rtp_ports is [low, high] with 1024 <= low < high <= 65535")
        for digit, language in self.dtmf_targets.items():
            if len(digit) != 1 or digit not in "0123456789*#ABCD" or not language.isalpha() or len(language) > 16:
                raise ValueError(
                    f"sip.dtmf_targets: {digit[:4]!r}: {language[:20]!r} is not a DTMF digit (0-9, *, #, A-D) "
                    "and a language code"
                )
        for cidr in self.allowed_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"sip.allowed_cidrs: {cidr[:64]!r} is not a network (10.0.0.0/8, ::1/128)") from None
        return self


class RoomSettings(BaseModel):
    """Rooms (issue 47, docs/rooms.md): one speaker's stream, many listeners, each in a language."""

    #: a listener who joins gets the room's final results of the last this many seconds first (as text)
    backlog_s: float = Field(30.0, ge=0, le=3600)
    #: what the backlog keeps (text only), per room and per tenant (in each server process): at a
    #: bound the oldest go. Bytes are estimated: the texts in UTF-8, 64 B a transcript word, 256 B
    #: an entry (an entry: one final result in one language)
    backlog_max_entries: int = Field(256, ge=1, le=1_000_000)
    backlog_max_bytes: int = Field(512 * 1024, ge=1024, le=1 << 32)
    backlog_max_entries_per_tenant: int = Field(2048, ge=1, le=10_000_000)
    backlog_max_bytes_per_tenant: int = Field(4 * 1024 * 1024, ge=1024, le=1 << 36)
    #: events queued for one listener; beyond, its oldest are dropped (and it is told how many)
    listener_queue: int = Field(64, ge=1, le=4096)
    #: a room whose last party (speaker or listener) left gives its slot back at once; its backlog
    #: is kept this long for a party who comes back (at most a tenant's room cap of such rooms)
    idle_room_s: float = Field(60.0, ge=0, le=86_400)
    #: rooms with a party on the node (every worker together), and listeners (every room together)
    max_rooms: int = Field(256, ge=1, le=1_000_000)
    max_listeners: int = Field(4096, ge=1, le=1_000_000)
    #: a tenant's rooms and listeners on the node when its line in the tokens file states no
    #: ``rooms=`` / ``listeners=`` (well below the ports' call and connection limits)
    max_rooms_per_tenant: int = Field(16, ge=1, le=1_000_000)
    max_listeners_per_tenant: int = Field(256, ge=1, le=1_000_000)
    #: a listen (gRPC Listen, a listener's WebSocket) ends this long after it began: listen again
    max_listen_s: float = Field(4 * 3600.0, gt=0, le=7 * 86_400)
    #: the listen page's QR codes (``/listen/<room>/qr.svg``, no token): new codes drawn a second
    #: per process (a token bucket of 2 s' worth; beyond it 503 + Retry-After), and codes kept (by
    #: address, least recently used out): at the defaults drawing takes at most ~8 % of the event loop
    qr_draws_per_s: float = Field(4.0, gt=0, le=1000)
    qr_cache_entries: int = Field(256, ge=0, le=100_000)
    #: one client address's share of ``qr_draws_per_s`` (an IPv6 /64 counts as one address; behind
    #: a proxy every client is the proxy's address: set it to ``qr_draws_per_s`` there)
    qr_source_draws_per_s: float = Field(1.0, gt=0, le=1000)


class ClusterSettings(BaseModel):
    """What crosses streams (issue 59, ``translate_svc/cluster/``): rooms, two-party calls, tenant
    caps and audio budgets. One process keeps it in memory; ``serve --workers N`` in the node's hub
    (the supervisor); several pods share it in Redis when ``redis_url`` is set."""

    #: Redis 7 that every pod shares (``redis://host:6379/0``; ``rediss://`` for TLS); None: none
    #: (each node on its own). Checked at start (``cluster/choose.py``), where a refusal does not
    #: echo it: it may hold a password
    redis_url: str | None = None
    #: a file holding Redis's password (one line; read at start), so that it is in no environment
    #: variable and no process listing; a password in the URL works too
    redis_password_file: Path | None = None
    #: when Redis is lost mid-run: "node" goes on with this node's own caps and rooms (logged, on
    #: /metrics and health) until it is back; "refuse" refuses new calls (UNAVAILABLE, retry
    #: after). Either way, calls already admitted go on.
    on_redis_loss: Literal["node", "refuse"] = "node"
    #: a holder's leases (streams, rooms, listeners) and presence (a room's listeners, a call's leg)
    #: outlive it by at most this long when it dies without giving them back; renewed every third of it
    lease_s: float = Field(15.0, ge=1, le=300)


class RecordingsSettings(BaseModel):
    """Recordings (issue 61, ``translate_svc/recordings/``, docs/security.md): what a tenant whose
    line says ``record=text|audio`` keeps of its sessions, encrypted, for its ``retention_days``."""

    #: where recordings are written (``<dir>/<tenant>/<recording id>/``); None: nothing is recorded,
    #: whatever the tokens file says (start-up warns when a tenant asks for recordings)
    dir: Path | None = None
    #: the tenants' keys: one per line, ``<tenant> <key id> <base64 of 32 random bytes>``; a
    #: tenant's last line is its current key (new recordings), earlier ones still decrypt
    key_file: Path | None = None
    #: a tenant that records and states no ``retention_days`` keeps its recordings this long
    default_retention_days: float = Field(30.0, gt=0, le=36_500)
    #: audio and text waiting for the writer thread, every recording of the process together: a
    #: recording whose next piece would go past it ends, marked incomplete (never the call)
    queue_max_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024, le=1 << 34)
    #: the sweeper deletes recordings past their retention this often (and once at start)
    sweep_interval_s: float = Field(3600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _check(self) -> RecordingsSettings:
        if self.dir is not None and self.key_file is None:
            raise ValueError(
                "recordings.dir needs recordings.key_file: recordings are encrypted with the tenants' keys"
            )
        return self


class McpSettings(BaseModel):
    """The MCP endpoint (issue 62, docs/agents.md): agents' tools and room captions at ``/mcp`` on
    ``server.http_port``, with the server's tokens, permissions and caps."""

    #: serve it (``serve --mcp``); needs ``server.http_port``
    enabled: bool = False
    #: the largest clip ``translate_audio`` takes, inline (its base64 is a third larger) or fetched;
    #: never more than ``limits.max_message_bytes``
    max_clip_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1 << 30)
    #: the hosts ``translate_audio`` may fetch an ``https`` URL from: names (``media.example.com``)
    #: or ``*.example.com``; empty: no fetch. A name that resolves to a private address is refused
    fetch_hosts: list[str] = []
    #: a fetch's whole time (connect, redirects, body), and the redirects it follows
    fetch_timeout_s: float = Field(20.0, gt=0, le=600)
    fetch_max_redirects: int = Field(3, ge=0, le=10)
    #: room caption resources one subscription may watch (each holds a room listener of its tenant)
    max_subscriptions: int = Field(8, ge=1, le=256)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRANSLATE_SVC_", env_nested_delimiter="__", extra="forbid")

    model: ModelSettings = ModelSettings()
    #: segmentation defaults (a stream may override them): the segmenter's own frozen config, whose
    #: ``__post_init__`` is the one place VAD parameters are checked (pydantic calls it)
    vad: SegmenterConfig = SegmenterConfig()
    limits: LimitsSettings = LimitsSettings()
    engine: EngineSettings = EngineSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    phone: PhoneSettings = PhoneSettings()
    sip: SipSettings = SipSettings()
    rooms: RoomSettings = RoomSettings()
    cluster: ClusterSettings = ClusterSettings()
    recordings: RecordingsSettings = RecordingsSettings()
    mcp: McpSettings = McpSettings()
    webhooks: WebhookSettings = WebhookSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: text (for a person at a terminal) or json (one object per line, for a log pipeline)
    log_format: Literal["text", "json"] = "text"
    #: threads of numpy's BLAS (OpenBLAS), used by the features thread's filterbank products. Its
    #: idle workers spin: on 2 cores one took 60-70 % of a core from the model and the event loop
    blas_threads: int = Field(1, ge=1, le=256)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.recordings.dir is not None and self.auth.tokens_file is None:
            raise ValueError("recordings.dir needs auth.tokens_file: each tenant's record= policy is stated there")
        if self.sip.tls_port is not None and self.server.tls_cert_file is None:
            raise ValueError("sip.tls_port needs the server's certificate: set server.tls_cert_file and tls_key_file")
        limits = self.limits
        if limits.max_chunk_bytes > limits.max_message_bytes:
            raise ValueError("limits.max_chunk_bytes must not exceed limits.max_message_bytes")
        # a stream message: an audio chunk and 64 KiB for the rest (transport/calls.py)
        stream_message = 64 * 1024 + limits.max_chunk_bytes
        if limits.max_receive_message_bytes < stream_message:
            raise ValueError(
                f"limits.max_receive_message_bytes ({limits.max_receive_message_bytes}) must hold a stream message: "
                f"limits.max_chunk_bytes + 64 KiB = {stream_message} bytes; raise it or lower max_chunk_bytes"
            )
        return self
