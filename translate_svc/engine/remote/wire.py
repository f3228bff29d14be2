"""The messages between a front-end worker and the engine process, and their framing.

Every message is a msgspec ``Struct`` (a tagged union, encoded as a MessagePack array); a frame is
a 4-byte big-endian length and the encoded message. Samples travel as raw little-endian float32
bytes inside the message, so one segment is one frame and one copy on each side.

Every job the worker submits gets exactly one terminal reply: ``Result``, ``Refused`` or ``Gone``
(cancelled or aborted before it reached the model). ``State`` follows every terminal reply and
every second, so the worker's view of the queue is never more than one reply old; every worker hears
one when a session joins or leaves anywhere (the share changed).
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal, cast

import msgspec
import numpy as np

from translate_svc import framing
from translate_svc.engine.jobs import JobResult
from translate_svc.engine.runner import (
    ModelInput,
    ModelOutput,
    SimulRequest,
    SimulRowOutput,
    SourceText,
)
from translate_svc.framing import FrameError as FrameError  # the engine's side and a worker's catch it
from translate_svc.types import ModelCard, SegmentError, Term, TraceRef, WordTiming

#: a frame larger than this is a broken peer, not a segment (a 60 s segment is 3.8 MB of samples)
MAX_FRAME_BYTES: Final = 256 * 1024 * 1024
#: the stream reader's buffer: a few segments (3.11 trims it from the front, so larger costs more)
READ_LIMIT: Final = 512 * 1024
#: what a transport may hold before frames wait in the channel's own queue
WRITE_HIGH: Final = 1024 * 1024


# -- worker -> engine -------------------------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", array_like=True):
    worker: str
    pid: int


class Submit(msgspec.Struct, tag="submit", array_like=True):
    job: int
    owner: str
    droppable: bool
    targets: tuple[str, ...]
    transcript_language: str | None
    speech: bool
    speaker_id: int
    audio: bytearray  # float32 little-endian, 16 kHz mono (a bytearray: numpy may write to it)
    detect: tuple[str, ...] | None = None
    terms: tuple[Term, ...] = ()
    #: a simultaneous step (its policy state is data: the targets' committed tokens and recent
    #: hypotheses travel with it)
    simul: SimulRequest | None = None
    #: text in instead of speech (``audio`` empty)
    text: SourceText | None = None
    words: bool = False


class Cancel(msgspec.Struct, tag="cancel", array_like=True):
    job: int


class Abort(msgspec.Struct, tag="abort", array_like=True):
    owner: str


class Join(msgspec.Struct, tag="join", array_like=True):
    """A session opened: it counts in the queue's shares (``EngineClient.join``)."""

    owner: str


class Leave(msgspec.Struct, tag="leave", array_like=True):
    """A session closed: its jobs are dropped and it no longer counts (``EngineClient.leave``)."""

    owner: str


# -- engine -> worker -------------------------------------------------------------------------------


class State(msgspec.Struct, tag="state", array_like=True):
    healthy: bool
    queued: int
    running: int
    max_queued: int
    workers: int  # front-end workers connected now
    share: int = 1  # one session's share of the queue (``EngineStats.share``)
    sessions: int = 0  # sessions open on the node


class Welcome(msgspec.Struct, tag="welcome", array_like=True):
    card: ModelCard
    state: State


class SimulRow(msgspec.Struct, array_like=True):
    """``SimulRowOutput`` on the wire: its chunk as raw float32 bytes, like the waveforms."""

    language: str
    token_ids: tuple[int, ...]
    text: str
    word_starts: tuple[int, ...]
    committed: tuple[int, ...]
    committed_text: str
    units_total: int
    chunk_units: tuple[int, ...]
    chunk: bytearray | None  # float32 little-endian at the model's rate
    spoken_tokens: int
    spoken_units: int
    chunk_words: tuple[WordTiming, ...] = ()


class Result(msgspec.Struct, tag="result", array_like=True):
    job: int
    transcript: str | None
    texts: dict[str, str]
    waveforms: dict[str, bytearray]  # float32 little-endian at the model's rate
    error: SegmentError | None
    queue_ms: float
    model_ms: float
    batch_size: int
    has_output: bool
    detected: dict[str, float] | None = None
    speech_ms: float = 0.0
    language_id_ms: float = 0.0
    #: the batch's span (``JobResult.batch_trace``) as 32 + 16 hex digits (a trace id is 128 bits:
    #: more than a MessagePack integer holds); empty: none
    batch_trace: str = ""
    #: a simultaneous step's rows, by target language
    simul: dict[str, SimulRow] | None = None
    words: dict[str, tuple[WordTiming, ...]] = {}
    transcript_words: tuple[WordTiming, ...] = ()
    #: ``JobResult.optional_ms``, ``optional_batches``: a final's wait behind optional work
    optional_ms: float = 0.0
    optional_batches: int = 0


