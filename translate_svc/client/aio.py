"""The asyncio SDK: ``AsyncTranslateClient`` and its resumable ``AsyncStream``.

Everything here runs on the one event loop the client was first used on (grpc.aio channels belong
to a loop); nothing is thread-safe. ``translate_svc.client.sync`` wraps it for threaded code.

How a stream survives a server going away (docs/client.md): every chunk sent is kept in a
``ReplayBuffer`` until a final result covers it. When the call ends with ``ended{DRAINING}`` (the
server shut down) or is lost (UNAVAILABLE, a dropped connection, no ``ended``), the SDK opens a new
call on the next address with ``StreamingConfig.resume`` = (the stream's resume token, the next
segment id, the resume offset), sends the kept audio again from that offset, and goes on; the
``StreamTracker`` drops whatever the new call repeats. The caller's ``send`` waits while this
happens, and its iteration just sees the next events.

How a stream ends (docs/client.md, "How a stream ends"): on any other ``ended`` the SDK stops
writing, half-closes the call and reads its status; the ``StreamEnd`` carries the reason, the
status code, the server's message and the request id. Only ``HALF_CLOSE`` with OK is clean: after
any other end the iteration yields the ``StreamEnd`` and then raises ``StreamEndedError``, and
``send``/``flush`` raise it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Unpack, get_args

import grpc
import numpy as np

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.audio.limits import OPUS_RATE
from translate_svc.client import _convert as convert
from translate_svc.client._addresses import AddressRotation, is_local, parse_targets
from translate_svc.client._audio import AudioInput, chunk_bytes, clip_input
from translate_svc.client._replay import Chunk, ReplayBuffer
from translate_svc.client._retry import RetryPolicy, is_retryable, retry_delay_from_metadata, retry_delay_of
from translate_svc.client._tracker import StreamTracker
from translate_svc.client.errors import StreamClosedError, StreamEndedError, StreamResumeError, TranslateError
from translate_svc.client.types import (
    AudioFormat,
    ClipEncoding,
    Draining,
    EndReason,
    Languages,
    OutputFields,
    OutputOptions,
    SimultaneousOptions,
    StreamEncoding,
    StreamEnd,
    StreamEvent,
    StreamInfo,
    Term,
    TlsOptions,
    TranslateResult,
    TranslateTextResult,
    VadOptions,
)

logger = logging.getLogger(__name__)

#: the metadata key of a call's request id (the server returns it and logs it)
REQUEST_ID = "x-request-id"

#: the server's largest message (``limits.max_message_bytes``); gRPC clients default to 4 MiB
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
#: keepalive ping interval. The server allows a ping every 10 s even when nothing flows
#: (``transport/server.py`` KEEPALIVE_OPTIONS); a ping more often than the server allows is a strike,
#: and the third closes the connection (GOAWAY ``too_many_pings``). 20 s keeps twice that margin and
#: notices a dead server within about 30 s (docs/client.md, "Keepalive").
DEFAULT_KEEPALIVE_S: Final = 20.0
DEFAULT_KEEPALIVE_TIMEOUT_S: Final = 10.0
#: a resumed call that stayed up this long counts as progress (max_resumes counts resumes in a row)
_HEALTHY_CALL_S: Final = 30.0
#: statuses after which a stream is continued elsewhere (besides ended{DRAINING})
_RESUMABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})
#: grpc-python's own INTERNAL when one of its writes fails on a call that is over (grpc/grpc#36066):
#: it can hide a lost connection's UNAVAILABLE, so it is resumed too (a server's INTERNAL is not)
_CORE_WRITE_FAILURE: Final = "Internal error from Core"
_ROUND_ROBIN: Final = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
#: connections per address that calls are spread over. A server node of several front-end workers
#: shares its port among them, and the kernel balances connections, not the calls on one HTTP/2
#: connection: 16 connections land on every one of 2 workers but for a chance of 2**-15, and give
#: 8 workers about 2 each (docs/client.md, "Connections"). Opened as calls need them.
DEFAULT_CONNECTIONS: Final = 16
#: each stream's HTTP/2 receive window, fixed (gRPC's BDP probing, which grows it to 4 MiB and more,
#: is off): the results the transport takes in ahead of the SDK. A message being read gets its whole
#: size as window on top, so a stream read as it comes is not slowed; one whose caller stops reading
#: stops the server after a few segments instead of ~50 (docs/client.md, "Flow control")
DEFAULT_RECEIVE_WINDOW_BYTES: Final = 64 * 1024
#: events a stream reads ahead of its caller before it stops reading
DEFAULT_BUFFERED_EVENTS: Final = 4


def channel_options(
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keepalive_s: float | None = DEFAULT_KEEPALIVE_S,
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
    server_name: str | None = None,
    receive_window_bytes: int | None = DEFAULT_RECEIVE_WINDOW_BYTES,
) -> list[tuple[str, Any]]:
    """The SDK's channel arguments (exposed for callers who build their own channels).
    ``receive_window_bytes`` None: gRPC's own window (BDP probing)."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.service_config", _ROUND_ROBIN),
    ]
    if receive_window_bytes is not None:
        if receive_window_bytes < 1:
            raise ValueError("receive_window_bytes must be positive (None: gRPC's own window)")
        opts += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", receive_window_bytes)]
    if keepalive_s is not None:
        opts += [
            ("grpc.keepalive_time_ms", round(keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", round(keepalive_timeout_s * 1000)),
            # no pings without a call: gRPC's default server policy counts those as strikes
            ("grpc.keepalive_permit_without_calls", 0),
        ]
    if server_name is not None:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


def _read(path: Path | str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def _credentials(tls: TlsOptions, token: str | None) -> grpc.ChannelCredentials:
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file),
        private_key=_read(tls.key_file),
        certificate_chain=_read(tls.cert_file),
    )
    if token is not None:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return creds


class AsyncTranslateClient:
    """A client for one or more translate_svc servers.

    ``targets``: several ``"host:port"`` addresses (a list or a comma-separated string; the SDK
    picks the next one per call, and the next again on a retry or a stream failover), or one gRPC
    target such as ``"dns:///svc.ns:50051"`` (resolved by gRPC and balanced with ``round_robin``).
    ``tls``: server CA, client certificate (mTLS), name override; None: plaintext. ``token``: sent
    as ``authorization: Bearer <token>`` on every call; without TLS only to a loopback address or
    a Unix socket, unless ``allow_plaintext_token`` says the network is trusted (anyone on the path
    can read a plaintext token and replay it). ``timeout_s``: each unary call's deadline,
    and how long a stream waits for the server to accept it. ``retry``: unary retries (and stream
    opens) on RESOURCE_EXHAUSTED / UNAVAILABLE, honouring the server's RetryInfo. ``max_resumes``:
    stream failovers in a row without progress before giving up. ``connections``: connections per
    address, opened as calls need them; each call takes the next one in turn, so the calls of one
    client spread over a node's front-end workers. ``receive_window_bytes``: each call's HTTP/2
    receive window, fixed (None: gRPC's, grown by BDP probing to MBs): what the transport takes in
    ahead of a stream you stopped reading, so what the server computes for it (docs/client.md,
    "Flow control").

    Use on one event loop; ``close()`` (or ``async with``) releases the channels.
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        tls: TlsOptions | None = None,
        token: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        max_resumes: int = 5,
        keepalive_s: float | None = DEFAULT_KEEPALIVE_S,
        keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        options: Sequence[tuple[str, Any]] = (),
        connections: int = DEFAULT_CONNECTIONS,
        allow_plaintext_token: bool = False,
        receive_window_bytes: int | None = DEFAULT_RECEIVE_WINDOW_BYTES,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.connections = connections
        self.addresses = parse_targets(targets)
        if token is not None and tls is None and not allow_plaintext_token:
            remote = [a for a in self.addresses if not is_local(a)]
            if remote:
                raise ValueError(
                    f"the token would travel in the clear to {remote[0]} (no TLS): connect with "
                    "tls=TlsOptions(...), or pass allow_plaintext_token=True if the network between "
                    "you is trusted (loopback and Unix sockets need neither)"
                )
        self._rotation = AddressRotation(self.addresses)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        if max_resumes < 0:
            raise ValueError("max_resumes must not be negative")
        self.max_resumes = max_resumes
        self._options = [
            *channel_options(
                max_message_bytes=max_message_bytes,
                keepalive_s=keepalive_s,
                keepalive_timeout_s=keepalive_timeout_s,
                server_name=tls.server_name if tls is not None else None,
                receive_window_bytes=receive_window_bytes,
            ),
            *options,
        ]
        self._credentials = _credentials(tls, token) if tls is not None else None
        # plaintext: gRPC refuses call credentials there, so the token travels as call metadata
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None and tls is None else ()
        )
        self._channels: dict[str, list[grpc.aio.Channel]] = {}
        self._turn: dict[str, int] = {}
        self._closed = False

    async def __aenter__(self) -> AsyncTranslateClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        pools, self._channels = list(self._channels.values()), {}
        for pool in pools:
            for ch in pool:
                await ch.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _next_address(self, avoid: str | None = None) -> str:
        return self._rotation.next(avoid)

    def _stub(self, address: str) -> Any:
        if self._closed:
            raise RuntimeError("the client is closed")
        pool = self._channels.setdefault(address, [])
        turn = self._turn.get(address, 0)
        self._turn[address] = (turn + 1) % self.connections
        if turn < len(pool):
            return pb_grpc.TranslatorStub(pool[turn])
        # a connection of its own: gRPC would otherwise share one among equal channels
        options = [*self._options, ("grpc.use_local_subchannel_pool", 1)]
        if self._credentials is not None:
            ch = grpc.aio.secure_channel(address, self._credentials, options=options)
        else:
            ch = grpc.aio.insecure_channel(address, options=options)
        pool.append(ch)
        return pb_grpc.TranslatorStub(ch)

    def _error(
        self, e: grpc.aio.AioRpcError, address: str, attempts: int, request_id: str | None = None
    ) -> TranslateError:
        return TranslateError(
            e.code(),
            e.details() or "",
            retry_delay_s=retry_delay_of(e),
            address=address,
            attempts=attempts,
            request_id=request_id,
        )

    def _metadata_for(self, request_id: str) -> tuple[tuple[str, str], ...]:
        return (*self._metadata, (REQUEST_ID, request_id))

    async def _unary(self, method: str, request: Any, timeout_s: float | None) -> Any:
        """One unary call, retried on the next address after RESOURCE_EXHAUSTED / UNAVAILABLE."""
        avoid: str | None = None
        attempts = self.retry.max_attempts
        request_id = uuid.uuid4().hex  # one per call: its retries keep it
        for attempt in range(1, attempts + 1):
            address = self._next_address(avoid)
            try:
                return await getattr(self._stub(address), method)(
                    request, timeout=timeout_s or self.timeout_s, metadata=self._metadata_for(request_id)
                )
            except grpc.aio.AioRpcError as e:
                err = self._error(e, address, attempt, request_id)
                if not is_retryable(err.code) or attempt == attempts:
                    raise err from e
                delay = self.retry.delay_s(attempt, err.retry_delay_s)
                logger.warning(
                    "%s on %s failed with %s (%s); retrying in %.2f s%s",
                    method,
                    address,
                    err.code.name,
                    err.message,
                    delay,
                    " as the server asked" if err.retry_delay_s is not None else "",
                )
                avoid = address
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # -- the API -----------------------------------------------------------------------------

    async def languages(self, *, timeout_s: float | None = None) -> Languages:
        """The loaded model's languages, model card and this server's limits."""
        resp = await self._unary("ListLanguages", pb.ListLanguagesRequest(), timeout_s)
        return convert.languages(resp)

    async def translate(
        self,
        audio: AudioInput,
        *,
        targets: str | Sequence[str],
        source: str | None = None,
        detect: bool | Sequence[str] = False,
        terms: Sequence[Term | str] = (),
        format: AudioFormat | None = None,
        sample_rate: int | None = None,
        encoding: ClipEncoding | None = None,
        channels: int | None = None,
        output: OutputOptions | None = None,
        vad: VadOptions | None = None,
        timeout_s: float | None = None,
        **output_fields: Unpack[OutputFields],
    ) -> TranslateResult:
        """Translate a whole clip: file bytes or a path (any container the server reads), raw bytes
        with their ``format`` (or ``encoding`` and ``sample_rate``), or a float/int16 numpy array
        with its ``sample_rate``. ``output`` (or its fields as keywords: ``speech=False``) says what
        each segment carries. ``targets=()`` with ``source`` (or ``detect``): ASR only, the
        transcript alone. ``detect``: each segment's spoken language is identified instead of
        taking ``source`` (True: any language the identifier picks; or the candidates, e.g.
        ``["eng", "spa"]``); ``Segment.language_scores`` carries the scores. ``terms``: names
        and jargon to get right (``Term``; a ``str`` is a boost)."""
        if format is not None:
            if (sample_rate, encoding, channels) != (None, None, None):
                raise ValueError("give format= or encoding=/sample_rate=/channels=, not both")
            if format.encoding == "opus":
                raise ValueError("translate takes no Opus packets: send a WebM/Ogg file, or stream them")
            encoding, sample_rate, channels = format.encoding, format.sample_rate, format.channels
        content, enc, rate, ch = await asyncio.to_thread(
            clip_input, audio, encoding=encoding, sample_rate=sample_rate, channels=channels
        )
        request = pb.TranslateRequest(
            audio=pb.AudioInput(
                content=content,
                format=pb.AudioFormat(encoding=convert.encoding_pb(enc), sample_rate_hz=rate, channels=ch),
            ),
            source_language=source or "",
            target_languages=convert.targets_list(targets, asr=bool(source) or detect is not False),
            output=convert.output_pb(_output(output, output_fields)),
            vad=convert.vad_pb(vad),
            language_detection=convert.detection_pb(detect),
            terms=convert.terms_pb(terms),
        )
        resp = await self._unary("Translate", request, timeout_s)
        return convert.translate_result(resp)

    async def translate_text(
        self,
        texts: str | Sequence[str],
        *,
        source: str,
        targets: str | Sequence[str],
        terms: Sequence[Term | str] = (),
        output: OutputOptions | None = None,
        timeout_s: float | None = None,
        **output_fields: Unpack[OutputFields],
    ) -> TranslateTextResult:
        """Translate text (one ``str`` or several, each on its own) from ``source`` into every
        target, with its speech unless ``speech=False``. ``output`` (or its fields as keywords)
        as in ``translate``: ``text``, ``speech``, ``speech_sample_rate``, ``speaker_id``,
        ``speech_encoding`` (``transcript`` does not apply). ``terms``: as in ``translate``; a
        kept phrase (``Term(..., keep=True)``) found in a text is carried verbatim. Limits:
        ``ServerLimits.max_texts``, ``max_text_chars``, ``max_text_request_chars``."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        request = pb.TranslateTextRequest(
            texts=batch,
            source_language=source,
            target_languages=convert.targets_list(targets, asr=True),  # none: the server says what to send
            output=convert.output_pb(_output(output, output_fields)),
            terms=convert.terms_pb(terms),
        )
        resp = await self._unary("TranslateText", request, timeout_s)
        return convert.translate_text_result(batch, resp)

    def stream(
        self,
        *,
        targets: str | Sequence[str],
        source: str | None = None,
        detect: bool | Sequence[str] = False,
        terms: Sequence[Term | str] = (),
        format: AudioFormat | None = None,
        encoding: StreamEncoding | None = None,
        sample_rate: int | None = None,
        channels: int | None = None,
        interim_ms: int = 0,
        simultaneous: bool | SimultaneousOptions = False,
        output: OutputOptions | None = None,
        vad: VadOptions | None = None,
        packet_ms: float = 20.0,
        max_replay_s: float | None = 300.0,
        timeout_s: float | None = None,
        max_buffered_events: int = DEFAULT_BUFFERED_EVENTS,
        **output_fields: Unpack[OutputFields],
    ) -> AsyncStream:
        """A live stream; use as ``async with client.stream(...) as s:``.

        ``format`` (or ``encoding``, ``sample_rate``, ``channels``; default 16 kHz mono linear16):
        the audio ``send`` takes. ``encoding="opus"``: one Opus packet per ``send`` (48 kHz timeline;
        ``sample_rate`` is then 48000). ``output`` (or its fields as keywords: ``speech=False``):
        what each segment carries. ``packet_ms``: the duration assumed for an Opus packet whose
        length cannot be read from its header and that comes without a timestamp.
        ``max_replay_s``: the most audio kept for a resume while no final result arrives.
        ``timeout_s``: a deadline for the whole stream (None: none). ``max_buffered_events``: events
        read ahead of the caller before the SDK stops reading (then the server computes a few
        segments more and stops reading the audio: ``send`` waits; iterate in another task).
        ``targets``, ``source``, ``detect`` (ASR only, language detection) and ``terms``: as in
        ``translate``. ``simultaneous``: True or ``SimultaneousOptions(step_ms,
        agreement)`` for simultaneous interpretation: ``Commit`` events (words and their speech)
        while the speaker talks, before each segment's ``Segment`` (docs/client.md).
        """
        if max_buffered_events < 1:
            raise ValueError("max_buffered_events must be at least 1")
        fmt, enc = _stream_format(format, encoding, sample_rate, channels)
        config = pb.StreamingConfig(
            format=convert.format_pb(fmt),
            source_language=source or "",
            target_languages=convert.targets_list(targets, asr=bool(source) or detect is not False),
            output=convert.output_pb(_output(output, output_fields)),
            interim_interval_ms=interim_ms,
            vad=convert.vad_pb(vad),
            language_detection=convert.detection_pb(detect),
            terms=convert.terms_pb(terms),
            simultaneous=convert.simultaneous_pb(simultaneous),
        )
        buffer = ReplayBuffer(
            rate=fmt.sample_rate, frame_bytes=fmt.frame_bytes, packet_ms=packet_ms, max_seconds=max_replay_s
        )
        return AsyncStream(
            self,
            config,
            encoding=enc,
            buffer=buffer,
            timeout_s=timeout_s,
            max_buffered_events=max_buffered_events,
        )


