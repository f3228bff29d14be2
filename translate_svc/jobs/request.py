"""A job's request as a door parsed it, the same whatever its wire (``POST /v1/jobs``'s JSON body,
``CreateJob``'s message: ``transport/jobs/options.py``), before the desk checks it against the
model and the limits (``desk.py``: ``JobDesk.spec``), and the server's bound of a dub's ``fit``
where a request leaves it unset. Plain frozen values: safe to share between tasks and threads."""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.jobs.cues import Imported
from translate_svc.jobs.speaker_voices import DISTINCT, SpeakerVoices
from translate_svc.settings.jobs import JobSettings
from translate_svc.types import AudioEncoding, DubFit, EarOptions, OutputOptions


@dataclass(frozen=True)
class JobRequest:
    """A job's request as a door parsed it, not yet checked against the model (``JobDesk.spec``)."""

    encoding: AudioEncoding
    sample_rate_hz: int
    channels: int
    source_language: str
    target_languages: list[str]
    glossaries: list[str]
    output: OutputOptions
    ear: EarOptions
    #: an https URL to fetch the audio from; None: it is uploaded in parts
    url: str | None = None
    #: a conversation's languages as sent (checked by the desk: ``session/task/conversation.py``);
    #: None: none sent, the job has fixed targets
    conversation: tuple[str, ...] | None = None
    #: the VAD options the request set (``VadOptions``' fields, named as ``SegmenterConfig``'s),
    #: over the server's ``vad`` settings; checked by the desk
    vad: tuple[tuple[str, float | int | str], ...] = ()
    #: the channels are parties (``channel_mode`` SEPARATE): each translated on its own
    separate_channels: bool = False
    #: the speakers' voices asked (``speaker_voices.py``); checked by the desk
    speaker_voices: SpeakerVoices = DISTINCT
    #: a studio's translation to voice at its timings instead of translating the audio (``cues.py``)
    subtitles: Imported | None = None


def fit_default(settings: JobSettings) -> DubFit:
    """The bound of a job's (or a clip's) ``fit`` where the request leaves it unset."""
    return DubFit(settings.fit_slowest, settings.fit_fastest)
