"""A job's vocabulary: what was asked (``JobSpec``), where it stands (``JobStatus``), and a finished
segment as JSON (``segment_json``), the form results are stored and served in. Pure.

A job takes every output option and every ear option a ``Translate`` call does (the
spec once dropped all but three), each stored with the spec and passed to the job's session;
a spec stored before a field existed reads it as its default."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

from translate_svc.errors import InvalidInput
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    NO_EAR,
    AudioEncoding,
    AudioFormat,
    DubFit,
    EarOptions,
    OutputOptions,
    Profanity,
    SegmentResult,
    Transcript,
    WordTiming,
)
from translate_svc.vad.segmenter import SegmenterConfig


class JobState(str, Enum):
    #: created for an upload in parts; its parts are still coming
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSpec:
    """What the client asked for: the audio's format, the languages, the output and ear options."""

    encoding: AudioEncoding = AudioEncoding.CONTAINER
    sample_rate_hz: int = 0
    channels: int = 1
    source_language: str = ""
    target_languages: tuple[str, ...] = ()
    #: the dubbed track per target
    speech: bool = True
    transcript: bool = True
    word_timings: bool = True
    #: the translations' text (off: speech alone, as ``OutputOptions.text``)
    text: bool = True
    #: the dubbed tracks' rate (8000..48000)
    speech_sample_rate_hz: int = MODEL_SAMPLE_RATE
    #: the vocoder's voice
    speaker_id: int = 0
    #: the profanity filter; None: the tenant's default (its tokens-file ``profanity=``)
    profanity: Profanity | None = None
    #: the dubbed tracks' speaking rate (``OutputOptions.speed``); a spec stored before
    #: it existed reads 1, the model's own rate
    speed: float = 1.0
    #: dubbing to the source's clock (``OutputOptions.fit``): the bound each segment's
    #: speech is fitted with, kept with the spec (a resumed job keeps its bound whatever the server's
    #: ``jobs.fit_*`` became); None: off (as a spec stored before it existed reads)
    fit: DubFit | None = None
    #: noise suppression and speaker labels (``EarOptions``), as a live stream's
    ear: EarOptions = NO_EAR
    #: stored glossaries named by id (``glossaries/``)
    glossaries: tuple[str, ...] = ()
    #: the https URL the audio is fetched from by the worker that claims the job (``intake.py``);
    #: empty: it is uploaded in parts. Kept with the spec in either store, never shown
    url: str = ""
    #: a conversation's languages (each segment identified among them, translated into the
    #: others; ``target_languages`` and ``source_language`` empty); empty: fixed targets (as a spec
    #: stored before it existed reads)
    conversation: tuple[str, ...] = ()
    #: the VAD options the job set (field, value: ``SegmenterConfig``'s names), over the server's
    #: ``vad`` settings as they are when it runs (``vad_config``); empty: the server's (as a spec
    #: stored before it existed reads)
    vad: tuple[tuple[str, float | int | str], ...] = ()
    #: the channels are parties (``channel_mode`` SEPARATE): each of the audio's 2 channels
    #: segmented and translated on its own, each segment labelled with its channel (and as its
    #: speaker), the dubbed WAV a channel per party (``jobs/translation.py``, ``dub.py``); False:
    #: the channels mixed (as a spec stored before it existed reads)
    separate_channels: bool = False
    #: a voice per speaker (``speaker_voices.py``): the labels' voices the request named (label,
    #: voice), each other label a voice of its own, re-voiced once the file's labels are final
    #: (``voices.py``); None: every speaker in ``speaker_id``'s voice (as a spec stored before it
    #: existed reads)
    speaker_voices: tuple[tuple[int, int], ...] | None = None
    #: the job voices subtitles imported with it (``cues.py``: kept in its folder) in this
    #: language, each cue a segment said as written and fitted into its time, instead of
    #: translating its audio; empty: it translates its audio (as a spec stored before it existed reads)
    subtitles_language: str = ""

    def vad_config(self, defaults: SegmenterConfig) -> SegmenterConfig:
        """The job's VAD settings: its own options over ``defaults`` (InvalidInput names a bad one)."""
        if not self.vad:
            return defaults
        overrides: dict[str, Any] = dict(self.vad)
        try:
            return replace(defaults, **overrides)
        except InvalidInput as e:  # VadConfigError: names each bad field, its value and its range
            raise InvalidInput(f"invalid VAD options: {e.message}") from None

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the job translates into, each with its dubbed track and subtitles: the
        targets, or a conversation's languages (a segment spoken in one has no translation in it:
        its track is silent there)."""
        return self.conversation or self.target_languages

    @property
    def fmt(self) -> AudioFormat:
        return AudioFormat(self.encoding, self.sample_rate_hz, self.channels)

    @property
    def output(self) -> OutputOptions:
        """The job's output options, as its session takes them (its speech always PCM)."""
        return OutputOptions(
            text=self.text,
            speech=self.speech,
            transcript=self.transcript,
            speech_sample_rate_hz=self.speech_sample_rate_hz,
            speaker_id=self.speaker_id,
            word_timings=self.word_timings,
            profanity=self.profanity,
            speed=self.speed,
            fit=self.fit,
        )

    @property
    def track_rate(self) -> int:
        """The dubbed tracks' sample rate."""
        return self.speech_sample_rate_hz

    def to_json(self) -> str:
        d = asdict(self)
        d["encoding"] = self.encoding.value
        d["profanity"] = None if self.profanity is None else self.profanity.value
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """A stored spec; a field it lacks (stored before the field existed) is the default."""
        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["encoding"] = AudioEncoding(d["encoding"])
        d["target_languages"] = tuple(d["target_languages"])
        d["glossaries"] = tuple(d.get("glossaries", ()))
        d["conversation"] = tuple(d.get("conversation", ()))
        d["vad"] = tuple((str(k), v) for k, v in d.get("vad", ()))
        if d.get("profanity") is not None:
            d["profanity"] = Profanity(d["profanity"])
        if "ear" in d:
            d["ear"] = EarOptions(**d["ear"])
        if d.get("fit") is not None:
            d["fit"] = DubFit(**d["fit"])
        if d.get("speaker_voices") is not None:
            d["speaker_voices"] = tuple((int(label), int(voice)) for label, voice in d["speaker_voices"])
        return cls(**d)