def _output(output: OutputOptions | None, fields: OutputFields) -> OutputOptions:
    """``output`` with the keyword arguments given in its place (they win)."""
    return dataclasses.replace(output or OutputOptions(), **fields)


def _stream_format(
    fmt: AudioFormat | None, encoding: StreamEncoding | None, sample_rate: int | None, channels: int | None
) -> tuple[AudioFormat, StreamEncoding]:
    """A stream's ``format=``, or the one its ``encoding``/``sample_rate``/``channels`` describe."""
    if fmt is not None:
        if (encoding, sample_rate, channels) != (None, None, None):
            raise ValueError("give format= or encoding=/sample_rate=/channels=, not both")
        if fmt.encoding == "container":
            raise ValueError("a stream takes headerless audio or Opus packets, not a container file")
        encoding, sample_rate, channels = fmt.encoding, fmt.sample_rate, fmt.channels
    enc: StreamEncoding = encoding or "linear16"
    if enc not in get_args(StreamEncoding):
        raise ValueError(f"stream encoding {enc!r}: use linear16, float32, mulaw, alaw or opus")
    if enc == "opus":
        if sample_rate not in (None, 0, OPUS_RATE, 16000):
            raise ValueError("Opus streams run on a 48 kHz timeline: leave sample_rate at 48000")
        sample_rate = OPUS_RATE
    if channels not in (None, 1, 2):
        raise ValueError("channels must be 1 or 2")
    rate = 16000 if sample_rate is None else sample_rate
    return AudioFormat(enc, rate, 1 if channels is None else channels), enc


