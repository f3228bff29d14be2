"""Revocation of what a token let in: live streams and room listeners, watched by their token's
digest, ended (``Revoked``) when the tokens file changes and their token is gone or no longer
grants what they do. Shared by every door over the one store the host (``host.py``) builds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from translate_svc.errors import LimitReached, Revoked
from translate_svc.transport.tokens.file import Grant, Permission, TokenDigest
from translate_svc.transport.tokens.store import TokenStore


class Endable(Protocol):
    """A live stream that can be ended from outside (``session.StreamDriver``, a room's
    ``Listener``)."""

    def end(self, limit: LimitReached) -> None: ...


def may_stream(grant: Grant) -> bool:
    """What a live stream's token must keep: the ``stream`` permission."""
    return Permission.STREAM in grant.permissions


def may_listen_to(room: str) -> Callable[[Grant], bool]:
    """What a room listener's token must keep: a ``listen=``/``room=`` pattern covering ``room``."""
    return lambda grant: grant.rooms.may_listen(room)


#: a room listener ended by revocation
LISTEN_REVOKED = (
    "the token of this listen was revoked (removed from the server's tokens file, or its listen= pattern "
    "no longer covers the room): listen again with a current token"
)


@dataclass(frozen=True)
class _Watched:
    digest: TokenDigest
    allowed: Callable[[Grant], bool]
    message: str | None


class Revocation:
    """Live streams (and room listeners) by the token that opened them, as its digest
    (``TokenDigest``: a stream lives for hours, and its token must not stay in memory that long):
    when the tokens file changes, one whose token is gone, or no longer ``allowed`` what it does
    (a stream: ``stream``; a listener: its room), is ended (``Revoked``). Shared by every door.
    Event loop only."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens
        self._live: dict[Endable, _Watched] = {}
        tokens.on_reload.append(self._check)

    def watching(
        self,
        stream: Endable,
        token: str | TokenDigest | None,
        since: int | None = None,
        *,
        allowed: Callable[[Grant], bool] = may_stream,
        message: str | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """While the block runs, ``stream`` ends if ``token`` is revoked (none: nothing to watch)
        or its grant is no longer ``allowed``; ``message``: the ``Revoked`` error's (None: a
        stream's). A token is digested here, at once: neither this object nor the context it
        returns keeps it. ``since``: the tokens file's generation when the token was looked up
        (``Authorized.generation``); if the file changed after (between a call's check and its
        stream's watch: the door awaited in between), the token is looked up again as the block
        starts, so a token removed in that moment ends the stream too."""
        if isinstance(token, str):
            token = TokenDigest.of(token) if token else None
        watched = _Watched(token, allowed, message) if token is not None else None
        return _Watch(self, stream, watched, since)

    def _check(self) -> None:
        for stream, watched in list(self._live.items()):
            self._check_one(stream, watched)

    def _check_one(self, stream: Endable, watched: _Watched) -> None:
        grant = self._tokens.lookup(watched.digest)
        if grant is None or not watched.allowed(grant):
            stream.end(Revoked(watched.message))


class TokenHolder(Protocol):
    """A caller as a door keeps it (``Authorized``; the HTTP port's ``Caller``): its token's digest
    (None: none) and the tokens file's generation when the token was looked up."""

    @property
    def token(self) -> TokenDigest | None: ...

    @property
    def generation(self) -> int | None: ...


def watching(
    revocation: Revocation | None,
    stream: Endable,
    caller: TokenHolder,
    *,
    allowed: Callable[[Grant], bool] = may_stream,
    message: str | None = None,
) -> contextlib.AbstractContextManager[None]:
    """``Revocation.watching`` for a call ``authorize`` let in, where the door may have no
    revocation (a server without tokens): then nothing is watched. Every door's one watch."""
    if revocation is None:
        return contextlib.nullcontext()
    return revocation.watching(stream, caller.token, caller.generation, allowed=allowed, message=message)


class _Watch(contextlib.AbstractContextManager[None]):
    """``Revocation.watching``'s block: holds the digest only (``contextlib.contextmanager`` would
    keep the call's arguments, the token among them, for as long as the block runs)."""

    def __init__(self, owner: Revocation, stream: Endable, watched: _Watched | None, since: int | None) -> None:
        self._owner, self._stream, self._watched, self._since = owner, stream, watched, since

    def __enter__(self) -> None:
        if self._watched is None:
            return
        self._owner._live[self._stream] = self._watched
        if self._since is not None and self._since != self._owner._tokens.reloads:
            self._owner._check_one(self._stream, self._watched)

    def __exit__(self, *exc_info: object) -> None:
        self._owner._live.pop(self._stream, None)