#: overloaded: the queue is full; not_ready: the model is not serving; dropped: a droppable job the
#: engine is too busy for
Reason = Literal["overloaded", "not_ready", "dropped"]


class Refused(msgspec.Struct, tag="refused", array_like=True):
    job: int
    reason: Reason
    message: str
    retry_after_ms: int | None


class Gone(msgspec.Struct, tag="gone", array_like=True):
    job: int


ToEngine = Hello | Submit | Cancel | Abort | Join | Leave
ToWorker = Welcome | State | Result | Refused | Gone


# -- conversions ------------------------------------------------------------------------------------


def _f32(x: np.ndarray) -> bytearray:
    """The samples' bytes, without a copy where they are float32 already. msgspec encodes a
    memoryview as it does a bytearray; the fields are typed bytearray for the decoding side."""
    return cast(bytearray, np.ascontiguousarray(x, dtype="<f4").view(np.uint8).data)


def _samples(b: bytearray) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


def submit_of(job: int, owner: str, item: ModelInput, *, droppable: bool) -> Submit:
    return Submit(
        job,
        owner,
        droppable,
        item.targets,
        item.transcript_language,
        item.speech,
        item.speaker_id,
        _f32(item.audio),
        item.detect,
        item.terms,
        item.simul,
        item.text,
        item.words,
    )


def model_input(m: Submit) -> ModelInput:
    return ModelInput(
        _samples(m.audio),
        m.targets,
        m.transcript_language,
        m.speech,
        m.speaker_id,
        m.detect,
        m.terms,
        simul=m.simul,
        text=m.text,
        words=m.words,
    )


def _simul_row(r: SimulRowOutput) -> SimulRow:
    return SimulRow(
        r.language,
        r.token_ids,
        r.text,
        r.word_starts,
        r.committed,
        r.committed_text,
        r.units_total,
        r.chunk_units,
        None if r.chunk is None else _f32(r.chunk),
        r.spoken_tokens,
        r.spoken_units,
        r.chunk_words,
    )


def _simul_output(r: SimulRow) -> SimulRowOutput:
    return SimulRowOutput(
        r.language,
        r.token_ids,
        r.text,
        r.word_starts,
        r.committed,
        r.committed_text,
        r.units_total,
        r.chunk_units,
        None if r.chunk is None else _samples(r.chunk),
        r.spoken_tokens,
        r.spoken_units,
        tuple(r.chunk_words),
    )


def result_of(job: int, r: JobResult) -> Result:
    out = r.output
    return Result(
        job,
        out.transcript if out else None,
        dict(out.texts) if out else {},
        {k: _f32(v) for k, v in out.waveforms.items()} if out else {},
        r.error,
        r.queue_ms,
        r.model_ms,
        r.batch_size,
        out is not None,
        out.detected if out else None,
        out.speech_ms if out else 0.0,
        out.language_id_ms if out else 0.0,
        _trace_hex(r.batch_trace),
        {k: _simul_row(v) for k, v in out.simul.items()} if out and out.simul is not None else None,
        dict(out.words) if out else {},
        out.transcript_words if out else (),
        r.optional_ms,
        r.optional_batches,
    )


def job_result(m: Result) -> JobResult:
    output = None
    if m.has_output:
        waveforms = {k: _samples(v) for k, v in m.waveforms.items()}
        simul = None if m.simul is None else {k: _simul_output(v) for k, v in m.simul.items()}
        output = ModelOutput(
            m.transcript,
            m.texts,
            waveforms,
            m.detected,
            m.speech_ms,
            m.language_id_ms,
            simul,
            dict(m.words),
            tuple(m.transcript_words),
        )
    return JobResult(
        output,
        m.error,
        m.queue_ms,
        m.model_ms,
        m.batch_size,
        _trace_ref(m.batch_trace),
        m.optional_ms,
        m.optional_batches,
    )


def _trace_hex(ref: TraceRef | None) -> str:
    return "" if ref is None else f"{ref.trace_id:032x}{ref.span_id:016x}"


def _trace_ref(text: str) -> TraceRef | None:
    if len(text) != 48:
        return None
    try:
        return TraceRef(int(text[:32], 16), int(text[32:], 16))
    except ValueError:
        return None


# -- framing ----------------------------------------------------------------------------------------


class Channel(framing.Channel["ToEngine | ToWorker"]):
    """One connection's framing (``translate_svc/framing.py``) with this wire's bounds."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, incoming: object) -> None:
        """``incoming``: ``ToEngine`` on the engine's side, ``ToWorker`` on a worker's."""
        super().__init__(reader, writer, incoming, max_frame_bytes=MAX_FRAME_BYTES, write_high=WRITE_HIGH)
