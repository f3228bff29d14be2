"""Child processes that a test signals start with SIGINT and SIGTERM at their defaults.

A process inherits ignored signals across fork and exec. Run the suite as a background job of a
non-interactive shell (``make test &`` in a script, many CI runners) and SIGINT is SIG_IGN in
pytest and in every child it starts: a child Python then installs no KeyboardInterrupt handler, and
a test's "Ctrl-C" is silently lost. Start every child the test will signal with
``Popen(default_signals(argv), ...)``, so the test does not depend on how the suite was started.

Not ``preexec_fn``: it makes ``subprocess`` fork (not vfork) and run Python in the child, where
gRPC's fork handlers meet the poller threads of the test's own channels and abort the child
("epoll_wait error: Bad file descriptor") before it ever execs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

#: Reset the two signals, then become ``argv`` (the same pid: the test signals what it started).
_SHIM = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def default_signals(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``argv`` run through a tiny exec shim that puts SIGINT and SIGTERM back to their defaults."""
    return [sys.executable, "-c", _SHIM, *map(os.fspath, argv)]
