"""A room's output as the cluster store carries it between processes (``link.py``): one
language's cut of a speaker's final result or caption, as bytes (msgspec, MessagePack).

Speech travels compactly: as Opus packets (encoded once per language, on the speaker's side; a
speaker whose own output is Opus already sends its packets as they are), never as PCM, and only
when another process listens in that language (``speech=False`` otherwise: a backlog is replayed
as text anyway). The listener's side decodes it back to float32 at the speaker's rate, so a door
renders it as it renders a local speaker's. Everything else a listener's door shows is kept: the
segment id, span, transcript (and its words), the translation's text and word timings, their
confidence (``avg_logprob``), the speech's rate, the error, the detected language (and what chose
it) and the timing;
with the speech, its renditions at the rates listeners chose.

Pure functions: no I/O, thread-safe.
"""

from __future__ import annotations

import msgspec
import numpy as np

from translate_svc.audio.opus import OpusStreamDecoder, encode_opus
from translate_svc.audio.resample import resample
from translate_svc.session.rooms.listener import RoomOutput
from translate_svc.types import (
    DetectedLanguage,
    InterimResult,
    LanguageSource,
    OpusSpeech,
    SegmentError,
    SegmentResult,
    Timing,
    Transcript,
    Translation,
    WordTiming,
)

#: Opus's rate (every packet decodes at 48 kHz)
_OPUS_RATE = 48_000

_Word = tuple[str, int, int]


class Speech(msgspec.Struct, array_like=True):
    packets: list[bytes]
    pre_skip: int
    #: the speech's length in 48 kHz samples, and the rate the speaker's output had
    num_samples: int
    rate: int
    #: the speaker's own output was Opus (its listeners then get the packets, as locally)
    opus: bool


class Text(msgspec.Struct, array_like=True):
    language: str
    text: str
    words: list[_Word] = []
    stable_text: str = ""
    speech: Speech | None = None
    #: confidence: the text's mean token log-probability, and each word's (in ``words``'
    #: order; empty: none). Last, with defaults: a message from a process without them still reads
    avg_logprob: float | None = None
    word_logprobs: list[float | None] = []
    #: the rate the speech was spoken at (None: not told)
    speech_rate: float | None = None


class Wire(msgspec.Struct, array_like=True):
    #: the process that appended it (its own listeners got it directly)
    origin: str
    speaker: str
    #: the speaker's participant id ("": none): a listener with the same one is sent nothing of it
    participant: str
    final: bool
    segment_id: int
    start_ms: int
    end_ms: int
    transcript: Text | None = None
    translation: Text | None = None
    error: tuple[str, str] | None = None
    detected: tuple[str, list[tuple[str, float]]] | None = None
    timing: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    speech_in_commits: bool = False
    #: not a result: the speaker cannot carry this language (its error's code and message) for
    #: these listeners (their member ids), refused as on the speaker's own process (``link.py``)
    refused: tuple[str, str, list[str]] | None = None
    #: the translation's speech again at other rates (``SegmentResult.renditions``), for the
    #: listeners there who chose them (sent with the speech only)
    renditions: list[Text] = []
    #: what chose ``detected``'s language (``DetectedLanguage.source``; a process of the release
    #: before sends none: identified)
    language_source: str = LanguageSource.IDENTIFIED.value
    #: its translation is the speaker's own words and voice (``RoomOutput.original``; a process of
    #: the release before sends none)
    original: bool = False


#: the language sources this release knows (a newer one's: read as identified)
_SOURCES = frozenset(x.value for x in LanguageSource)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Wire)


def _words(words: tuple[WordTiming, ...]) -> list[_Word]:
    return [(w.word, w.start_ms, w.end_ms) for w in words]


def _text(language: str, t: Transcript | Translation, speech: Speech | None = None, stable: str = "") -> Text:
    scores = [w.logprob for w in t.words]
    kept = scores if any(s is not None for s in scores) else []
    rate = t.speech_rate if isinstance(t, Translation) else None
    return Text(language, t.text, _words(t.words), stable, speech, t.avg_logprob, kept, rate)


def _speech(t: Translation) -> Speech | None:
    if t.opus is not None:
        o = t.opus
        return Speech(list(o.packets), o.pre_skip, o.num_samples, _OPUS_RATE, True)
    if t.audio is None or not len(t.audio):
        return None
    o = encode_opus(t.audio, t.sample_rate_hz)
    return Speech(list(o.packets), o.pre_skip, o.num_samples, t.sample_rate_hz, False)


