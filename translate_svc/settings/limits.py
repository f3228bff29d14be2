"""The limits (``Settings.limits``, environment ``TRANSLATE_SVC_LIMITS__<FIELD>``): what one request or
stream may ask for, and what each door and port may hold.

``LimitsSettings`` is one flat section, as it has always been read (``limits.max_streams``, every
field's environment name and config key unchanged), made of one group per concern, each a class of
its own: what any request asks for (``RequestLimits``), a stream (``StreamLimits``), clips and
unary calls (``UnaryLimits``), noise suppression and speaker labels (``EarLimits``), the pools of
work a caller sizes (``WorkLimits``), the gRPC port
(``GrpcPortLimits``), the HTTP port and its realtime WebSocket (``HttpPortLimits``) and the WebRTC
door (``WebRtcLimits``). A door reads the group it needs from the one ``limits`` object every part
already holds.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from pydantic.networks import IPvAnyNetwork


class RequestLimits(BaseModel):
    """What one request or stream may ask for, whatever its door: languages, terms and glossary
    entries, texts; reported to clients (ListLanguages, StreamStarted)."""

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


class StreamLimits(BaseModel):
    """A stream, whatever its door: how many, how long, how idle, its flow control, captions and
    simultaneous mode (``session/``)."""

    #: largest audio payload of one StreamingTranslate message
    max_chunk_bytes: int = Field(1024 * 1024, ge=320)
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
    #: pause (about (cap / step - 1) / 2: 2.5 s a second at 1 s steps)
    simultaneous_max_segment_ms: int = Field(6_000, ge=1_000, le=60_000)
    #: a conversation's segment leans on the previous turn's language (model_api/turns.py): it
    #: keeps that language unless the identifier's top language beats it by at least this much
    #: probability (with two languages: 0.65 against 0.35); 0: the identifier's top always wins
    conversation_switch_margin: float = Field(0.3, ge=0, le=1)
    #: ...and a segment shorter than this (a second of "sí" is little to identify) by at least
    #: ``conversation_short_turn_margin`` (1: a short turn always keeps it); 0: no segment is short
    conversation_short_turn_s: float = Field(1.5, ge=0, le=30)
    conversation_short_turn_margin: float = Field(0.6, ge=0, le=1)
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
    #: (update answers, captions, commits, notices): at it the server reads none of the
    #: stream's messages either, so a client that sends updates and never reads is answered a few
    max_unread_results: int = Field(4, ge=1, le=4096)
    #: smallest live-caption interval a stream may ask for (StreamingConfig.interim_interval_ms)
    min_interim_interval_ms: int = Field(250, ge=20, le=60_000)


class UnaryLimits(BaseModel):
    """Translate clips and unary calls: their size, how many at once (per token, tenant and node),
    and how long their request may take to come."""

    #: the largest clip (a Translate request's, or all a TranslateChunked call's chunks) and the
    #: largest answer the server sends (gRPC's send limit)
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    #: longest clip Translate accepts
    max_clip_seconds: float = Field(600.0, gt=0)
    #: longest clip DetectSynthetic (``POST /v1/audio/detections``, MCP's ``detect_synthetic_speech``)
    #: reads: detection costs about 0.05-0.15 CPU s a second of audio (docs/performance.md)
    max_detect_seconds: float = Field(120.0, gt=0, le=3600)
    #: the processes that decode such clips and search them for the mark (``session/calls/detect.py``:
    #: sandbox processes, torch loaded there and never in the server's process), per server process,
    #: and of one tenant; a call past them waits up to 10 s for one, then RESOURCE_EXHAUSTED
    detect_processes: int = Field(2, ge=1, le=64)
    detect_processes_per_tenant: int = Field(1, ge=1, le=64)
    #: each such process's address space (``RLIMIT_AS``), MB: torch's own libraries take most of it
    detect_memory_mb: int = Field(2048, ge=1024, le=1024 * 1024)
    #: Translate calls in progress at once on the node, counted before a clip is read or decoded;
    #: beyond it: RESOURCE_EXHAUSTED + retry hint. Bounds what clips hold (docs/security.md):
    #: about this many times (max_message_bytes + the largest clip decoded) at the defaults
    max_translate_calls: int = Field(4, ge=1, le=1024)
    #: threads that decode and resample Translate clips (their own pool: clips cannot take the
    #: threads live streams decode on)
    translate_decode_threads: int = Field(2, ge=1, le=64)
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
    #: segments of one Translate clip in the engine at once (within its fair share): how deep a
    #: clip batches with itself. Its results are collected as they come, so max_unread_results
    #: (a bound for clients that do not read) is not a clip's bound
    max_clip_segments_queued: int = Field(16, ge=1, le=4096)


class EarLimits(BaseModel):
    """Noise suppression and speaker labels (security finding J1): their threads, off the event loop, and
    the streams that may use them at once (``session/stream/ear.py``)."""

    #: threads that run each stream's noise suppression (soxr up to 48 kHz, RNNoise, soxr back),
    #: per server process: a pool of their own, never the event loop. About 0.03-0.07 s of CPU per
    #: audio second a stream (docs/security.md), so two threads keep up with about 30 such streams
    ear_threads: int = Field(2, ge=1, le=64)
    #: threads that embed each closed segment's voice for speaker labels, per server process: a
    #: pool of its own, small on purpose (an embedding costs 0.02-0.1 s of CPU per second of speech,
    #: much of it Python holding the GIL): labels wait for it, and so do the results of the streams
    #: that asked, not anyone else's
    speaker_threads: int = Field(1, ge=1, le=16)
    #: threads that run the end-of-turn model (``vad/turn_worker.py``) for the streams asking for a
    #: semantic end of turn (``vad.eagerness``), per server process, questions of several streams
    #: in one model call (up to ``turn_batch``): 25-65 ms of CPU a decision (docs/performance.md),
    #: one decision a pause of a stream that asks; a stream has at most one question waiting.
    #: 0: the model is not run here, and streams that ask keep the silence rule (and are told so)
    turn_threads: int = Field(1, ge=0, le=16)
    turn_batch: int = Field(8, ge=1, le=64)
    #: streams with noise suppression or speaker labels open at once in this server process;
    #: beyond it: RESOURCE_EXHAUSTED + retry hint (0: none; a tenant's ``ear_streams`` in the
    #: tokens file caps its own)
    max_ear_streams: int = Field(16, ge=0, le=100_000)
    #: the same for tenant ``demo`` (the demo page's sessions) when the tokens file states no
    #: ``ear_streams`` for it: 0, the default, refuses them noise suppression and speaker labels
    #: (the page mints its secrets for anyone who reaches the HTTP port)
    demo_ear_streams: int = Field(0, ge=0, le=100_000)


class WorkLimits(BaseModel):
    """Pools of their own for work a caller sizes (``session/work.py``): never the event loop's
    default executor, where one caller's work made every tenant's result encoding wait. Each pool
    is shared fairly between tenants (round robin), and a tenant has at most its ``*_per_tenant``
    calls running on it at once (below the threads: a thread stays free for every other tenant);
    its other calls wait for their turn, holding only their own stream or request."""

    #: threads that resample or Opus-encode live streams' results not at 16 kHz, per process. One
    #: call is one segment's speech (bounded by the segment's length), so a tenant may use every
    #: thread: round robin alone keeps another tenant's result behind one call at most
    result_encode_threads: int = Field(2, ge=1, le=64)
    result_encodes_per_tenant: int = Field(2, ge=1, le=64)
    #: threads that decode and resample live streams' messages over 64 KiB, per process
    stream_decode_threads: int = Field(2, ge=1, le=64)
    stream_decodes_per_tenant: int = Field(1, ge=1, le=64)
    #: threads that write jobs' upload parts to disk as they come (HTTP and gRPC), per process
    part_write_threads: int = Field(2, ge=1, le=64)
    part_writes_per_tenant: int = Field(1, ge=1, le=64)
    #: threads that read jobs' results (JSON, subtitles, dubbed tracks and videos) and recordings'
    #: files to send them, per process
    file_read_threads: int = Field(2, ge=1, le=64)
    file_reads_per_tenant: int = Field(1, ge=1, le=64)


class GrpcPortLimits(BaseModel):
    """The gRPC port: what it reads, its calls and connections, what a caller without a token may
    hold there (health, refused streams: security finding N1), and a stream's receive window (a realtime
    WebSocket's receive buffer too)."""

    #: the largest message the gRPC port takes in (gRPC's receive limit, one for the whole port),
    #: enforced by the transport as bytes arrive: what any one admitted call can make the server
    #: buffer. It must hold a stream message (an audio chunk and its config). 4 MiB, gRPC's own
    #: default: a Translate clip over it goes over TranslateChunked (docs/security.md)
    max_receive_message_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
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
    #: bytes a call's HTTP/2 receive window lets its client send ahead of what the server has read
    #: (fixed: gRPC's BDP probing, which grows it to 4 MiB and more, is off). A stream whose session
    #: stopped reading (max_unread_results reached) holds at most this much more audio; a message
    #: being read gets its whole size on top, so a large Translate clip is not slowed by it. A
    #: realtime WebSocket's kernel receive buffer (SO_RCVBUF) is fixed at it too
    stream_window_bytes: int = Field(256 * 1024, ge=16 * 1024, le=16 * 1024 * 1024)


