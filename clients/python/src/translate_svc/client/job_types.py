"""Background jobs as the SDK gives them (docs/client.md, "Jobs"): typed values, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class JobState(str, Enum):
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
class Job:
    """A job as the server last said: ``progress`` 0..1 (``done_ms`` of ``duration_ms``),
    ``segments`` finished, ``error`` why it failed."""

    id: str
    state: JobState
    received_bytes: int
    duration_ms: int
    done_ms: int
    progress: float
    segments: int
    error: str
    created_at: float
    expires_at: float
    source_language: str
    targets: tuple[str, ...]
    #: a conversation's languages (a job submitted with ``conversation``; ``targets`` empty)
    conversation: tuple[str, ...] = ()
    #: its channels are parties (submitted with ``separate_channels``): each segment says its channel
    separate_channels: bool = False
    #: a voice per speaker (``submit_job(speakers=2)``): the labels' voices the request named (empty:
    #: a voice each); None: one voice for every speaker
    speaker_voices: dict[int, int] | None = None


@dataclass(frozen=True)
class JobList:
    """A page of the caller's tenant's jobs, newest first (``list_jobs``); ``next_page_token``:
    give it back for the next page (empty: this page is the last)."""

    jobs: tuple[Job, ...]
    next_page_token: str


@dataclass(frozen=True)
class SegmentEdit:
    """A done job's segment said again (``edit_job``): its translation into ``language`` with a
    new ``text`` (said exactly as written; "" silences it), ``voice`` or ``speed`` (None: as it
    is)."""

    segment_id: int
    language: str
    text: str | None = None
    voice: int | None = None
    speed: float | None = None


@dataclass(frozen=True)
class EditedTranslation:
    """A translation before or after an edit (``speech_rate`` 0: no speech)."""

    text: str
    voice: int
    speech_rate: float
    audio_ms: int


@dataclass(frozen=True)
class SegmentEdited:
    """What one edit changed (``changed``: of "text", "voice", "speed"), before and after."""

    segment_id: int
    language: str
    changed: tuple[str, ...]
    before: EditedTranslation
    after: EditedTranslation