def encode(origin: str, out: RoomOutput, participant: str, *, speech: bool) -> bytes:
    """``out`` (one language's cut) as the store carries it; ``speech``: with its speech (as Opus)."""
    ev = out.event
    t = ev.translations[0] if ev.translations else None
    translation = None
    if t is not None:
        translation = _text(t.target_language, t, _speech(t) if speech else None, t.stable_text)
    transcript = None if ev.transcript is None else _text(ev.transcript.language, ev.transcript)
    wire = Wire(origin, out.speaker, participant, isinstance(ev, SegmentResult), ev.segment_id, ev.start_ms, ev.end_ms)
    wire.transcript, wire.translation = transcript, translation
    wire.original = out.original
    if isinstance(ev, SegmentResult):
        if ev.error is not None:
            wire.error = (ev.error.code, ev.error.message)
        if ev.detected is not None:
            wire.detected = (ev.detected.language, [(c, p) for c, p in ev.detected.scores])
            wire.language_source = ev.detected.source.value
        tm = ev.timing
        wire.timing = (tm.queue_ms, tm.model_ms, tm.total_ms, tm.vad_wait_ms, tm.speech_ms, tm.language_id_ms)
        wire.speech_in_commits = ev.speech_in_commits
        if speech:
            wire.renditions = [_text(r.target_language, r, _speech(r)) for r in ev.renditions]
    return _encoder.encode(wire)


def encode_refusal(origin: str, speaker: str, participant: str, code: str, message: str, members: list[str]) -> bytes:
    """A speaker's word that it cannot carry the stream's language for ``members`` (``Wire.refused``)."""
    return _encoder.encode(Wire(origin, speaker, participant, True, -1, 0, 0, refused=(code, message, members)))


def decode(data: bytes) -> tuple[Wire, RoomOutput]:
    """What ``encode`` made, back as the listener's ``RoomOutput`` (its speech decoded)."""
    w = _decoder.decode(data)
    transcript = None
    if w.transcript is not None:
        x = w.transcript
        transcript = Transcript(x.language, x.text, _timings(x), avg_logprob=x.avg_logprob)
    translations = () if w.translation is None else (_translation(w.translation),)
    ev: SegmentResult | InterimResult
    if w.final:
        error = None if w.error is None else SegmentError(w.error[0], w.error[1])
        detected = None
        if w.detected is not None:
            source = w.language_source if w.language_source in _SOURCES else LanguageSource.IDENTIFIED.value
            detected = DetectedLanguage(w.detected[0], tuple((c, p) for c, p in w.detected[1]), LanguageSource(source))
        ev = SegmentResult(
            w.segment_id,
            w.start_ms,
            w.end_ms,
            transcript,
            translations,
            timing=Timing(*w.timing),
            error=error,
            detected=detected,
            speech_in_commits=w.speech_in_commits,
            renditions=tuple(_translation(x) for x in w.renditions),
        )
    else:
        ev = InterimResult(w.segment_id, w.start_ms, w.end_ms, transcript=transcript, translations=translations)
    return w, RoomOutput(w.speaker, ev, original=w.original)


def _translation(x: Text) -> Translation:
    audio, rate, opus = _decoded(x.speech)
    return Translation(
        x.language,
        x.text,
        audio,
        rate,
        opus,
        x.stable_text,
        _timings(x),
        avg_logprob=x.avg_logprob,
        speech_rate=x.speech_rate if audio is not None else None,
    )


def _timings(text: Text) -> tuple[WordTiming, ...]:
    scores = text.word_logprobs if len(text.word_logprobs) == len(text.words) else [None] * len(text.words)
    return tuple(
        WordTiming(word, start, end, logprob=lp) for (word, start, end), lp in zip(text.words, scores, strict=True)
    )


def _decoded(speech: Speech | None) -> tuple[np.ndarray | None, int, OpusSpeech | None]:
    """Float32 speech at the speaker's rate (and its Opus packets when the speaker's output was Opus)."""
    if speech is None:
        return None, _OPUS_RATE, None
    decoder = OpusStreamDecoder(1)
    pcm = [decoder.decode(p) for p in speech.packets]
    wave = np.concatenate(pcm) if pcm else np.zeros(0, np.float32)
    wave = wave[speech.pre_skip : speech.pre_skip + speech.num_samples]
    if speech.opus:
        return wave, _OPUS_RATE, OpusSpeech(tuple(speech.packets), speech.pre_skip, speech.num_samples)
    if speech.rate != _OPUS_RATE:
        wave = resample(wave, _OPUS_RATE, speech.rate)
    return wave.astype(np.float32, copy=False), speech.rate, None
