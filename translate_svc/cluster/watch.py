"""The cluster store's state made visible: ``/metrics`` and the log, once per process.

``watch_store`` listens to the store's ``on_state`` (``store.py``) and keeps
``translate_svc_cluster_store_up`` (1 up, 0 lost) and ``translate_svc_cluster_store_transitions_total``
(by the state reached, counted after the first time it was up: the start is not a transition). It
logs each loss once, saying what ``cluster.on_redis_loss`` makes of it, and its return once; a
store that flaps is not a flood: a loss within ``QUIET_S`` of the last loss logged is only counted
(the next line says how many), and its return is not logged either. The process's own close of its
store (``closing``, at a server's stop) is no loss: neither logged nor counted. What the rooms and two-party
calls do about it is their own (``session/rooms/link.py``, ``transport/telephony/pairs.py``); health is
the host's (``transport/host.py``).

Event loop only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from translate_svc.cluster.store import ClusterStore, StoreState
from translate_svc.observability import metrics

logger = logging.getLogger(__name__)

#: at most one log line about the store's state this often (more transitions are counted, not logged)
QUIET_S = 10.0

#: what each choice of ``cluster.on_redis_loss`` does while the store is lost (for the log line)
WHILE_LOST = {
    "node": (
        "on_redis_loss=node: this server goes on on its own: rooms and two-party calls meet on this server only, "
        "calls admitted go on; it rejoins when the store is back"
    ),
    "refuse": (
        "on_redis_loss=refuse: new room parties and two-party legs are refused (UNAVAILABLE, retry) and health "
        "reports the Translator service NOT_SERVING; calls admitted go on"
    ),
}


class StoreWatch:
    """The metrics and log lines of one process's store (see the module). Event loop only."""

    def __init__(self, store: ClusterStore, on_loss: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.on_loss = on_loss
        self._clock = clock
        self._up = store.state is StoreState.UP
        #: it was up once (the first time is the start, not a transition)
        self._started = self._up
        self._since_line = -QUIET_S
        self._unlogged = 0
        self._lost_at: float | None = None
        self._loss_logged = False
        #: this process closes its store (a server's stop): what follows is no loss
        self._closing = False
        metrics.cluster_store_up(self._up)
        store.on_state(self._changed)

    def closing(self) -> None:
        """This process closes its store now (the server stops): the state it then reports (down:
        the hub's connection or Redis's closed) is not a loss, so it is neither logged nor counted."""
        self._closing = True

    def _changed(self, state: StoreState) -> None:
        if self._closing:
            return
        up = state is StoreState.UP
        metrics.cluster_store_up(up)
        if not self._started:
            self._started = self._up = up
            return
        if up is self._up:
            return
        self._up = up
        metrics.cluster_store_changed(up)
        now = self._clock()
        if not up:
            self._lost_at = now
            if now - self._since_line < QUIET_S:  # flapping: counted, and said in the next line
                self._unlogged += 1
                self._loss_logged = False
                return
            more = f" ({self._unlogged} more losses since the last line)" if self._unlogged else ""
            self._since_line, self._unlogged, self._loss_logged = now, 0, True
            logger.error("the cluster store is lost: %s%s", WHILE_LOST.get(self.on_loss, self.on_loss), more)
        elif self._loss_logged:  # the return of a loss that was logged (one line each)
            self._loss_logged = False
            lost_s = now - (self._lost_at if self._lost_at is not None else now)
            logger.warning("the cluster store is back after %.1f s: this server rejoined", lost_s)


class Quiet:
    """At most one of something (a log line) every ``every_s``: ``due`` says whether now is one.
    For what the rooms and two-party calls log while the store is lost. Event loop only."""

    def __init__(self, every_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        return True


def watch_store(store: ClusterStore, on_loss: str) -> StoreWatch:
    """Make ``store``'s state visible (see the module); call once per process, before ``start``."""
    return StoreWatch(store, on_loss)
