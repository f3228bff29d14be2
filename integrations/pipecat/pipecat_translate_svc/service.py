"""``TranslateSvcSTTService``: translate_svc as a Pipecat service (speech in; transcript,
translations and translated speech out).

Pipecat has no speech-to-speech base class, so this is an ``STTService``: it takes the user's
audio as every STT service does (``run_stt``, fed by ``STTService.process_audio_frame``) and
streams it to a translate_svc server over the SDK (``translate_svc.client.AsyncTranslateClient``,
one ``AsyncStream``). For every segment the server closes it pushes downstream

- a ``TranscriptionFrame`` (the source transcript; when a source language is set or detected),
- a ``TranslationFrame`` per target language, and
- the translated speech of the speech targets as ``TTSAudioRawFrame`` chunks between a
  ``TTSStartedFrame`` and a ``TTSStoppedFrame`` (one ``context_id`` per segment and target),

so an output transport (and its serializer: Twilio, Telnyx, Plivo...) plays the translation.
Simultaneous mode streams the speech of the words the server commits while the speaker talks.

Interruptions (pipecat's ``InterruptionFrame``, from either direction) follow pipecat's TTS
convention: what was already pushed is flushed by pipecat itself (every processor's queue, the
output transport's buffer), and this service pushes no more speech of the interrupted turn, i.e. of
every segment that had results before the interruption or that ended before it (its result was
still on its way). Texts are never dropped: they are the record of what was said.

Everything runs on the pipeline's event loop; the results are read by one task per stream.
The service's collaborators: ``calls.Call`` (one stream), ``speech.SpeechOutput`` (its speech
as TTS frames), ``settings.TranslateSvcSTTSettings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import grpc
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    StartFrame,
    TranscriptionFrame,
    TranslationFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.settings import STTSettings
from pipecat.services.stt_latency import DEFAULT_TTFS_P99
from pipecat.services.stt_service import STTService
from pipecat.transcriptions.language import Language
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.tracing.service_decorators import traced_stt
from pipecat.utils.types import NOT_GIVEN, is_given

from pipecat_translate_svc.calls import Call, error_category
from pipecat_translate_svc.languages import to_model_code, to_model_codes, to_pipecat_language
from pipecat_translate_svc.settings import TranslateSvcSTTSettings
from pipecat_translate_svc.speech import SpeechOutput
from translate_svc.client import (
    AsyncTranslateClient,
    Commit,
    Draining,
    EndReason,
    Interim,
    OutputOptions,
    Segment,
    SimultaneousOptions,
    SpeechEvent,
    StreamClosedError,
    StreamEnd,
    StreamEndedError,
    StreamUpdated,
    Term,
    TlsOptions,
    TranslateError,
    VadOptions,
)


class TranslateSvcSTTService(STTService):
    """translate_svc speech translation as a Pipecat ``STTService``.

    Put it where an STT service goes (after the transport's input); what it pushes downstream
    reaches the output transport as speech and any text consumer as transcripts and translations::

        translate = TranslateSvcSTTService(
            address="translate.internal:50051",
            source_language=Language.EN,
            target_languages=[Language.ES],
        )
        pipeline = Pipeline([transport.input(), translate, transport.output()])

    Frames pushed per segment the server closes (``frame.metadata["translate_svc"]`` carries its
    ``segment_id``, ``target`` and, where known, ``start_ms``/``end_ms``):

    - ``TranscriptionFrame`` (``finalized=True``; ``result`` is the SDK's ``Segment``), when a
      source language is set or ``detect`` is on; its text may be empty (noise);
    - one ``TranslationFrame`` per target (``language`` is the target);
    - the speech of each speech target: ``TTSStartedFrame``, ``TTSAudioRawFrame`` chunks
      (``SPEECH_FRAME_S`` each, mono PCM16 at the pipeline's output rate unless
      ``speech_sample_rate`` says otherwise), ``TTSStoppedFrame``; ``transport_destination`` as
      ``audio_destinations`` says.

    With ``simultaneous`` the speech comes in pieces while the speaker talks (the server's
    ``Commit`` events); the texts still come once per segment. With ``interim_ms`` the source
    transcript of open speech comes as ``InterimTranscriptionFrame``\\ s.

    Args:
        address: the server, ``"host:port"``, or several (a list or a comma-separated string:
            the SDK fails over between them and moves a stream when its server drains).
        target_languages: the languages to translate into: pipecat ``Language``\\ s, BCP-47 tags
            or SeamlessM4T codes (``Language.ES``, ``"es"``, ``"spa"``). May be empty with a
            ``source_language``: transcripts only.
        source_language: the spoken language (same forms); None: not given.
        token: a bearer token (``--tokens-file`` servers); sent in the clear only to loopback
            unless ``tls`` is given or ``allow_plaintext_token``.
        tls: the SDK's ``TlsOptions`` (CA, client certificate, name override); None: plaintext.
        speech: ask for translated speech at all (False: texts only, and less server work).
        audio_destinations: which targets' speech to push and where: target -> the output
            transport's destination name (None: the default destination). None: the first
            target's speech only, to the default destination.
        speech_sample_rate: the rate of the translated speech; None: the pipeline's
            ``audio_out_sample_rate`` (so the output transport need not resample).
        speaker_id: the vocoder's voice (None: the server's default).
        simultaneous: simultaneous interpretation (True or the SDK's ``SimultaneousOptions``).
        interim_ms: live source captions every this many ms (0: off).
        detect: spoken-language identification (True, or the candidate codes); the
            transcript's language is then the detected one.
        terms: names and jargon to get right (the SDK's ``Term``; a ``str`` is a boost; a ``Term`` with
            ``translation`` and ``target_language`` is a glossary entry).
        vad: the server's segmentation overrides (the SDK's ``VadOptions``).
        client: an ``AsyncTranslateClient`` to use instead of one made from ``address``,
            ``token`` and ``tls`` (it is then not closed by the service).
        end_timeout_s: on ``EndFrame``, how long to wait for the results of the audio already
            sent before the pipeline goes on ending.
        reopen_delay_s: after a stream failed, how long to wait before opening the next one.
        ttfs_p99_latency: P99 seconds from speech end to final transcript (pipecat's turn
            strategies read it); about the server's VAD silence plus one model batch.
        settings: ``TranslateSvcSTTService.Settings`` (a delta over the arguments above).
        **kwargs: ``STTService``'s (``sample_rate``, ``audio_passthrough``...).
    """

    Settings = TranslateSvcSTTSettings
    _settings: TranslateSvcSTTSettings

    def __init__(
        self,
        *,
        address: str | Sequence[str] | None = None,
        target_languages: Language | str | Sequence[Language | str] = (),
        source_language: Language | str | None = None,
        token: str | None = None,
        tls: TlsOptions | None = None,
        allow_plaintext_token: bool = False,
        speech: bool = True,
        audio_destinations: Mapping[Language | str, str | None] | None = None,
        speech_sample_rate: int | None = None,
        speaker_id: int | None = None,
        simultaneous: bool | SimultaneousOptions = False,
        interim_ms: int = 0,
        detect: bool | Sequence[str] = False,
        terms: Sequence[Term | str] = (),
        vad: VadOptions | None = None,
        client: AsyncTranslateClient | None = None,
        end_timeout_s: float = 10.0,
        reopen_delay_s: float = 2.0,
        ttfs_p99_latency: float | None = DEFAULT_TTFS_P99,
        settings: TranslateSvcSTTSettings | None = None,
        **kwargs: Any,
    ) -> None:
        defaults = self.Settings(
            model=None,
            language=source_language,
            target_languages=list(to_model_codes(target_languages)),
            speaker_id=speaker_id,
        )
        if settings is not None:
            defaults.apply_update(settings)
        targets = defaults.target_languages
        defaults.target_languages = to_model_codes(targets) if is_given(targets) and targets else []
        if not defaults.target_languages and defaults.language is None and detect is False:
            raise ValueError("give target_languages, or a source_language (or detect) for transcripts alone")
        if (address is None) == (client is None):
            raise ValueError("give the server's address or a client (one of the two)")
        super().__init__(ttfs_p99_latency=ttfs_p99_latency, settings=defaults, **kwargs)

        self._client_args: dict[str, Any] = {
            "targets": address,
            "token": token,
            "tls": tls,
            "allow_plaintext_token": allow_plaintext_token,
            "timeout_s": 20.0,  # how long opening a stream may take
        }
        self._owns_client = client is None
        self._client: AsyncTranslateClient = client or AsyncTranslateClient(**self._client_args)
        self._client_closed = False  # ours, closed at the end; a new start makes a new one
        self._speech = speech
        self._audio_destinations = (
            None if audio_destinations is None else {to_model_code(k): v for k, v in audio_destinations.items()}
        )
        self._speech_sample_rate = speech_sample_rate
        self._out_sample_rate = 0
        self._simultaneous = simultaneous
        self._interim_ms = interim_ms
        self._detect = detect
        self._terms = tuple(terms)
        self._vad = vad
        self._end_timeout_s = end_timeout_s
        self._reopen_delay_s = reopen_delay_s

        self._call: Call | None = None
        self._retired: set[Call] = set()  # half-closed calls whose last results are being read
        self._calls_opened = 0
        self._open_lock = asyncio.Lock()
        self._retry_at = 0.0
        self._closing = False
        self._speech_out = SpeechOutput(lambda frame: self.push_frame(frame), self._audio_destinations)

    @property
    def interrupted_speech_pieces(self) -> int:
        """Pieces of translated speech not pushed because their turn was interrupted."""
        return self._speech_out.interrupted_pieces

    @property
    def interrupted_speech_ms(self) -> int:
        """Milliseconds of translated speech not pushed because their turn was interrupted."""
        return self._speech_out.interrupted_ms

    # -- pipecat's hooks -----------------------------------------------------------------------

    def can_generate_metrics(self) -> bool:
        return True

    def language_to_service_language(self, language: Language) -> str | None:
        return to_model_code(language)

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        self._out_sample_rate = setup.audio_out_sample_rate

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._closing = False
        if self._client_closed:
            self._client = AsyncTranslateClient(**self._client_args)
            self._client_closed = False
        await self._ensure_call()

    async def stop(self, frame: EndFrame) -> None:
        await self._finish(graceful=True)
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._finish(graceful=False)
        await super().cancel(frame)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._finish(graceful=False)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            # before the frame goes on: speech pushed from now on is checked against this cut,
            # speech pushed before it is flushed by the processors the frame passes
            await self._speech_out.interrupt(self._calls)
        await super().process_frame(frame, direction)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Send the audio (mono PCM16 at ``sample_rate``) to the stream; the results come from
        the stream's reader task, not from here."""
        call = await self._ensure_call()
        if call is not None:
            try:
                await call.stream.send(audio)
                call.samples_sent += len(audio) // 2
            except (StreamEndedError, StreamClosedError, TranslateError) as e:
                call.usable = False  # its reader reports why; the next audio opens a new stream
                logger.debug(f"{self}: stream {call.number} takes no more audio: {e}")
        yield None

    async def _update_settings(self, delta: STTSettings) -> dict[str, Any]:  # type: ignore[override]
        targets = getattr(delta, "target_languages", NOT_GIVEN)
        if is_given(targets):
            delta.target_languages = to_model_codes(targets or [])  # type: ignore[attr-defined]
        changed = await super()._update_settings(delta)
        if not changed:
            return changed
        updatable = changed.keys() & {"target_languages", "speaker_id"}
        self._warn_unhandled_updated_settings(changed.keys() - {"language", "model", "target_languages", "speaker_id"})
        call = self._call
        if call is None or not call.usable:
            return changed  # the next stream opens with the new settings
        if "language" in changed:
            await self._request_reconnect()  # at once, or when the user stops speaking
        elif updatable:
            s = self._settings
            voice = s.speaker_id if isinstance(s.speaker_id, int) else 0  # None: the default voice, 0
            try:
                await call.stream.update(
                    target_languages=list(s.target_languages) if "target_languages" in updatable else None,  # type: ignore[arg-type]
                    speaker_id=voice if "speaker_id" in updatable else None,
                )
            except (StreamClosedError, TranslateError) as e:
                call.usable = False  # the next stream opens with the new settings
                logger.debug(f"{self}: stream {call.number} took no update: {e}")
        return changed

    async def _do_reconnect(self) -> None:
        """Restart the stream (a source language change): the old one is half-closed, and its
        last results still come; the new one gets the audio from now on."""
        old, self._call = self._call, None
        if old is not None:
            await self._retire(old)
        self._retry_at = 0.0
        self._call = await self._open_call()

    # -- streams -------------------------------------------------------------------------------

    def _calls(self) -> list[Call]:
        return [c for c in (self._call, *self._retired) if c is not None]

    async def _ensure_call(self) -> Call | None:
        call = self._call
        if call is not None and call.usable:
            return call
        if self._closing or time.monotonic() < self._retry_at:
            return None
        async with self._open_lock:
            if self._call is not None and self._call.usable:
                return self._call
            old, self._call = self._call, None
            if old is not None and old.reader is not None and not old.reader.done():
                self._retired.add(old)  # its reader is reading its last results
            try:
                self._call = await self._open_call()
            except TranslateError as e:
                self._retry_at = time.monotonic() + max(self._reopen_delay_s, e.retry_delay_s or 0.0)
                await self._report(e, f"could not open a stream to {self._client.addresses}")
                return None
            return self._call

    async def _open_call(self) -> Call:
        s = self._settings
        source = s.language if isinstance(s.language, str) and s.language else None
        rate = self._speech_sample_rate or self._out_sample_rate or 0
        stream = self._client.stream(
            targets=list(s.target_languages),  # type: ignore[arg-type]
            source=source,
            detect=self._detect,
            terms=self._terms,
            encoding="linear16",
            sample_rate=self.sample_rate,
            interim_ms=self._interim_ms,
            simultaneous=self._simultaneous,
            vad=self._vad,
            output=OutputOptions(
                text=True,
                speech=self._speech,
                transcript=source is not None or self._detect is not False,
                speech_sample_rate=rate,
                speaker_id=s.speaker_id if isinstance(s.speaker_id, int) else None,
            ),
        )
        await stream.start()
        self._calls_opened += 1
        call = Call(self._calls_opened, stream, self.sample_rate)
        call.reader = self.create_task(self._read(call), name=f"translate-svc-stream-{call.number}")
        logger.debug(f"{self}: stream {call.number} open ({stream.info.session_id if stream.info else '?'})")
        await self._call_event_handler("on_connected")
        return call

    async def _retire(self, call: Call) -> None:
        """Half-close ``call``: no more audio; its reader reads its last results and ends."""
        call.usable = False
        if call.reader is not None and not call.reader.done():
            self._retired.add(call)
        with contextlib.suppress(TranslateError, StreamClosedError, grpc.RpcError):
            await call.stream.close()

    async def _finish(self, *, graceful: bool) -> None:
        """End every stream: ``graceful`` waits (up to ``end_timeout_s``) for the results of the
        audio already sent, as an ``EndFrame`` asks; otherwise they are dropped."""
        self._closing = True
        calls = self._calls()
        self._call = None
        self._retired.clear()
        readers = [c.reader for c in calls if c.reader is not None and not c.reader.done()]
        if graceful and readers:
            for c in calls:
                await self._retire(c)
            _, pending = await asyncio.wait(readers, timeout=self._end_timeout_s)
            if pending:
                logger.warning(f"{self}: results still missing after {self._end_timeout_s:g} s: dropped")
        for c in calls:
            if c.reader is not None and not c.reader.done():
                await self.cancel_task(c.reader)
            with contextlib.suppress(Exception):
                await c.stream.aclose()
        if self._owns_client and not self._client_closed:
            self._client_closed = True
            await self._client.close()

    async def _read(self, call: Call) -> None:
        error: Exception | None = None
        try:
            async for event in call.stream:
                await self._on_event(call, event)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            error = e
        call.usable = False
        self._retired.discard(call)
        if error is not None:
            await self._on_stream_error(call, error)
        await self._call_event_handler("on_disconnected")

    async def _on_stream_error(self, call: Call, error: Exception) -> None:
        if isinstance(error, StreamEndedError) and error.reason in (
            EndReason.IDLE_TIMEOUT,
            EndReason.MAX_STREAM_DURATION,
        ):
            logger.info(f"{self}: stream {call.number} ended ({error.reason.value}); the next audio opens another")
            return
        if isinstance(error, TranslateError):
            self._retry_at = time.monotonic() + max(self._reopen_delay_s, error.retry_delay_s or 0.0)
            await self._report(error, f"stream {call.number} failed")
        else:
            await self.push_error(f"stream {call.number}: {error}", exception=error, category=ErrorCategory.UNKNOWN)

    async def _report(self, error: TranslateError, what: str) -> None:
        await self._call_event_handler("on_connection_error", str(error))
        await self.push_error(f"{what}: {error}", exception=error, category=error_category(error))

    # -- results -------------------------------------------------------------------------------

    async def _on_event(self, call: Call, event: object) -> None:
        if isinstance(event, Segment):
            await self._on_segment(call, event)
        elif isinstance(event, Commit):
            await self._on_commit(call, event)
        elif isinstance(event, Interim):
            await self._on_interim(event)
        elif isinstance(event, StreamUpdated):
            if event.error:
                # the stream goes on as it was: the settings say so again
                self._settings.target_languages = list(event.target_languages)
                self._settings.speaker_id = event.speaker_id if event.speaker_id else None
                await self.push_error(
                    f"the server refused the update: {event.error}", category=ErrorCategory.APPLICATION
                )
            else:
                logger.info(f"{self}: targets {list(event.target_languages)} from segment {event.first_segment_id} on")
        elif isinstance(event, Draining):
            logger.info(f"{self}: the server drains; the stream moves in {event.remaining_ms} ms")
        elif isinstance(event, StreamEnd):
            logger.debug(f"{self}: stream {call.number} ended: {event.reason.value} ({event.segments_total} segments)")
        elif isinstance(event, SpeechEvent):
            pass  # pipecat's own VAD and turn strategies drive the turns

    def _source_language(self, code: str | None) -> Language | str | None:
        if code:
            return to_pipecat_language(code)
        s = self._settings.language
        return to_pipecat_language(s) if isinstance(s, str) and s else None

    async def _on_segment(self, call: Call, seg: Segment) -> None:
        call.seen(seg.segment_id)
        meta = {"segment_id": seg.segment_id, "start_ms": seg.start_ms, "end_ms": seg.end_ms, "stream": call.number}
        if seg.error is not None:
            await self._speech_out.close(call, seg.segment_id, None)
            if seg.error.code == "UNAVAILABLE":
                # its server's model worker died: the SDK moves the stream and has this audio
                # translated again there, under a later segment id (docs/client.md)
                logger.info(f"{self}: segment {seg.segment_id} is translated again on another server")
                return
            category = ErrorCategory.QUOTA if seg.error.code == "RESOURCE_EXHAUSTED" else ErrorCategory.SERVER
            await self.push_error(
                f"segment {seg.segment_id} ({seg.start_ms}-{seg.end_ms} ms) was not translated: "
                f"{seg.error.code}: {seg.error.message}",
                category=category,
            )
            return
        timestamp = time_now_iso8601()
        if seg.transcript is not None:
            language = self._source_language(seg.transcript_language)
            await self.emit_stt_usage_metrics()  # before the frame: tracing attaches it to the span it closes
            frame = TranscriptionFrame(
                seg.transcript,
                self._user_id,
                timestamp,
                language,  # type: ignore[arg-type]  # a code pipecat has no name for stays a str
                result=seg,
                finalized=True,
            )
            frame.metadata["translate_svc"] = dict(meta)
            await self.push_frame(frame)
            await self._handle_transcription(seg.transcript, True, language)
        for t in seg.translations:
            tr = TranslationFrame(t.text, self._user_id, timestamp, to_pipecat_language(t.target))  # type: ignore[arg-type]
            tr.metadata["translate_svc"] = {**meta, "target": t.target}
            await self.push_frame(tr)
        for t in seg.translations:
            if seg.speech_in_commits:  # its speech came in its commits: only end what is still open
                await self._speech_out.close(call, seg.segment_id, t.target)
            elif self._speaks(t.target) and t.audio is not None and t.num_samples > 0:
                await self._speech_out.push(
                    call, seg.segment_id, t, meta={**meta, "target": t.target}, end_ms=seg.end_ms
                )

    async def _on_commit(self, call: Call, com: Commit) -> None:
        call.seen(com.segment_id)
        if not self._speaks(com.target):
            return
        t = com.translation
        meta = {"segment_id": com.segment_id, "target": com.target, "source_ms": com.source_ms, "stream": call.number}
        if t.audio is not None and t.num_samples > 0:
            await self._speech_out.push(call, com.segment_id, t, meta=meta, last=com.final)
        elif com.final:
            await self._speech_out.close(call, com.segment_id, com.target)

    async def _on_interim(self, cap: Interim) -> None:
        if cap.transcript is None:
            return
        frame = InterimTranscriptionFrame(
            cap.transcript,
            self._user_id,
            time_now_iso8601(),
            self._source_language(None),  # type: ignore[arg-type]
            result=cap,
        )
        frame.metadata["translate_svc"] = {"segment_id": cap.segment_id, "start_ms": cap.start_ms, "end_ms": cap.end_ms}
        await self.push_frame(frame)

    @traced_stt
    async def _handle_transcription(
        self, transcript: str, is_final: bool, language: Language | str | None = None
    ) -> None:
        """For pipecat's tracing (the decorator records the transcript on the STT span)."""

    # -- speech --------------------------------------------------------------------------------

    def _speaks(self, target: str) -> bool:
        if not self._speech:
            return False
        if self._audio_destinations is not None:
            return target in self._audio_destinations
        targets = self._settings.target_languages
        return bool(targets) and target == targets[0]  # type: ignore[index]