@dataclass(frozen=True)
class JobStatus:
    """A job as its owner sees it."""

    job_id: str
    tenant: str
    state: JobState
    spec: JobSpec
    created_at: float
    updated_at: float
    #: bytes of audio received (an upload's next part starts here)
    received_bytes: int = 0
    #: the audio's length, once known (when its upload completed)
    duration_ms: int = 0
    #: the audio translated so far: the last finished segment's end
    done_ms: int = 0
    segments: int = 0
    #: why it failed or was cancelled
    error: str = ""
    #: when its results go (Unix seconds; 0: not finished)
    expires_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        progress = min(1.0, self.done_ms / self.duration_ms) if self.duration_ms else 0.0
        if self.state is JobState.DONE:
            progress = 1.0
        out: dict[str, Any] = {
            "id": self.job_id,
            "state": self.state.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "received_bytes": self.received_bytes,
            "duration_ms": self.duration_ms,
            "done_ms": self.done_ms,
            "progress": round(progress, 4),
            "segments": self.segments,
            "error": self.error,
            "expires_at": self.expires_at,
            "source_language": self.spec.source_language,
            "target_languages": list(self.spec.target_languages),
        }
        if self.spec.conversation:  # as the request named it
            out["conversation"] = {"languages": list(self.spec.conversation)}
        if self.spec.vad:  # the VAD options it set, as the request named them
            out["vad"] = dict(self.spec.vad)
        if self.spec.separate_channels:
            out["channel_mode"] = "separate"
        if self.spec.speaker_voices is not None:  # a voice per speaker: the labels' voices named
            out["speaker_voices"] = {str(label): voice for label, voice in self.spec.speaker_voices}
        if self.spec.subtitles_language:  # subtitles voiced instead of the audio translated
            out["subtitles_language"] = self.spec.subtitles_language
        return out


def words_json(words: tuple[WordTiming, ...], shift_ms: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "word": w.word,
            "start_ms": w.start_ms + shift_ms,
            "end_ms": w.end_ms + shift_ms,
            "speaker": w.speaker,
            "avg_logprob": w.logprob,
        }
        for w in words
    ]


def _transcript(t: Transcript | None, shift_ms: int) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "language": t.language,
        "text": t.text,
        "words": words_json(t.words, shift_ms),
        "avg_logprob": t.avg_logprob,
    }


def segment_json(r: SegmentResult, *, segment_id: int, shift_ms: int = 0) -> dict[str, Any]:
    """One finished segment on the job's timeline (``shift_ms``: where the session that computed it
    started in the audio, after a resume). A translation's words are on its own speech's timeline;
    its speech is in the job's dubbed track (``audio_ms``: its length; ``audio_samples``: the same
    in samples at the track's rate, which places it there: ``jobs/dub.py``). ``avg_logprob``: the
    confidence, null where not computed; ``speaker``: its label with ``speakers`` on
    (else 0). ``speech_rate``: the rate its speech was made at (null without speech);
    ``overlap_ms``: with ``fit``, how far the speech runs past the next segment's start (0: it
    fits; null without ``fit``); ``channel``: in a job of separate channels, the channel it was
    spoken on (1, 2; absent otherwise)."""
    out: dict[str, Any] = {
        "segment_id": segment_id,
        "start_ms": r.start_ms + shift_ms,
        "end_ms": r.end_ms + shift_ms,
        "transcript": _transcript(r.transcript, shift_ms),
        "translations": [
            {
                "target_language": t.target_language,
                "text": t.text,
                "words": words_json(t.words),
                "avg_logprob": t.avg_logprob,
                "audio_ms": 0 if t.audio is None else round(len(t.audio) * 1000 / t.sample_rate_hz),
                "audio_samples": 0 if t.audio is None else len(t.audio),
                "speech_rate": t.speech_rate,
                "overlap_ms": t.overlap_ms,
            }
            for t in r.translations
        ],
        "speaker": r.speaker,
    }
    if r.channel:  # a job of separate channels: the channel it was spoken on (1, 2)
        out["channel"] = r.channel
    if r.detected is not None:
        out["detected_language"] = r.detected.language
    if r.error is not None:
        out["error"] = {"code": r.error.code, "message": r.error.message}
    return out
