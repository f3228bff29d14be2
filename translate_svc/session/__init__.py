"""One stream, for every door: the stream protocol (``StreamDriver``) over small collaborators.

``manager`` admits streams and calls, opens their sessions and shares the engine fairly; each call
kind has its driver, which checks its requests (``task``: every request check) and does its work:
``driver`` owns the stream protocol (when its timers are due: ``clock``; a room speaker's part:
``rooms.seat``), ``clip`` and ``text`` the unary calls (a whole clip, texts), ``listen`` a listen
to a room. ``stream`` is one stream's lifecycle over ``timeline`` (decoding), ``vad_bridge`` (the
shared VAD), ``jobs`` (engine jobs and ordered output), ``captions`` and ``simultaneous`` (commits
while speech is open); ``rooms/`` is the rooms' core (the registry, rooms and speakers, listeners,
the backlog, the link across processes); ``tenants/`` is who calls and what holds them to their
caps (the tenant, the counters and their leases, the audio budget); ``events`` is the typed
vocabulary doors speak. Imports run one way: the drivers import the manager, never the reverse.
Nothing here imports grpc or protobuf: doors live in ``transport/``, and what this package exports
is what they drive (the drivers, the manager and the events): one stream's session is the
manager's and its driver's.
"""

from translate_svc.session.driver import StreamDriver
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
from translate_svc.session.text import TextDriver, TextsResult
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
