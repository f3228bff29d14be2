"""``translate-svc serve`` as a separate process, for the tests and the benchmarks that need one:
started with the installed script (or ``python -m translate_svc.cli``), ready once it has written
its ready file (never a log line), stopped with SIGTERM (``ServerProcess``); or, for the tests that
signal their servers themselves, its output in a log file and killed if still running at the end
(``logged_server``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.signals import default_signals
from translate_svc.cli import ready_file as ready

_SCRIPT = Path(sys.executable).parent / "translate-svc"
#: the command line that runs the CLI: the installed script, or the module where it is not installed
CLI: list[str] = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "translate_svc.cli"]

#: the longest a server may take to start: a bound a stuck start misses (a start beside the suite's
#: other workers under four busy loops took over 120 s; unloaded, 5-15 s)
READY_S = 300


class ServerProcess:
    """``translate-svc serve`` in a subprocess; its output is drained on a thread. Ready when it has
    written its ``--ready-file`` (a temporary one unless ``ready_file`` names one)."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        ready_file: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``prefix``: a command the server runs under (e.g. ``prlimit --fsize=N``, which execs it)."""
        # a folder of its own: its ready file, and the server's temporary files (``TMPDIR``: its node's
        # sockets and metrics, which a server killed by a test cannot remove), removed when it is
        # stopped or, for one never stopped, when this object goes or the test process ends
        self._tmp = Path(tempfile.mkdtemp(prefix="serve-ready-"))
        self._removed = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        env = {
            **os.environ,
            "TMPDIR": str(self._tmp),
            "TRANSLATE_SVC_SERVER__GRACE_S": "2",
            "TRANSLATE_SVC_SERVER__DRAIN_S": "1",
            **(env or {}),
        }
        if ready_file is None:
            ready_file = self._tmp / "ready.json"
        self.ready_file = ready_file
        self.proc = subprocess.Popen(
            default_signals([*prefix, *CLI, "serve", *args, "--ready-file", str(self.ready_file)]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self.info = ready.wait(self.ready_file, self.proc, READY_S)
        except ready.NotReady as e:
            self.stop()
            pytest.fail(f"{e}:\n" + "".join(self.lines[-30:]))
        self.port = self.info.port

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_port(self) -> int:
        """Where its ``/metrics`` is: started with ``TRANSLATE_SVC_SERVER__METRICS_PORT=0`` it picks a
        free port itself and says which in its ready file (never a port the test chose, which
        another process may take before the server binds it)."""
        assert self.info.metrics_port is not None, "this server serves no /metrics (set its metrics port, 0: any)"
        return self.info.metrics_port

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._removed()


@contextlib.contextmanager
def logged_server(
    model: Path, log: Path, port: int = 0, more: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A server on ``model`` (one model thread, a 2 s drain) on ``port`` (0: any), its output in
    ``log``: its process and its port, once ready. ``more``: further ``serve`` options (e.g.
    ``--test-translator stable`` where what is tested is the servers' lifecycle, not the model's)."""
    tmp = log.with_name(log.name + ".tmp")  # the server's temporary files, removed after it (killed or not)
    tmp.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "TRANSLATE_SVC_SERVER__DRAIN_S": "2",
        "TRANSLATE_SVC_SERVER__GRACE_S": "10",
        "TRANSLATE_SVC_MODEL__CPU_THREADS": "1",
    }
    ready_file = log.with_suffix(".ready.json")
    argv = [*CLI, "serve", "--model", str(model), "--host", "127.0.0.1", "--port", str(port), *more]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            default_signals([*argv, "--ready-file", str(ready_file)]), stdout=out, stderr=subprocess.STDOUT, env=env
        )
        try:
            try:
                info = ready.wait(ready_file, proc, READY_S)
            except ready.NotReady as e:
                raise AssertionError(f"{e}:\n{log.read_text()}") from None
            yield proc, info.port
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            shutil.rmtree(tmp, ignore_errors=True)
