"""One stream, for every door: the stream protocol (``StreamDriver``) over small collaborators, laid
out along a call's road.

``events`` is the typed vocabulary doors speak. ``admission`` says who may start what (the node's
limits, each tenant's caps) before a byte is read; ``manager`` holds what every call shares (the
gate, fair share of the engine, drain, the pools of ``work``) and opens sessions. ``calls/`` has
each call kind's driver: ``calls/stream`` the stream protocol (when its timers are due:
``calls/clock``), ``calls/clip`` and ``calls/text`` the unary calls, ``calls/listen`` a listen to a
room, a room speaker's ``renditions``, with their ``accounting`` and ``lifecycle`` events. ``task/``
is what a call asks for, checked once (``task/checks``). ``stream/`` is one stream's life from audio
to engine jobs: ``session`` over ``timeline`` (decoding), ``reorder``, ``vad_bridge`` (the shared
VAD), ``segments`` (engine jobs and ordered output), ``captions``, ``simultaneous``, ``speakers``,
``ear``; ``results`` builds what goes back out. ``rooms/`` is the rooms' core, ``tenants/`` who
calls, what holds them to their caps and what is recorded of their sessions. Imports run one way:
the drivers import the manager, never the reverse. Nothing here imports grpc or protobuf: doors live
in ``transport/``, and what this package exports is what they drive.
"""

from translate_svc.session.calls.stream import StreamDriver
from translate_svc.session.calls.text import TextDriver, TextsResult
from translate_svc.session.events import (
    AudioIn,
    ClipResult,
    Draining,
    Flush,
    Invalid,
    Resume,
    SpeechEvent,
    StreamConfig,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
    TextRequest,
    Update,
    Updated,
)
from translate_svc.session.manager import SessionManager
from translate_svc.types import Commit, InterimResult, SegmentResult

__all__ = [
    "AudioIn",
    "ClipResult",
    "Commit",
    "Draining",
    "Flush",
    "InterimResult",
    "Invalid",
    "Resume",
    "SegmentResult",
    "SessionManager",
    "SpeechEvent",
    "StreamConfig",
    "StreamDriver",
    "StreamEnded",
    "StreamEvent",
    "StreamRequest",
    "StreamStarted",
    "TextDriver",
    "TextRequest",
    "TextsResult",
    "Update",
    "Updated",
]