class _Outcome:
    """How one call of a stream ended."""

    def __init__(self, kind: str, *, end: StreamEnd | None = None, error: TranslateError | None = None) -> None:
        self.kind = kind  # "end": the stream is over; "drained" / "lost": resume elsewhere
        self.end = end
        self.error = error  # "end": the StreamEndedError to raise after ``end`` (None: a clean end)


class AsyncStream:
    """One live stream, continued across servers. Use ``async with`` (it opens the stream and
    cancels it on exit), ``send``/``flush``/``close`` from one task and iterate from another (or
    the same, interleaved).

    The iteration yields results and notices, and last the ``StreamEnd`` (also ``ended``). A
    clean end (you called ``close()``, the server answered OK) then stops the iteration; any
    other end (``QUOTA``, ``REVOKED``, ``ERROR``, ``IDLE_TIMEOUT``, ``MAX_STREAM_DURATION``)
    raises ``StreamEndedError`` on the next step, and ``send``/``flush`` raise it too. A drain or a
    dead model worker is no end: the stream resumes elsewhere.

    Event loop only. ``send`` waits while the server's flow control holds the stream and while
    the stream is being resumed.
    """

    def __init__(
        self,
        client: AsyncTranslateClient,
        config: pb.StreamingConfig,
        *,
        encoding: StreamEncoding,
        buffer: ReplayBuffer,
        timeout_s: float | None,
        max_buffered_events: int,
    ) -> None:
        self._client = client
        self._config = config
        self._encoding: StreamEncoding = encoding
        self._buffer = buffer
        self._tracker = StreamTracker()
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._events: asyncio.Queue[StreamEvent] = asyncio.Queue(max_buffered_events)
        self._wake = asyncio.Event()  # set when an event is queued or the pump ends
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._call: Any = None  # the current call (being read)
        self._writable: Any = None  # the current call once it may take new chunks (after any replay)
        self._covered_seq = -1  # chunks up to this seq were sent again by the last replay
        self._timestamped = False  # after a resume every chunk goes as AudioPacket with its timestamp
        self._half_closed = False
        self._failure: BaseException | None = None
        self._ended: StreamEnd | None = None
        self._over = False  # StreamEnd (or a failure) reached the queue
        self._iter_done = False
        self._pump: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._token = ""
        #: updates sent and not answered yet: a resumed call gets them again
        self._unanswered: list[pb.StreamingTranslateRequest] = []
        #: this stream's ``x-request-id``, sent with each of its calls (resumes included)
        self.request_id = uuid.uuid4().hex
        self._call_started = 0.0
        #: what the server said when the current call started
        self.info: StreamInfo | None = None
        #: how many times the stream moved to another call
        self.resumes = 0
        #: results a resumed call repeated and the SDK dropped (segments, commits, captions, speech events)
        self.repeats_dropped = 0

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStream:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the stream (the first call), retrying RESOURCE_EXHAUSTED / UNAVAILABLE elsewhere."""
        if self._pump is not None:
            return
        call, info = await self._open(None, avoid=None)
        self._token = info.resume_token
        self._install(call, info, None)
        self._pump = asyncio.create_task(self._run(), name=f"stream-{info.session_id}")
        self._pump.add_done_callback(lambda _: self._wake.set())

    async def aclose(self) -> None:
        """Stop now: cancel the call and the SDK's tasks (results not yet delivered are dropped)."""
        self._over = True
        tasks = [t for t in (self._pump, self._replay) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._call is not None:
            self._call.cancel()
        self._writable = None
        self._notify()

    @property
    def ended(self) -> StreamEnd | None:
        """How the stream ended (reason, status code, the server's message, totals), once the SDK
        has read its end; the iteration yields the same ``StreamEnd`` after every result. None
        while the stream lives, and after a failure without an end (``StreamResumeError``)."""
        return self._ended

    @property
    def resume_offset_ms(self) -> int:
        """Where the stream would resume now (the end of the last final result, or a drain's offset)."""
        return self._tracker.resume_offset_ms

    # -- the caller's side -----------------------------------------------------------------------

    async def send(
        self, chunk: bytes | bytearray | memoryview | np.ndarray[Any, Any], timestamp: int | None = None
    ) -> None:
        """Send audio: raw bytes/an array in the stream's encoding (any whole number of frames), or one
        Opus packet. ``timestamp``: where its first sample lies, in samples at the stream's rate
        (Opus: 48 kHz) since the stream's first sample (RTP timestamps, unwrapped); gaps are filled
        with silence by the server. Waits under flow control and while the stream is resumed."""
        data = chunk_bytes(chunk, self._encoding)
        async with self._send_lock:
            self._check_open()
            c = self._buffer.append(data, timestamp)
            await self._deliver(c)

    async def flush(self) -> None:
        """End the current segment now, as if the speaker paused."""
        async with self._send_lock:
            self._check_open()
            await self._deliver(self._buffer.append_flush())

    async def update(self, *, target_languages: Sequence[str] | None = None, speaker_id: int | None = None) -> None:
        """Change the stream's targets (the whole new list) or voice while it runs: segments that
        close from now on use them, segments already closed keep theirs (docs/api.md). The
        server answers with a ``StreamUpdated`` event in the iteration (``error`` set when it
        refused: the stream goes on unchanged). An update the server has not answered when the
        stream moves to another server is sent again there; one it accepted is part of the
        stream's config from then on."""
        if target_languages is None and speaker_id is None:
            raise ValueError("update() changes nothing: pass target_languages, speaker_id, or both")
        msg = pb.StreamUpdate()
        if target_languages is not None:
            msg.targets.SetInParent()
            msg.targets.languages.extend(target_languages)
        if speaker_id is not None:
            msg.speaker_id = speaker_id
        request = pb.StreamingTranslateRequest(update=msg)
        async with self._send_lock:
            self._check_open()
            self._unanswered.append(request)
            call = self._writable
            if call is None:
                return  # being resumed: the new call gets it (``_send_again``)
            with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                await call.write(request)  # a call lost meanwhile: its replacement gets it

    async def close(self) -> None:
        """Half-close: no more audio. Iterate on to get the remaining results and the StreamEnd."""
        async with self._send_lock:
            if self._half_closed or self._over:
                return
            self._half_closed = True
            call = self._writable
            if call is not None:
                with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                    await call.done_writing()
                # a call lost meanwhile is half-closed by its replacement's replay

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._iter_done:
            raise StopAsyncIteration
        pump = self._pump
        if pump is None:
            raise RuntimeError("the stream is not started: use `async with client.stream(...) as s`")
        while self._events.empty() and not pump.done():
            self._wake.clear()
            await self._wake.wait()
        if not self._events.empty():
            return self._events.get_nowait()
        self._iter_done = True  # the pump is over and everything it read was delivered
        if self._failure is not None:
            raise self._failure
        raise StopAsyncIteration

    def _check_open(self) -> None:
        if isinstance(self._failure, StreamEndedError):
            raise self._failure
        if self._failure is not None:
            raise StreamClosedError(f"the stream failed: {self._failure}") from self._failure
        if self._half_closed:
            raise StreamClosedError("the stream was half-closed (close()): no more audio can be sent")
        if self._over:
            raise StreamClosedError("the stream has ended")
        if self._pump is None:
            raise StreamClosedError("the stream is not started: use `async with client.stream(...) as s`")

    async def _deliver(self, c: Chunk) -> None:
        """Write ``c`` on the current call; if that call breaks, the resume's replay carries it."""
        while True:
            if self._failure is not None or self._over:
                self._check_open()
            if c.seq <= self._covered_seq:
                return  # a resume's replay sent it
            call = self._writable
            changed = self._changed
            if call is None:
                await changed.wait()
                continue
            try:
                await call.write(self._request(c))
                return
            except (grpc.RpcError, asyncio.InvalidStateError):
                pass  # the call is over; the pump sees why and resumes (or fails)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # our caller is cancelled, not the call
            if self._writable is call:
                self._writable = None
            await changed.wait()

    def _request(self, c: Chunk) -> pb.StreamingTranslateRequest:
        if c.data is None:
            return pb.StreamingTranslateRequest(control=pb.FLUSH)
        if self._timestamped or c.timestamped:
            return pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=c.data, timestamp=c.start))
        return pb.StreamingTranslateRequest(audio=c.data)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- calls -----------------------------------------------------------------------------------

    def _remaining_s(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            message = "the stream's deadline (timeout_s) passed"
            raise TranslateError(grpc.StatusCode.DEADLINE_EXCEEDED, message, request_id=self.request_id)
        return left

    async def _open(self, resume: pb.ResumeFrom | None, *, avoid: str | None) -> tuple[Any, StreamInfo]:
        """A new call that the server accepted (``started`` received), on the next address."""
        client = self._client
        attempts = client.retry.max_attempts
        config = pb.StreamingConfig()
        config.CopyFrom(self._config)
        if resume is not None:
            config.resume.CopyFrom(resume)
        first_msg = pb.StreamingTranslateRequest(config=config)
        for attempt in range(1, attempts + 1):
            address = client._next_address(avoid)
            call = client._stub(address).StreamingTranslate(
                timeout=self._remaining_s(), metadata=client._metadata_for(self.request_id)
            )
            try:
                with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                    await call.write(first_msg)  # a refusal shows on the read below
                try:
                    first = await asyncio.wait_for(call.read(), client.timeout_s)
                except TimeoutError:
                    call.cancel()
                    raise TranslateError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"{address} did not accept the stream within {client.timeout_s:g} s",
                        address=address,
                        request_id=self.request_id,
                    ) from None
                if first is grpc.aio.EOF or not first.HasField("started"):
                    call.cancel()
                    raise TranslateError(
                        grpc.StatusCode.INTERNAL,
                        f"{address} did not start the stream with `started`",
                        address=address,
                        request_id=self.request_id,
                    )
            except grpc.aio.AioRpcError as e:
                err = client._error(e, address, attempt, self.request_id)
            except TranslateError as e:
                err = e
            else:
                s = first.started
                info = StreamInfo(
                    session_id=s.session_id,
                    resume_token=s.resume_token or self._token,
                    model=convert.model_info(s.model),
                    limits=convert.limits(s.limits),
                    address=address,
                    simultaneous=convert.simultaneous(s.config),
                )
                return call, info
            if not is_retryable(err.code) or attempt == attempts:
                err.attempts = attempt
                raise err
            delay = client.retry.delay_s(attempt, err.retry_delay_s)
            logger.warning(
                "opening the stream on %s failed with %s (%s); trying again in %.2f s",
                address,
                err.code.name,
                err.message,
                delay,
            )
            avoid = address
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _install(self, call: Any, info: StreamInfo, offset_ms: int | None) -> None:
        """Make ``call`` current: read it now; let new chunks onto it once the kept audio from
        ``offset_ms`` (a resume) is sent again. Synchronous: the replay is exactly the buffer now."""
        self._call = call
        self.info = info
        self._call_started = time.monotonic()
        if offset_ms is None:
            self._writable = call
            self._notify()
            return
        _, chunks = self._buffer.replay_from(offset_ms)
        self._covered_seq = self._buffer.last_seq  # a send waiting with a chunk: the replay carries it
        self._replay = asyncio.create_task(self._send_again(call, chunks), name=f"replay-{info.session_id}")

    async def _send_again(self, call: Any, chunks: list[Chunk]) -> None:
        try:
            for u in list(self._unanswered):
                await call.write(u)
            for c in chunks:
                await call.write(self._request(c))
            if self._half_closed:
                await call.done_writing()
        except (grpc.RpcError, asyncio.InvalidStateError):
            return  # the call broke again: the pump resumes once more
        if self._call is call:
            self._writable = call
            self._notify()

    # -- the pump: reads every call, resumes lost ones -------------------------------------------

    async def _run(self) -> None:
        try:
            in_a_row = 0
            last_progress = self._tracker.progress()
            while True:
                outcome = await self._read_call(self._call)
                if outcome.kind == "end":
                    assert outcome.end is not None
                    self._ended = outcome.end
                    await self._put(outcome.end)
                    if outcome.error is not None:
                        raise outcome.error  # after the StreamEnd: the iteration yields it first
                    return
                failed = self.info.address if self.info is not None else None
                healthy = time.monotonic() - self._call_started >= _HEALTHY_CALL_S
                progress = self._tracker.progress()
                in_a_row = 1 if (progress != last_progress or healthy) else in_a_row + 1
                last_progress = progress
                if in_a_row > self._client.max_resumes:
                    raise StreamResumeError(
                        outcome.error.code if outcome.error else grpc.StatusCode.UNAVAILABLE,
                        f"the stream was lost {in_a_row} times in a row without progress "
                        f"(max_resumes={self._client.max_resumes}); last: {outcome.error or 'drained'}",
                        resume_offset_ms=self._tracker.resume_offset_ms,
                        attempts=in_a_row,
                        request_id=self.request_id,
                    ) from outcome.error
                await self._resume(failed, outcome)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._failure = e
            logger.warning("%s", e if isinstance(e, StreamEndedError) else f"the stream failed: {e}")
        finally:
            self._over = True
            self._writable = None
            if self._call is not None:
                self._call.cancel()
            self._notify()

    async def _put(self, ev: StreamEvent) -> None:
        await self._events.put(ev)  # waits while the caller is max_buffered_events behind
        self._wake.set()

    async def _read_call(self, call: Any) -> _Outcome:
        tracker = self._tracker
        try:
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    code = await call.code()
                    return _Outcome(
                        "lost",
                        error=TranslateError(
                            code, "the call ended without `ended`", address=self._address(), request_id=self.request_id
                        ),
                    )
                kind = msg.WhichOneof("response")
                if kind == "segment":
                    seg = convert.segment(msg.segment)
                    if tracker.segment(seg):
                        self._buffer.trim(tracker.resume_offset_ms)
                        await self._put(seg)
                    else:
                        self.repeats_dropped += 1
                elif kind == "commit":
                    com = tracker.commit(convert.commit(msg.commit))
                    if com is not None:
                        await self._put(com)
                    else:
                        self.repeats_dropped += 1
                elif kind == "speech_event":
                    ev = convert.speech_event(msg.speech_event)
                    if ev is not None and tracker.speech(ev):
                        await self._put(ev)
                    elif ev is not None:
                        self.repeats_dropped += 1
                elif kind == "interim":
                    cap = convert.interim(msg.interim)
                    if tracker.interim(cap):
                        await self._put(cap)
                    else:
                        self.repeats_dropped += 1
                elif kind == "updated":
                    u = convert.updated(msg.updated)
                    if self._unanswered:
                        self._unanswered.pop(0)
                    if u.error is None:  # from now on part of the stream: a resume opens with it
                        del self._config.target_languages[:]
                        self._config.target_languages.extend(u.target_languages)
                        if u.speaker_id or self._config.HasField("output"):
                            self._config.output.speaker_id = u.speaker_id
                    await self._put(u)
                elif kind == "draining":
                    d: Draining = convert.draining(msg.draining)
                    logger.info("%s is shutting down: the stream moves in %d ms", self._address(), d.remaining_ms)
                    await self._put(d)
                elif kind == "ended":
                    end = convert.stream_end(msg.ended)
                    if end.reason is EndReason.DRAINING:
                        tracker.drained(end.resume_offset_ms)
                        self._buffer.trim(tracker.resume_offset_ms)
                        return _Outcome("drained")
                    if end.reason is EndReason.ENGINE_FAILED:  # its status (UNAVAILABLE) follows: resume
                        code = await call.code()
                        details = await call.details()
                        error = TranslateError(code, details, address=self._address(), request_id=self.request_id)
                        return _Outcome("lost", error=error)
                    return await self._ending(call, end)
        except grpc.aio.AioRpcError as e:
            err = self._client._error(e, self._address() or "", 1, self.request_id)
            if e.code() in _RESUMABLE or (
                e.code() is grpc.StatusCode.INTERNAL and (e.details() or "") == _CORE_WRITE_FAILURE
            ):
                return _Outcome("lost", error=err)
            raise err from e

    async def _ending(self, call: Any, end: StreamEnd) -> _Outcome:
        """The stream's ``ended``, with the status the server then ends the call with. The server
        holds a failed call open until its client stops sending (so that a client mid-write gets
        the status, not its own write failure), so the SDK stops writing and half-closes first."""
        self._writable = None  # a send from now on waits for the pump's end, then raises
        self._notify()
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            await call.done_writing()  # idempotent; a no-op after close()
        try:
            # shielded: a cancelled wait must not cancel the call's status
            code = await asyncio.wait_for(asyncio.shield(call.code()), self._client.timeout_s)
            message = await call.details() or ""
            retry_delay_s = retry_delay_from_metadata(await call.trailing_metadata())
        except TimeoutError:
            call.cancel()
            code, retry_delay_s = grpc.StatusCode.UNKNOWN, None
            message = f"the server sent `ended` but no status within {self._client.timeout_s:g} s"
        end = dataclasses.replace(end, code=code, message=message, request_id=self.request_id)
        if end.clean:
            return _Outcome("end", end=end)
        error = StreamEndedError(end, retry_delay_s=retry_delay_s, address=self._address())
        return _Outcome("end", end=end, error=error)

    def _address(self) -> str | None:
        return self.info.address if self.info is not None else None

    async def _resume(self, failed: str | None, outcome: _Outcome) -> None:
        """Continue the stream on a new call: resume token, next id, offset; then send the kept audio again."""
        old = self._call
        self._writable = None
        self._notify()
        if self._replay is not None and not self._replay.done():
            self._replay.cancel()
            await asyncio.gather(self._replay, return_exceptions=True)
        old.cancel()
        offset_ms = self._tracker.resume_offset_ms
        if self._buffer.dropped_to > self._buffer.frame_at(offset_ms):
            logger.warning(
                "resuming at %d ms, but audio up to %.0f ms was dropped from the replay buffer (max_replay_s): "
                "that audio is not translated",
                offset_ms,
                self._buffer.dropped_to * 1000 / self._buffer.rate,
            )
        resume_ms, chunks = self._buffer.replay_from(offset_ms)  # chunks: logged; sent as of _install
        resume = pb.ResumeFrom(
            resume_token=self._token, next_segment_id=self._tracker.next_segment_id, offset_ms=resume_ms
        )
        why = "it drained" if outcome.kind == "drained" else f"the call was lost ({outcome.error})"
        logger.info(
            "resuming the stream after %s: from %d ms, segment %d, %d chunk(s) to send again",
            why,
            resume_ms,
            resume.next_segment_id,
            len(chunks),
        )
        try:
            call, info = await self._open(resume, avoid=failed)
        except TranslateError as e:
            raise StreamResumeError(
                e.code,
                f"the stream could not be resumed on any server: {e.message}",
                resume_offset_ms=offset_ms,
                attempts=e.attempts,
                request_id=self.request_id,
            ) from e
        self.resumes += 1
        self._tracker.new_call()
        self._timestamped = True
        self._install(call, info, offset_ms)
