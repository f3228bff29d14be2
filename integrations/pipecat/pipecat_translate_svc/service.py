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

The streams' lifecycle (open on the first audio, a bounded queue while a stream opens, moves or
backs off, a new stream after IDLE_TIMEOUT / MAX_STREAM_DURATION / QUOTA with the audio the ended
one did not take, backoff by the server's retry delay after a refusal, the old stream retired while
its last results are read) is the SDK's ``LastingStream`` (docs/client.md, "Lasting streams"), the
same as the LiveKit plugin's: this module adds only what is Pipecat's (frames, settings, turns).

Everything runs on the pipeline's event loop; one task reads the lasting stream's results.
The service's collaborators: ``calls.Call`` (one stream's turn state), ``speech.SpeechOutput``
(its speech as TTS frames), ``settings.TranslateSvcSTTSettings``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

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

from pipecat_translate_svc.calls import Call, Calls, error_category
from pipecat_translate_svc.languages import to_model_code, to_model_codes, to_model_terms, to_pipecat_language
from pipecat_translate_svc.settings import TranslateSvcSTTSettings
from pipecat_translate_svc.speech import SpeechOutput
from translate_svc.client import (
    AsyncStream,
    AsyncTranslateClient,
    AudioDropped,
    Commit,
    Draining,
    Interim,
    LastingPolicy,
    LastingStream,
    OpenRefused,
    OutputOptions,
    Reopening,
    RetryPolicy,
    Segment,
    SimultaneousOptions,
    SpeechEvent,
    StreamClosedError,
    StreamEnd,
    StreamOpened,
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
            ``translation`` and ``target_language`` is a glossary entry, its language named as the
            targets are and one of them: ``ValueError`` otherwise). An entry acts while its language
            is a target: a settings change that drops the language (or adds it back) restarts the
            stream without the entry (with it), as the server takes no update that would leave a
            running stream an entry for a language it does not translate.
        vad: the server's segmentation overrides (the SDK's ``VadOptions``).
        client: an ``AsyncTranslateClient`` to use instead of one made from ``address``,
            ``token`` and ``tls`` (it is then not closed by the service).
        end_timeout_s: on ``EndFrame``, how long to wait for the results of the audio already
            sent before the pipeline goes on ending.
        reopen_delay_s: after a refused open (busy, unavailable) without a retry delay from the
            server, the first wait before the next try (then doubling, up to 10 s, with jitter);
            None: the SDK's ``LastingPolicy`` default (0.5 s). The server's delay, when it sends
            one, is waited instead.
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
        reopen_delay_s: float | None = None,
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
        self._terms = to_model_terms(terms, defaults.target_languages)
        self._stream_terms: list[Term | str] = list(self._terms)  # those of the stream made last
        self._vad = vad
        self._end_timeout_s = end_timeout_s
        if reopen_delay_s is None:
            self._policy = LastingPolicy()
        else:
            backoff = RetryPolicy(initial_backoff_s=reopen_delay_s, max_backoff_s=max(10.0, reopen_delay_s))
            self._policy = LastingPolicy(backoff=backoff)

        self._lasting: LastingStream | None = None  # from start to the end
        self._reader: asyncio.Task[None] | None = None
        self._calls = Calls()  # the streams whose results are read or that take audio
        #: the targets and voice each stream was made with (by the number it gets when it opens)
        self._made_with: dict[int, tuple[tuple[str, ...], int | None]] = {}
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
        self._calls.clear()
        # nothing opens before the first audio (the lasting stream's policy)
        lasting = self._lasting = LastingStream(self._make_stream, sample_rate=self.sample_rate, policy=self._policy)
        self._reader = self.create_task(self._read(lasting), name="translate-svc-streams")

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
            await self._speech_out.interrupt(self._cut)
        await super().process_frame(frame, direction)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Queue the audio (mono PCM16 at ``sample_rate``) for the lasting stream (never waits);
        the results come from the reader task, not from here."""
        lasting = self._lasting
        if lasting is not None and not self._closing:
            try:
                lasting.push(audio)
            except StreamClosedError as e:  # it failed (reported by the reader) or is ending
                logger.debug(f"{self}: no more audio is translated: {e}")
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
        lasting = self._lasting
        if lasting is None or lasting.audio_position() is None:
            return changed  # the next stream is made with the new settings
        if "language" in changed or self._terms_for(self._settings.target_languages) != self._stream_terms:  # type: ignore[arg-type]
            await self._request_reconnect()  # at once, or when the user stops speaking
        elif updatable:
            await self._update_stream(lasting, targets="target_languages" in updatable, voice="speaker_id" in updatable)
        return changed

    def _terms_for(self, targets: Sequence[str]) -> list[Term | str]:
        """The terms a stream into ``targets`` is made with: the glossary entries for those languages."""
        return [t for t in self._terms if not (isinstance(t, Term) and t.glossary) or t.target_language in targets]

    async def _update_stream(self, lasting: LastingStream, *, targets: bool, voice: bool) -> None:
        """The settings of now to the stream that takes audio (when none does, the next one is
        made with them)."""
        s = self._settings
        speaker = s.speaker_id if isinstance(s.speaker_id, int) else 0  # None: the default voice, 0
        if not await lasting.update(
            target_languages=list(s.target_languages) if targets else None,  # type: ignore[arg-type]
            speaker_id=speaker if voice else None,
        ):
            logger.debug(f"{self}: no stream took the update: the next one is made with it")

    async def _do_reconnect(self) -> None:
        """Restart the stream (a source language change): the old one is half-closed, and its
        last results still come; the audio from now on goes to a new one, made with the new
        settings (the lasting stream's ``restart``)."""
        lasting = self._lasting
        if lasting is not None and lasting.failure is None and not lasting.input_ended:
            lasting.restart()

    # -- streams -------------------------------------------------------------------------------

    def _cut(self) -> None:
        """An interruption (under the speech lock), on every stream's timeline."""
        lasting = self._lasting
        if lasting is None:
            self._calls.cut(None, 0, 0)
            return
        ms = 1000 / self.sample_rate
        at = lasting.audio_position()
        at_ms = None if at is None else (at[0], int(at[1] * ms))
        self._calls.cut(at_ms, lasting.opened + 1, int(lasting.queued_samples * ms))

    async def _make_stream(self) -> AsyncStream:
        """The next stream (the lasting stream opens it), with the settings of now."""
        s = self._settings
        source = s.language if isinstance(s.language, str) and s.language else None
        rate = self._speech_sample_rate or self._out_sample_rate or 0
        speaker = s.speaker_id if isinstance(s.speaker_id, int) else None
        if self._lasting is not None:
            self._made_with = {self._lasting.opened + 1: (tuple(s.target_languages), speaker)}  # type: ignore[arg-type]
        self._stream_terms = self._terms_for(s.target_languages)  # type: ignore[arg-type]
        return self._client.stream(
            targets=list(s.target_languages),  # type: ignore[arg-type]
            source=source,
            detect=self._detect,
            terms=self._stream_terms,
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
                speaker_id=speaker,
            ),
        )

    async def _finish(self, *, graceful: bool) -> None:
        """End the lasting stream: ``graceful`` waits (up to ``end_timeout_s``) for the results of
        the audio already pushed, as an ``EndFrame`` asks; otherwise they are dropped."""
        self._closing = True
        lasting, reader = self._lasting, self._reader
        if graceful and lasting is not None and reader is not None and not reader.done():
            lasting.end_input()
            _, pending = await asyncio.wait([reader], timeout=self._end_timeout_s)
            if pending:
                logger.warning(f"{self}: results still missing after {self._end_timeout_s:g} s: dropped")
        if reader is not None and not reader.done():
            await self.cancel_task(reader)
        if lasting is not None:
            await lasting.aclose()
        self._lasting = self._reader = None
        if self._owns_client and not self._client_closed:
            self._client_closed = True
            await self._client.close()

    async def _read(self, lasting: LastingStream) -> None:
        """Every stream's results, one stream after another (``StreamOpened`` starts each), and
        the lasting stream's notices, until its end or failure."""
        reading: Call | None = None
        try:
            async for ev in lasting:
                if isinstance(ev, StreamOpened):
                    await self._done_with(reading)
                    reading = self._calls.get(ev.number)
                    await self._opened(lasting, ev)
                elif isinstance(ev, Reopening):
                    logger.info(
                        f"{self}: stream {ev.number} ended ({ev.end.reason.value}): a new one opens"
                        + (f" with the {ev.resent_ms} ms it had not taken" if ev.resent_ms else "")
                    )
                    if reading is not None and reading.number == ev.number:
                        await self._done_with(reading)
                        reading = None
                elif isinstance(ev, OpenRefused):
                    await self._report(
                        ev.error, f"the stream was refused (the audio is held; next try in {ev.retry_in_s:.1f} s)"
                    )
                elif isinstance(ev, AudioDropped):
                    await self.push_error(
                        f"{ev.samples * 1000 // ev.sample_rate} ms of audio were dropped untranslated (held "
                        f"past {lasting.policy.max_queued_s:g} s, or cut off a retired stream)",
                        category=ErrorCategory.CONNECTIVITY,
                    )
                elif reading is not None:
                    await self._on_event(reading, ev)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the request must change (the lasting stream's policy): no more tries
            await self._done_with(reading)
            if isinstance(e, TranslateError):
                await self._report(e, "the stream failed", permanent=True)
            else:
                await self.push_error(f"the stream failed: {e}", exception=e, force_treat_as_permanent=True)
            return
        await self._done_with(reading)

    async def _opened(self, lasting: LastingStream, ev: StreamOpened) -> None:
        logger.debug(f"{self}: stream {ev.number} open ({ev.info.session_id if ev.info else '?'})")
        await self._call_event_handler("on_connected")
        made = self._made_with.pop(ev.number, None)
        at = lasting.audio_position()
        if made is None or at is None or at[0] != ev.number:
            return
        s = self._settings  # changed while it opened: the update went nowhere
        speaker = s.speaker_id if isinstance(s.speaker_id, int) else None
        targets, voice = tuple(s.target_languages) != made[0], speaker != made[1]  # type: ignore[arg-type]
        if self._terms_for(s.target_languages) != self._stream_terms:  # type: ignore[arg-type]
            await self._request_reconnect()  # its glossary entries changed with the targets
        elif targets or voice:
            await self._update_stream(lasting, targets=targets, voice=voice)

    async def _done_with(self, call: Call | None) -> None:
        """Every result of ``call``'s stream was read."""
        if call is not None and self._calls.done(call.number):
            await self._call_event_handler("on_disconnected")

    async def _report(self, error: TranslateError, what: str, *, permanent: bool = False) -> None:
        await self._call_event_handler("on_connection_error", str(error))
        await self.push_error(
            f"{what}: {error}", exception=error, category=error_category(error), force_treat_as_permanent=permanent
        )

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
