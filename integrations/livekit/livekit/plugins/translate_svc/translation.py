"""translate_svc as a LiveKit ``TranslationModel``: speech in, translated speech out, over gRPC.

``TranslationModel`` is built from the server's address and the languages; its sessions stream a
track's audio to translate_svc through the project's SDK (``translate_svc.client``), which brings
TLS, tokens, retries, connection pooling and the resume of a stream on another server when its
server drains. Sessions translating one track into several languages (the same ``track``) share
one stream: one encoder pass per segment, whatever the number of languages.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from livekit import rtc
from livekit.agents.beta import translation as lk

from translate_svc.client import (
    AsyncTranslateClient,
    Commit,
    Interim,
    Segment,
    SimultaneousOptions,
    SpeechEvent,
    SpeechEventType,
    Term,
    TlsOptions,
    Translation,
    VadOptions,
)

from ._languages import UnsupportedLanguageError
from ._shared import ClientConfig, Hub, Seat, SharedStream, StreamOptions, spawn

_session_ids = itertools.count()

#: translated speech is handed to LiveKit in frames of this length
FRAME_MS = 20

#: the events this plugin's sessions emit besides LiveKit's own
TranslateSvcEventTypes = Literal["segment"]

_CAPABILITIES = lk.TranslationCapabilities(
    input_transcription=True,
    output_transcription=True,
    turn_reporting=True,
    output_segmentation=True,
    retargetable=True,
)


@dataclass(frozen=True)
class TranslatedSegment:
    """The ``segment`` event: one final result of the stream, as this session sees it.

    ``segment_id``, ``start_ms`` and ``end_ms`` are the stream's (ids run on across a server
    drain; times are on the track's timeline since the stream opened). ``language`` is this
    session's language for the segment and ``text`` its translation, both None when the segment
    carries no translation for it (it closed before the session's language was added).
    ``segment`` is the SDK's whole result (every language of the shared stream).
    """

    segment_id: int
    start_ms: int
    end_ms: int
    transcript: str | None
    transcript_language: str | None
    language: str | None
    text: str | None
    speech_samples: int
    sample_rate: int
    segment: Segment


def model_terms(terms: Sequence[Term | str], target_language: str) -> tuple[Term, ...]:
    """``terms`` as a tuple of ``Term`` (hashable: the stream options hold it). A glossary entry
    is for this model's language: one for another would be refused by the server once the stream
    opens (its ``target_language`` must be among the stream's targets), so it is refused here."""
    out: list[Term] = []
    for i, t in enumerate(terms):
        if isinstance(t, str):
            t = Term(t)
        elif not isinstance(t, Term):
            raise TypeError(f"terms[{i}] is a {type(t).__name__}: give a str (a boost) or a translate_svc.client.Term")
        if t.glossary and t.target_language != target_language:
            raise ValueError(
                f"terms[{i}] ({t.phrase!r}) is a glossary entry for target_language={t.target_language!r}, "
                f"but this model speaks {target_language!r}: set the entry's target_language={target_language!r} "
                "(a model's glossary entries are for its own target_language; one model per language)"
            )
        out.append(t)
    return tuple(out)


class TranslationModel(lk.TranslationModel):
    """translate_svc (SeamlessM4T v2 behind gRPC) as a LiveKit translation model.

    Args:
        server: ``"host:port"``, several (a list or a comma-separated string: the SDK picks one per
            stream and moves a stream to the next when its server drains or dies), or a gRPC target
            such as ``"dns:///translate.svc:50051"``. Default: ``$TRANSLATE_SVC_ADDRESS``.
        target_language: the language to speak (BCP-47 such as ``"es"``, or the model's code
            ``"spa"``).
        source_language: the language spoken, or None to let the server detect it (needs its
            language identifier; without one no input transcript comes).
        track: what the sessions hear, typically the LiveKit track sid. Sessions of models with the
            same ``track`` (and server, source language and stream options) share ONE stream, so
            translating one speaker into N languages costs one encoder pass, not N. None: each
            session has a stream of its own.
        token: bearer token (default ``$TRANSLATE_SVC_TOKEN``). ``tls``: ``True`` for TLS with the
            system's roots, or ``TlsOptions`` (CA bundle, client certificate, server name).
        simultaneous: simultaneous interpretation (``True`` or ``SimultaneousOptions``): the
            translation is spoken while the speaker talks, in committed chunks, instead of after
            each phrase. Default off (one translation per phrase).
        output_sample_rate: the translated speech's rate (8000..48000; LiveKit's room output plays
            24 kHz, the default).
        speaker_id: the voice (None: the server's default). ``interim_ms``: live input transcripts
            of open speech every this many ms (0: final transcripts only). ``vad``: segmentation
            overrides.
        terms: names and jargon to get right, the SDK's ``Term``\\ s (docs/api.md, "Term lists"): a
            ``str`` is a boost, ``Term(phrase, keep=True)`` is carried verbatim, and a ``Term`` with
            ``translation`` is a glossary entry ("translate *phrase* as *translation*"), whose
            ``target_language`` must be this model's ``target_language`` as given here (it is
            resolved to the server's code as the target is). Sessions share a track's stream only
            with models of the same terms.
        client: an ``AsyncTranslateClient`` of your own (then ``server``, ``token`` and ``tls`` are
            ignored, and the client is not closed here).
    """

    def __init__(
        self,
        server: str | Sequence[str] | None = None,
        *,
        target_language: str,
        source_language: str | None = None,
        track: str | None = None,
        token: str | None = None,
        tls: TlsOptions | bool | None = None,
        simultaneous: bool | SimultaneousOptions = False,
        output_sample_rate: int = 24000,
        speaker_id: int | None = None,
        interim_ms: int = 0,
        vad: VadOptions | None = None,
        terms: Sequence[Term | str] = (),
        client: AsyncTranslateClient | None = None,
    ) -> None:
        super().__init__(capabilities=_CAPABILITIES, target_language=target_language, source_language=source_language)
        if client is None:
            server = server or os.environ.get("TRANSLATE_SVC_ADDRESS")
            if not server:
                raise ValueError("translate_svc: give the server's address (server=...) or set TRANSLATE_SVC_ADDRESS")
        addresses = (
            tuple(a.strip() for a in server.split(",") if a.strip()) if isinstance(server, str) else tuple(server or ())
        )
        if not 8000 <= output_sample_rate <= 48000:
            raise ValueError(f"output_sample_rate must lie in 8000..48000, not {output_sample_rate}")
        self._client_config = ClientConfig(
            addresses=addresses,
            token=token if token is not None else os.environ.get("TRANSLATE_SVC_TOKEN") or None,
            tls=TlsOptions() if tls is True else (tls or None),
        )
        self._client = client
        self._track = track
        self._stream_options = StreamOptions(
            source=source_language,
            simultaneous=simultaneous,
            output_sample_rate=output_sample_rate,
            speaker_id=speaker_id,
            interim_ms=interim_ms,
            vad=vad,
            terms=model_terms(terms, target_language),
        )
        self._sessions: set[TranslationModelSession] = set()
        self._model_name = "seamless-m4t-v2"

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def provider(self) -> str:
        return "translate_svc"

    @property
    def track(self) -> str | None:
        return self._track

    def session(self) -> TranslationModelSession:
        return TranslationModelSession(self)

    async def aclose(self) -> None:
        for s in list(self._sessions):
            await s.aclose()


class TranslationModelSession(lk.TranslationModelSession[TranslateSvcEventTypes]):
    """One listener language of a track; its stream may be shared with the track's other languages.

    Beside LiveKit's interface: ``end_input()`` (no more audio: the last results come, then
    ``audio_stream`` ends), the ``segment`` event (``TranslatedSegment``: ids and spans), and
    ``server_address`` / ``resumes`` (where the stream is, how often it moved).
    """

    def __init__(self, model: TranslationModel) -> None:
        super().__init__(model)
        self._model: TranslationModel = model
        self._out: deque[lk.TranslatedAudioFrame | lk.OutputSpeechStopped] = deque()
        self._out_wake = asyncio.Event()
        self._out_done = False
        self._committed: dict[int, str] = {}  # simultaneous: the text committed so far, per segment
        self._spoken: set[int] = set()  # simultaneous: segments whose commits carried speech
        self._closed = False
        self._hub = Hub.acquire(model._client_config, model._client)
        key = model._track if model._track is not None else ("session", next(_session_ids))
        self._shared: SharedStream = self._hub.stream_for(key, model._stream_options)
        try:
            self._seat: Seat = self._shared.attach(self, model.target_language)
        except Exception:
            spawn(self._hub.release(), "translate_svc-release")
            raise
        model._sessions.add(self)

    # -- LiveKit's interface ------------------------------------------------------------------

    @property
    def audio_stream(self) -> AsyncIterator[lk.TranslatedAudioFrame | lk.OutputSpeechStopped]:
        return self._read_out()

    async def _read_out(self) -> AsyncIterator[lk.TranslatedAudioFrame | lk.OutputSpeechStopped]:
        while True:
            while self._out:
                yield self._out.popleft()
            if self._out_done:
                return
            self._out_wake.clear()
            await self._out_wake.wait()

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        if self._closed or self._seat.input_ended or self._seat.refused:
            return
        self._shared.push(self._seat, frame)

    def clear_audio(self) -> None:
        """Drop the translated speech not read from ``audio_stream`` yet (a segment cut short is
        still closed with an ``OutputSpeechStopped``)."""
        if self._out:
            self._out.clear()
            self._out.append(lk.OutputSpeechStopped())

    def update_options(self, *, target_language: str) -> None:
        """Speak another language from the next segment the server closes (the one open now
        included); the stream is updated, not reopened. Raises ``ValueError`` for a language the
        server cannot speak (when its languages are known), and for any other language than the
        model's when the model has glossary entries (they are for its language alone: the server
        would refuse a stream update that drops the language an entry is for)."""
        if self._closed:
            raise RuntimeError("the session is closed")
        glossary = [t for t in self._model._stream_options.terms if t.glossary]
        if glossary and target_language != self._model.target_language:
            raise ValueError(
                f"this model's glossary entries ({glossary[0].phrase!r}...) are for {self._model.target_language!r}, "
                f"not {target_language!r}: a session with glossary entries keeps its language (open a session of a "
                f"TranslationModel for {target_language!r}, with entries for it)"
            )
        try:
            self._shared.retarget(self._seat, target_language)
        except UnsupportedLanguageError as e:
            raise ValueError(str(e)) from e

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._model._sessions.discard(self)
        try:
            await self._shared.detach(self._seat)
        finally:
            self.end_output()
            await self._hub.release()

    # -- beyond LiveKit's interface -----------------------------------------------------------

    def end_input(self) -> None:
        """No more audio from this session. Once every session of the stream ended its input, the
        stream is half-closed: the speech still open is translated, and ``audio_stream`` ends after
        the last result."""
        if not self._seat.input_ended:
            self._shared.end_input(self._seat)

    @property
    def server_address(self) -> str | None:
        """The server the stream is on now (None before it opens)."""
        stream = self._shared.last_stream
        return stream.info.address if stream is not None and stream.info is not None else None

    @property
    def resumes(self) -> int:
        """How many times the stream moved to another server (a drain, a lost server)."""
        stream = self._shared.last_stream
        return stream.resumes if stream is not None else 0

    @property
    def target_code(self) -> str | None:
        """The server's code of the language this session speaks (once the server's languages are known)."""
        return self._seat.code

    # -- from the shared stream (its ``Listener``) ------------------------------------------------

    def on_speech(self, ev: SpeechEvent) -> None:
        if ev.type is SpeechEventType.STARTED:
            self.emit("input_speech_started", lk.InputSpeechStarted())
        else:
            self.emit("input_speech_stopped", lk.InputSpeechStopped())

    def on_interim(self, ev: Interim, language: str | None) -> None:
        if ev.transcript is not None:
            self.emit("input_transcript", lk.InputTranscript(text=ev.transcript, is_final=False, language=language))

    def on_commit(self, c: Commit, lang: tuple[str, str] | None) -> None:
        if lang is None or lang[0] != c.target:
            return
        if c.restart:  # resumed on another server: the segment's text starts over
            self._committed[c.segment_id] = ""
        self._committed[c.segment_id] = self._committed.get(c.segment_id, "") + c.text
        if c.text:
            self.emit("output_transcript", lk.OutputTranscript(text=c.text, is_final=False, language=lang[1]))
        if c.has_speech and self._queue_speech(c.translation, c.segment_id, lang[1]):
            self._spoken.add(c.segment_id)

    def on_segment(self, seg: Segment, lang: tuple[str, str] | None, transcript_language: str | None) -> None:
        sid = seg.segment_id
        if seg.transcript is not None:
            self.emit(
                "input_transcript",
                lk.InputTranscript(text=seg.transcript, is_final=True, language=transcript_language),
            )
        if seg.error is not None:
            self.report(RuntimeError(f"segment {sid}: {seg.error.code}: {seg.error.message}"), recoverable=True)
        tr = None
        if lang is not None:
            tr = next((t for t in seg.translations if t.target == lang[0]), None)
        if tr is not None:
            assert lang is not None
            if seg.speech_in_commits:
                sent = self._committed.pop(sid, "")
                rest = tr.text[len(sent) :] if tr.text.startswith(sent) else ""
                self.emit("output_transcript", lk.OutputTranscript(text=rest, is_final=True, language=lang[1]))
                spoke = sid in self._spoken
            else:
                self._committed.pop(sid, None)
                self.emit("output_transcript", lk.OutputTranscript(text=tr.text, is_final=True, language=lang[1]))
                spoke = self._queue_speech(tr, sid, lang[1])
            self._spoken.discard(sid)
            if spoke:
                self._put(lk.OutputSpeechStopped())
        self.emit(
            "segment",
            TranslatedSegment(
                segment_id=sid,
                start_ms=seg.start_ms,
                end_ms=seg.end_ms,
                transcript=seg.transcript,
                transcript_language=transcript_language,
                language=lang[1] if tr is not None and lang is not None else None,
                text=tr.text if tr is not None else None,
                speech_samples=tr.num_samples if tr is not None else 0,
                sample_rate=tr.sample_rate if tr is not None else 0,
                segment=seg,
            ),
        )

    def _queue_speech(self, tr: Translation, segment_id: int, language: str) -> bool:
        """The translation's speech as PCM16 frames of ``FRAME_MS``; False when it has none."""
        if tr.audio is None or tr.audio.size == 0 or tr.sample_rate <= 0:
            return False
        pcm = tr.pcm16()
        step = max(1, tr.sample_rate * FRAME_MS // 1000)
        for i in range(0, pcm.size, step):
            chunk = pcm[i : i + step]
            frame = rtc.AudioFrame(chunk.tobytes(), tr.sample_rate, 1, chunk.size, userdata={"segment_id": segment_id})
            self._put(lk.TranslatedAudioFrame(frame=frame, language=language))
        return True

    def _put(self, item: lk.TranslatedAudioFrame | lk.OutputSpeechStopped) -> None:
        if self._out_done:
            return
        self._out.append(item)
        self._out_wake.set()

    def end_output(self) -> None:
        self._out_done = True
        self._out_wake.set()

    def report(self, e: Exception, *, recoverable: bool) -> None:
        self.emit(
            "error",
            lk.TranslationModelError(timestamp=time.time(), label=self._model.label, error=e, recoverable=recoverable),
        )
