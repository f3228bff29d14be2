"""The messages between a front-end worker and the engine process, and their framing.

Every message is a msgspec ``Struct`` (a tagged union, encoded as a MessagePack array); a frame is
a 4-byte big-endian length and the encoded message. A job and its output are the engine's own job
vocabulary (model_api/requests.py: ``Submit.item`` is the ``ModelInput``, ``Result.output`` the
``ModelOutput``), carried as they are, so a field added there crosses without a word here
(tests/engine/test_wire_vocabulary.py holds it). Numpy arrays travel as a MessagePack extension:
their dtype, shape and raw little-endian bytes, so one segment is one frame and one copy on each
side.

Every job the worker submits gets exactly one terminal reply: ``Result``, ``Refused`` or ``Gone``
(cancelled or aborted before it reached the model). ``State`` follows every terminal reply and
every second, so the worker's view of the queue is never more than one reply old; every worker hears
one when a session joins or leaves anywhere (the share changed).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final, Literal

import msgspec
import numpy as np

from translate_svc import framing
from translate_svc.engine.results import EngineResult
from translate_svc.framing import FrameError as FrameError  # the engine's side and a worker's catch it
from translate_svc.model_api.requests import ModelInput, ModelOutput
from translate_svc.types import ModelCard, SegmentError, TraceRef

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
    """A job: the engine's own ``ModelInput`` (model_api/requests.py), carried as it is."""

    job: int
    owner: str
    droppable: bool
    item: ModelInput
    #: a droppable job queued while finals wait (``EngineClient.submit_droppable``)
    behind_finals: bool = False


class Cancel(msgspec.Struct, tag="cancel", array_like=True):
    job: int


class Abort(msgspec.Struct, tag="abort", array_like=True):
    owner: str


class Join(msgspec.Struct, tag="join", array_like=True):
    """A session opened: it counts in the queue's shares (``EngineClient.join``); ``background``:
    its segments are background work (``EngineClient.background``; sent again with it)."""

    owner: str
    background: bool = False


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


class Result(msgspec.Struct, tag="result", array_like=True):
    """A job's ``EngineResult``: its ``ModelOutput`` carried as it is; the batch's span as 32 + 16 hex
    digits (a trace id is 128 bits: more than a MessagePack integer holds), empty for none."""

    job: int
    output: ModelOutput | None
    error: SegmentError | None
    queue_ms: float
    model_ms: float
    batch_size: int
    batch_trace: str = ""
    #: ``EngineResult.optional_ms``, ``optional_batches``: a final's wait behind optional work
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

#: numpy arrays cross as a MessagePack extension: a dtype code, the shape, then the raw
#: little-endian bytes (one copy on each side, as the samples always did)
_EXT_ARRAY: Final = 1
_DTYPES: Final[dict[np.dtype, int]] = {np.dtype("<f4"): 0, np.dtype("<i8"): 1, np.dtype("<i4"): 2, np.dtype("<f8"): 3}
_CODES: Final[dict[int, np.dtype]] = {code: dtype for dtype, code in _DTYPES.items()}
_HEAD = struct.Struct("<BB")  # dtype code, number of dimensions; then one <u4 per dimension


def _encode_array(x: object) -> msgspec.msgpack.Ext:
    """``enc_hook``: a numpy array as an extension (float32 samples, int64 masks...)."""
    if not isinstance(x, np.ndarray):
        raise NotImplementedError(f"the engine's wire does not carry {type(x).__name__}")
    a = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("<"))
    code = _DTYPES.get(a.dtype)
    if code is None:
        raise NotImplementedError(f"the engine's wire does not carry arrays of {a.dtype}")
    head = _HEAD.pack(code, a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
    return msgspec.msgpack.Ext(_EXT_ARRAY, head + a.view(np.uint8).data.tobytes())


def _decode_ext(code: int, data: memoryview) -> np.ndarray:
    """``ext_hook``: an array from ``_encode_array``'s extension, over a copy of its bytes that numpy
    may write to."""
    if code != _EXT_ARRAY:
        raise ValueError(f"unknown extension {code}")
    dtype, ndim = _HEAD.unpack_from(data)
    shape = struct.unpack_from(f"<{ndim}I", data, _HEAD.size)
    body = bytearray(data[_HEAD.size + 4 * ndim :])
    return np.frombuffer(body, dtype=_CODES[dtype]).reshape(shape)


def _decode_array(kind: type, obj: object) -> object:
    """``dec_hook``: the arrays are already decoded by ``_decode_ext``."""
    if kind is np.ndarray and isinstance(obj, np.ndarray):
        return obj
    raise NotImplementedError(f"the engine's wire cannot make a {kind.__name__} of {type(obj).__name__}")


#: the hooks ``Channel`` and the tests encode and decode with
HOOKS: Final = {"enc_hook": _encode_array}
DECODE_HOOKS: Final = {"dec_hook": _decode_array, "ext_hook": _decode_ext}


def encode(message: ToEngine | ToWorker) -> bytes:
    return msgspec.msgpack.encode(message, enc_hook=_encode_array)


def decode(data: bytes, kind: object) -> object:
    """``data`` decoded as ``kind`` (``ToEngine`` or ``ToWorker``)."""
    return msgspec.msgpack.decode(data, type=kind, dec_hook=_decode_array, ext_hook=_decode_ext)


def submit_of(job: int, owner: str, item: ModelInput, *, droppable: bool, behind_finals: bool = False) -> Submit:
    return Submit(job, owner, droppable, item, behind_finals)


def model_input(m: Submit) -> ModelInput:
    return m.item


def result_of(job: int, r: EngineResult) -> Result:
    return Result(
        job,
        r.output,
        r.error,
        r.queue_ms,
        r.model_ms,
        r.batch_size,
        _trace_hex(r.batch_trace),
        r.optional_ms,
        r.optional_batches,
    )


def job_result(m: Result) -> EngineResult:
    return EngineResult(
        m.output,
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
        super().__init__(
            reader,
            writer,
            incoming,
            max_frame_bytes=MAX_FRAME_BYTES,
            write_high=WRITE_HIGH,
            hooks=HOOKS,
            decode_hooks=DECODE_HOOKS,
        )
