"""``AsyncTranslateClient``: the client, its connections and its unary calls, and where its live
streams are made (``stream()``; the stream itself is ``_stream.AsyncStream``).

Event loop only (grpc.aio channels belong to the loop they were first used on); nothing is
thread-safe. ``translate_svc.client.sync`` wraps it for threaded code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Unpack, get_args

import grpc

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import _convert as convert
from translate_svc.client._addresses import AddressRotation, is_local, parse_targets
from translate_svc.client._audio import AudioInput, clip_input
from translate_svc.client._replay import ReplayBuffer
from translate_svc.client._retry import RetryPolicy, is_retryable, retry_delay_of
from translate_svc.client.aio._channels import (
    ConnectionFields,
    ConnectionOptions,
    channel_options,
    credentials,
)
from translate_svc.client.aio._detect import DetectCalls
from translate_svc.client.aio._glossaries import GlossaryCalls
from translate_svc.client.aio._jobs import JobCalls
from translate_svc.client.aio._listen import AsyncListener
from translate_svc.client.aio._stream import AsyncStream
from translate_svc.client.errors import TranslateError
from translate_svc.client.room_types import Room
from translate_svc.client.types import (
    AudioFormat,
    ClipEncoding,
    Conversation,
    Languages,
    OutputFields,
    OutputOptions,
    SimultaneousOptions,
    StreamEncoding,
    Term,
    TranslateResult,
    TranslateTextResult,
    VadOptions,
)
from translate_svc.wire.rates import OPUS_RATE

logger = logging.getLogger(__name__)

#: the metadata key of a call's request id (the server returns it and logs it)
REQUEST_ID = "x-request-id"
#: events a stream reads ahead of its caller before it stops reading
DEFAULT_BUFFERED_EVENTS: Final = 4
#: a clip travels over TranslateChunked in messages of this much audio: within every server's
#: per-message limit (``ServerLimits.max_stream_message_bytes``: 64 KiB + ``max_chunk_bytes``, 1 MiB
#: by default) unless its operator set ``max_chunk_bytes`` below it
CLIP_CHUNK_BYTES: Final = 256 * 1024


class AsyncTranslateClient(GlossaryCalls, JobCalls, DetectCalls):
    """A client for one or more translate_svc servers.

    ``targets``: several ``"host:port"`` addresses (a list or a comma-separated string; the SDK
    picks the next one per call, and the next again on a retry or a stream failover), or one gRPC
    target such as ``"dns:///svc.ns:50051"`` (resolved by gRPC and balanced with ``round_robin``).

    How it reaches them: a ``ConnectionOptions`` (``connection=``), or its fields as keyword
    arguments (``tls=``, ``token=``, ``timeout_s=``, ``retry=``, ``connections=``...; those given
    win over ``connection=``'s). ``ConnectionOptions`` says what each one does.

    Use on one event loop; ``close()`` (or ``async with``) releases the channels.
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        connection: ConnectionOptions | None = None,
        **fields: Unpack[ConnectionFields],
    ) -> None:
        c = dataclasses.replace(connection or ConnectionOptions(), **fields)
        self.connections = c.connections
        self.addresses = parse_targets(targets)
        if c.token is not None and c.tls is None and not c.allow_plaintext_token:
            remote = [a for a in self.addresses if not is_local(a)]
            if remote:
                raise ValueError(
                    f"the token would travel in the clear to {remote[0]} (no TLS): connect with "
                    "tls=TlsOptions(...), or pass allow_plaintext_token=True if the network between "
                    "you is trusted (loopback and Unix sockets need neither)"
                )
        self._rotation = AddressRotation(self.addresses)
        self.timeout_s = c.timeout_s
        self.retry = c.retry or RetryPolicy()
        self.max_resumes = c.max_resumes
        self._options = [
            *channel_options(
                max_message_bytes=c.max_message_bytes,
                keepalive_s=c.keepalive_s,
                keepalive_timeout_s=c.keepalive_timeout_s,
                server_name=c.tls.server_name if c.tls is not None else None,
                receive_window_bytes=c.receive_window_bytes,
            ),
            *c.options,
        ]
        self._credentials = credentials(c.tls, c.token) if c.tls is not None else None
        # plaintext: gRPC refuses call credentials there, so the token travels as call metadata
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {c.token}"),) if c.token is not None and c.tls is None else ()
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

    def _stub(self, address: str, service: str = "Translator") -> Any:
        if self._closed:
            raise RuntimeError("the client is closed")
        pool = self._channels.setdefault(address, [])
        turn = self._turn.get(address, 0)
        self._turn[address] = (turn + 1) % self.connections
        stub: Callable[[grpc.aio.Channel], Any] = pb_grpc.TranslatorStub
        if service == "Glossaries":
            stub = pb_grpc.GlossariesStub
        elif service == "Jobs":
            stub = pb_grpc.JobsStub
        if turn < len(pool):
            return stub(pool[turn])
        # a connection of its own: gRPC would otherwise share one among equal channels
        options = [*self._options, ("grpc.use_local_subchannel_pool", 1)]
        if self._credentials is not None:
            ch = grpc.aio.secure_channel(address, self._credentials, options=options)
        else:
            ch = grpc.aio.insecure_channel(address, options=options)
        pool.append(ch)
        return stub(ch)

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

    async def _unary(
        self,
        method: str,
        request: Any,
        timeout_s: float | None,
        *,
        messages: Callable[[], Iterator[Any]] | None = None,
        service: str = "Translator",
    ) -> Any:
        """One unary call, retried on the next address after RESOURCE_EXHAUSTED / UNAVAILABLE.
        ``messages``: a client-streaming call's messages, made anew for each attempt (``request``
        is then unused). ``service``: Translator, or Glossaries."""
        avoid: str | None = None
        attempts = self.retry.max_attempts
        request_id = uuid.uuid4().hex  # one per call: its retries keep it
        for attempt in range(1, attempts + 1):
            address = self._next_address(avoid)
            try:
                return await getattr(self._stub(address, service), method)(
                    messages() if messages is not None else request,
                    timeout=timeout_s or self.timeout_s,
                    metadata=self._metadata_for(request_id),
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
        conversation: str | Sequence[str] | Conversation | None = None,
        terms: Sequence[Term | str] = (),
        glossaries: Sequence[str] = (),
        format: AudioFormat | None = None,
        sample_rate: int | None = None,
        encoding: ClipEncoding | None = None,
        channels: int | None = None,
        output: OutputOptions | None = None,
        vad: VadOptions | None = None,
        timeout_s: float | None = None,
        noise_suppression: bool = False,
        speakers: int = 0,
        separate_channels: bool = False,
        **output_fields: Unpack[OutputFields],
    ) -> TranslateResult:
        """Translate a whole clip: file bytes or a path (any container the server reads), raw bytes
        with their ``format`` (or ``encoding`` and ``sample_rate``), or a float/int16 numpy array
        with its ``sample_rate``. ``output`` (or its fields as keywords: ``speech=False``) says what
        each segment carries. ``targets=()`` with ``source`` (or ``detect``): ASR only, the
        transcript alone. ``detect``: each segment's spoken language is identified instead of
        taking ``source`` (True: any language the identifier picks; or the candidates, e.g.
        ``["eng", "spa"]``); ``Segment.language_scores`` carries the scores. ``conversation``: its
        languages (``["eng", "spa"]``, with ``targets=()``): each segment is identified among them
        and translated into the others (docs/api.md "Conversations"). ``terms``: names
        and jargon to get right (``Term``; a ``str`` is a boost). ``noise_suppression``: RNNoise on
        the audio before the server's VAD; ``speakers``: label each segment's speaker
        (``Segment.speaker``), telling apart at most this many (1..8; docs/api.md). ``glossaries``: stored
        glossaries by id (``create_glossary``): their entries for ``targets`` act as glossary terms.
        ``separate_channels``: a stereo clip's channels each translated on its own, one party each
        (``Segment.channel``, 1 or 2, also its ``speaker``), merged in source-time order."""
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
                format=pb.AudioFormat(encoding=convert.encoding_pb(enc), sample_rate_hz=rate, channels=ch),
            ),
            **convert.languages_pb(targets, source, detect, conversation),
            output=convert.output_pb(_output(output, output_fields)),
            vad=convert.vad_pb(vad),
            terms=convert.terms_pb(terms),
            noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE if noise_suppression else pb.NOISE_SUPPRESSION_OFF,
            speakers=speakers,
            glossaries=list(glossaries),
            channel_mode=pb.CHANNEL_MODE_SEPARATE if separate_channels else pb.CHANNEL_MODE_MIXED,
        )
        resp = await self._translate_clip(request, content, timeout_s)
        return convert.translate_result(resp)

    async def _translate_clip(
        self, request: pb.TranslateRequest, content: bytes, timeout_s: float | None
    ) -> pb.TranslateResponse:
        """The clip over ``TranslateChunked``: the request with its first ``CLIP_CHUNK_BYTES``, then the
        rest in chunks of that size, so a clip of any size up to the server's
        ``ServerLimits.max_message_bytes`` passes its per-message receive limit (4 MiB by default).
        A server from before TranslateChunked answers UNIMPLEMENTED: the clip then goes whole over
        ``Translate``, which such a server takes up to its ``max_message_bytes`` in one message.
        While chunks are still in flight that answer can reach us as INTERNAL instead (the older
        server resets a stream it has no method for, beyond its small receive window): then an empty
        call asks again, and only its UNIMPLEMENTED means an older server."""

        def messages() -> Iterator[pb.TranslateRequest]:
            first = pb.TranslateRequest()
            first.CopyFrom(request)
            first.audio.content = content[:CLIP_CHUNK_BYTES]
            yield first
            for at in range(CLIP_CHUNK_BYTES, len(content), CLIP_CHUNK_BYTES):
                yield pb.TranslateRequest(audio=pb.AudioInput(content=content[at : at + CLIP_CHUNK_BYTES]))

        try:
            response: pb.TranslateResponse = await self._unary("TranslateChunked", None, timeout_s, messages=messages)
            return response
        except TranslateError as e:
            if e.code not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL):
                raise
            if e.code == grpc.StatusCode.INTERNAL and not await self._lacks("TranslateChunked", timeout_s):
                raise
        logger.info("the server has no TranslateChunked (an older server): sending the clip in one Translate message")
        whole = pb.TranslateRequest()
        whole.CopyFrom(request)
        whole.audio.content = content
        response = await self._unary("Translate", whole, timeout_s)
        return response

    async def _lacks(self, method: str, timeout_s: float | None, *, service: str = "Translator") -> bool:
        """Whether the server answers a client-streaming ``method`` (of ``service``) with
        UNIMPLEMENTED when asked with no message at all (nothing in flight, so nothing to reset)."""
        try:
            await self._unary(method, None, timeout_s, messages=lambda: iter(()), service=service)
        except TranslateError as e:
            return bool(e.code == grpc.StatusCode.UNIMPLEMENTED)
        return False

    async def translate_text(
        self,
        texts: str | Sequence[str],
        *,
        source: str,
        targets: str | Sequence[str],
        terms: Sequence[Term | str] = (),
        glossaries: Sequence[str] = (),
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
            glossaries=list(glossaries),
        )
        resp = await self._unary("TranslateText", request, timeout_s)
        return convert.translate_text_result(batch, resp)

    def stream(
        self,
        *,
        targets: str | Sequence[str],
        source: str | None = None,
        detect: bool | Sequence[str] = False,
        conversation: str | Sequence[str] | Conversation | None = None,
        terms: Sequence[Term | str] = (),
        glossaries: Sequence[str] = (),
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
        room: str | Room | None = None,
        participant: str | None = None,
        noise_suppression: bool = False,
        speakers: int = 0,
        separate_channels: bool = False,
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
        ``targets``, ``source``, ``detect`` (ASR only, language detection), ``conversation``, ``terms`` and
        ``glossaries``: as in ``translate``. ``simultaneous``: True or ``SimultaneousOptions(step_ms,
        agreement)`` for simultaneous interpretation: ``Commit`` events (words and their speech)
        while the speaker talks, before each segment's ``Segment`` (docs/client.md).
        ``room``: speak into a room (docs/rooms.md): its name (and ``participant``, your id in it),
        or a ``Room``; its listeners get this stream's segments in their languages, with its ids
        and spans, while this stream carries only its own ``targets`` (none: ASR only, with
        ``source``). A room speaker needs ``source`` (or ``detect``) and cannot be ``simultaneous``
        (the server refuses both with INVALID_ARGUMENT); a resumed stream keeps its room.
        ``noise_suppression`` and ``speakers``: as in ``translate``. ``separate_channels``: stereo
        PCM (``channels=2``) whose channels are heard each on its own, one party each: every
        event says its ``channel`` (1, 2; a segment's ``speaker`` too), results come in the order
        the channels' speech began; such a stream is not resumed (a dropped connection ends it).
        """
        if max_buffered_events < 1:
            raise ValueError("max_buffered_events must be at least 1")
        fmt, enc = _stream_format(format, encoding, sample_rate, channels)
        config = pb.StreamingConfig(
            format=convert.format_pb(fmt),
            **convert.languages_pb(targets, source, detect, conversation),
            output=convert.output_pb(_output(output, output_fields)),
            interim_interval_ms=interim_ms,
            vad=convert.vad_pb(vad),
            terms=convert.terms_pb(terms),
            simultaneous=convert.simultaneous_pb(simultaneous),
            room=convert.room_pb(room, participant),
            noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE if noise_suppression else pb.NOISE_SUPPRESSION_OFF,
            speakers=speakers,
            glossaries=list(glossaries),
            channel_mode=pb.CHANNEL_MODE_SEPARATE if separate_channels else pb.CHANNEL_MODE_MIXED,
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

    def listen(
        self,
        room: str,
        language: str,
        participant: str | None = None,
        *,
        resume: bool = True,
        max_buffered_events: int = DEFAULT_BUFFERED_EVENTS,
        speed: float | None = None,
        original: bool = False,
    ) -> AsyncListener:
        """Listen to a room in one language (a model code with text output, e.g. ``"spa"``); use
        as ``async with client.listen("town-hall", "spa") as room:``, then ``async for ev in
        room``. ``participant``: your id in the room (a speaker with the same participant is not
        heard: a two-way meeting). ``async with`` opens it (retrying RESOURCE_EXHAUSTED /
        UNAVAILABLE on other addresses; a refusal raises ``TranslateError`` with the server's
        message) and stops it on exit.

        Yields ``ListenStarted``, the backlog's ``RoomSegment`` (``backlog=True``, text only), then
        live ``RoomSegment`` and ``RoomCaption`` of every speaker, ``ListenDropped`` when you fell
        behind, ``Draining`` when the server shuts down. ``resume``: after a drain, a lost
        connection or the server's longest listen (``rooms.max_listen_s``), listen again on the
        next address (a new ``ListenStarted``; the backlog's repeats dropped); False: such an end
        is told as any other, a ``ListenEnd`` and then ``ListenEndedError``.
        ``max_buffered_events``: events read ahead of you before the SDK stops reading (the
        server then drops your oldest and says so in a ``ListenDropped``). ``speed``: the speaking
        rate of the room's speech for you, 0.5..2.0, served at the nearest step of 0.25 (None: as
        each speaker speaks); each segment's ``Translation.speech_rate`` says the rate it came at.
        Where the room's owner allows no rate for your token, the listen is refused
        (PERMISSION_DENIED): listen without ``speed``. ``original``: where a conversation speaks
        into the room, its turns heard in your language come with their own audio (the speaker's
        voice, as the segment's translation into your language; its text the transcript); False:
        as text only.
        """
        if max_buffered_events < 1:
            raise ValueError("max_buffered_events must be at least 1")
        request = pb.ListenRequest(room=room, language=language, participant=participant or "", original_audio=original)
        if speed is not None:
            request.speed = speed
        return AsyncListener(self, request, resume=resume, max_buffered_events=max_buffered_events)


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
