"""The messages between a worker's ``HubStore`` and the node's ``HubServer`` (framed as
``translate_svc/framing.py`` says: a 4-byte length and one MessagePack message).

A worker says ``Hello`` and is told its holder name and the lease time (``Welcome``). Every request
that carries ``rid`` gets exactly one reply with the same ``rid``: ``Done``, a value (``Added``,
``Entries``, ``Listed``, ``Granted``, ``Counted``, ``Level``), ``Refused`` (a cap is full) or
``Failed`` (the request was wrong: a bug, said in words). ``Publish``, ``Unsubscribe`` and
``Unwatch`` get none. The hub pushes ``Message`` (a publish on a channel the worker subscribed to)
and ``Changed`` (a group it watches changed).
"""

from __future__ import annotations

from typing import Final

import msgspec

#: the largest frame either side takes: a read's entries (``count`` of them) fit many times over
MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
#: the stream reader's buffer
READ_LIMIT: Final = 256 * 1024
#: what a transport may hold before frames wait in the channel's own queue
WRITE_HIGH: Final = 256 * 1024

# -- worker -> hub ----------------------------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", array_like=True):
    worker: str
    pid: int


class Publish(msgspec.Struct, tag="pub", array_like=True):
    channel: str
    data: bytes


class Subscribe(msgspec.Struct, tag="sub", array_like=True):
    rid: int
    channel: str


class Unsubscribe(msgspec.Struct, tag="unsub", array_like=True):
    channel: str


class Append(msgspec.Struct, tag="append", array_like=True):
    rid: int
    key: str
    data: bytes
    keep_s: float
    max_len: int


class Read(msgspec.Struct, tag="read", array_like=True):
    rid: int
    key: str
    after: str
    within_s: float | None
    count: int
    block_s: float


class Join(msgspec.Struct, tag="join", array_like=True):
    rid: int
    group: str
    member: str
    value: bytes


class Leave(msgspec.Struct, tag="leave", array_like=True):
    rid: int
    group: str
    member: str


class Members(msgspec.Struct, tag="members", array_like=True):
    rid: int
    group: str


class Watch(msgspec.Struct, tag="watch", array_like=True):
    rid: int
    group: str


class Unwatch(msgspec.Struct, tag="unwatch", array_like=True):
    group: str


class Acquire(msgspec.Struct, tag="acquire", array_like=True):
    rid: int
    wants: list[tuple[str, int]]


class Release(msgspec.Struct, tag="release", array_like=True):
    rid: int
    lease: str


class Renew(msgspec.Struct, tag="renew", array_like=True):
    rid: int


class Count(msgspec.Struct, tag="count", array_like=True):
    rid: int
    name: str


class Spend(msgspec.Struct, tag="spend", array_like=True):
    rid: int
    name: str
    amount: float
    per_minute: float


# -- hub -> worker ----------------------------------------------------------------------------------


class Welcome(msgspec.Struct, tag="welcome", array_like=True):
    holder: str
    lease_s: float


class Done(msgspec.Struct, tag="done", array_like=True):
    rid: int


class Added(msgspec.Struct, tag="added", array_like=True):
    rid: int
    id: str


class Entries(msgspec.Struct, tag="entries", array_like=True):
    rid: int
    entries: list[tuple[str, bytes]]


class Listed(msgspec.Struct, tag="listed", array_like=True):
    rid: int
    members: dict[str, bytes]


class Granted(msgspec.Struct, tag="granted", array_like=True):
    rid: int
    lease: str


class Refused(msgspec.Struct, tag="refused", array_like=True):
    rid: int
    name: str
    limit: int


class Counted(msgspec.Struct, tag="counted", array_like=True):
    rid: int
    n: int


class Level(msgspec.Struct, tag="level", array_like=True):
    rid: int
    level: float


class Failed(msgspec.Struct, tag="failed", array_like=True):
    rid: int
    message: str


class Message(msgspec.Struct, tag="message", array_like=True):
    channel: str
    data: bytes


class Changed(msgspec.Struct, tag="changed", array_like=True):
    group: str


ToHub = (
    Hello
    | Publish
    | Subscribe
    | Unsubscribe
    | Append
    | Read
    | Join
    | Leave
    | Members
    | Watch
    | Unwatch
    | Acquire
    | Release
    | Renew
    | Count
    | Spend
)
Reply = Done | Added | Entries | Listed | Granted | Refused | Counted | Level | Failed
ToWorker = Welcome | Reply | Message | Changed