class HttpPortLimits(BaseModel):
    """The HTTP port (security findings N6, N12): its connections, headers and browser origins, and the
    realtime WebSocket's appends and send buffer."""

    #: the HTTP port (security finding N6), per process: connections open at once, whatever they carry (a
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
    #: the HTTP port's requests that hold their connection past their head (a job's
    #: status long poll ``?wait=``, an upload's part, a download of a job's results), per tenant,
    #: node-wide: beyond, 429 at once, so one tenant's token cannot fill http_max_connections
    http_max_held_requests_per_tenant: int = Field(4, ge=1, le=100_000)
    #: such a request's body (a part) or download slower than this on average, counted from the
    #: handler's start once http_header_timeout_s has passed, is cut: 408 for a body, the
    #: connection closed for a download
    http_min_transfer_bytes_per_s: int = Field(16 * 1024, ge=1, le=1024**3)
    #: browser pages (origins such as "https://app.example.com"; "*": any) that may open a realtime
    #: WebSocket or a WebRTC call, or mint a client secret, on the HTTP port (security finding N12). A request
    #: without an Origin header (not a browser: the SDKs, curl) and one from this server's own pages
    #: (the demo page) need no entry; any other browser request is refused with 403
    http_allowed_origins: list[str] = Field(default_factory=list)
    #: the most audio one ``input_audio_buffer.append`` of the OpenAI-compatible door may carry
    #: (decoded bytes; 3 MiB: 65 s of its 24 kHz PCM16), published in ``session.created``
    #: (``x_limits``); the server splits it into chunks of ``max_chunk_bytes``. A WebSocket message
    #: may be 4/3 of it (base64) and 64 KiB of JSON: what one socket can make the server buffer
    ws_max_append_bytes: int = Field(3 * 1024 * 1024, ge=4800, le=64 * 1024 * 1024)
    #: each realtime WebSocket's kernel send buffer (SO_SNDBUF; Linux doubles it), fixed: what a
    #: client that stops reading lets the server push before its writes wait, so its session stops
    #: a few segments later. Linux would grow it to net.ipv4.tcp_wmem's 4 MiB, where
    #: 4 sockets nobody read had every segment of their audio computed. It also bounds the
    #: socket's bytes in flight: 128 KiB a round trip, 40 times the 24 kHz speech a session sends.
    #: Also what aiohttp's writer queues above the socket before a send waits, and what a WebRTC
    #: call's data channel holds unacknowledged before its next event waits
    ws_send_buffer_bytes: int = Field(64 * 1024, ge=4096, le=16 * 1024 * 1024)


class WebRtcLimits(BaseModel):
    """The WebRTC door (POST .../calls, security findings N9, N10): its offers, candidates, STUN and connect time."""

    #: the WebRTC door (POST .../calls, security findings N9, N10): the largest SDP offer read (a browser's is
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


# every group's fields, flat: ``limits.<field>`` and ``TRANSLATE_SVC_LIMITS__<FIELD>``, as when it was one class
class LimitsSettings(
    RequestLimits, StreamLimits, UnaryLimits, EarLimits, WorkLimits, GrpcPortLimits, HttpPortLimits, WebRtcLimits
):
    """What one request or stream may ask for; reported to clients (ListLanguages, StreamStarted)."""
