"""What a tenant keeps of its sessions, as the stream core sees it: the tenant's policy
and the recorder tap.

A tenant's line in the tokens file says whether its sessions are recorded (``record=none|text|
audio``, ``none`` by default) and for how long they are kept (``retention_days``). The stream core
(``StreamSession``) is the one place every door's input audio and results both pass: it hands
them to a ``Recorder`` when the tenant records (``Recorders.open``, given to the manager at
construction; ``translate_svc/recordings/`` implements both). A recorder must never hold up or
fail the call: its methods only enqueue and return at once, and never raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import numpy as np

from translate_svc.types import AudioFormat, SegmentResult, TranslationTask


class RecordMode(str, Enum):
    """What is kept of a tenant's sessions."""

    NONE = "none"  # nothing
    TEXT = "text"  # the segments as JSON lines (timings, transcript, translations, word timings)
    AUDIO = "audio"  # those, the source audio and each target's translated speech (Ogg Opus)


@dataclass(frozen=True)
class RecordPolicy:
    """A tenant's recording policy. ``retention_days`` None: the server's default
    (``recordings.default_retention_days``); a float, so that tests can keep one for seconds."""

    mode: RecordMode = RecordMode.NONE
    retention_days: float | None = None


NO_RECORDING = RecordPolicy()


class Recorder(Protocol):
    """One session's recording. Event loop only; every method returns at once and never raises."""

    def audio(self, samples: np.ndarray) -> None:
        """The stream's input audio, mono float32 at its ``AudioFormat.heard_rate`` (an Opus
        stream's at 16 kHz, as decoded), in timeline order (silence filled in for skipped stretches)."""

    def result(self, result: SegmentResult) -> None:
        """A final result, as it goes out to the client, in order."""

    def close(self) -> None:
        """The call is over, however it ended: the recording is finished (off the call's path)."""


class Recorders(Protocol):
    """Opens a session's recorder when its tenant records."""

    def open(
        self,
        tenant: str,
        policy: RecordPolicy,
        session_id: str,
        fmt: AudioFormat,
        task: TranslationTask,
        *,
        resume_token: str | None = None,
    ) -> Recorder | None:
        """The recorder of a new session of ``tenant`` (None: not recorded). ``resume_token``: its
        stream's, which every call of a stream resumed across servers shares."""
