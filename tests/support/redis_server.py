"""A real ``redis-server`` (Debian's, installed by ``make install``) for a test: on a free loopback
port, no persistence (``--save ''``, no append-only file) unless asked, in a temp dir of its own; ready once it
answers PING (never a log line) as itself (``INFO``'s ``process_id``: not another test's Redis that took
the port). ``kill`` (SIGKILL) and ``start`` again on the same port play a Redis that died and came back
empty.

The port is chosen before Redis binds it (Redis has no port 0 that it then reports), so another
process may take it first: a first start whose Redis exits for it ("Address already in use") is
started again on another free port, up to ``START_TRIES`` times (a retry of the bind, not of the
test: nothing has used the server yet). A restart keeps its port: its clients hold the URL."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proc import free_port

#: first starts tried when the chosen port was taken before Redis bound it
START_TRIES = 5
#: what Redis logs when its port is taken (then it exits)
PORT_TAKEN = b"Address already in use"


class _PortTaken(Exception):
    pass


MISSING = (
    "redis-server is missing: the cluster store's tests run a real one. `make install` installs it (apt, as root "
    "or with passwordless sudo); else run: sudo apt-get install redis-server"
)


class RedisServer:
    """One ``redis-server`` process at a time on ``port``; ``url`` reaches it."""

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
        persist: bool = False,
    ) -> None:
        """``tls``: a certificate chain and its key (PEM): then it speaks TLS only (``rediss://``).
        ``persist``: an append-only file in its dir, synced on every write (``appendfsync always``),
        so that a ``kill`` and ``start`` keeps every write it acknowledged."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(MISSING)
        self.binary = binary
        self.port = port if port is not None else free_port()
        #: the port was chosen here and never served: a start that finds it taken may take another
        self._may_move = port is None
        self.password = password
        self.tls = tls
        self.persist = persist
        self.dir = Path(tempfile.mkdtemp(prefix="redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> None:
        for _ in range(START_TRIES - 1 if self._may_move else 0):
            try:
                self._start(timeout_s)
                break
            except _PortTaken:
                self.port = free_port()
        else:
            try:
                self._start(timeout_s)
            except _PortTaken:
                raise AssertionError(f"redis-server: port {self.port} is taken: {self.log()[-2000:]}") from None
        self._may_move = False

    def _start(self, timeout_s: float) -> None:
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            cert, key = self.tls
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            ports += ["--tls-key-file", str(key), "--tls-auth-clients", "no"]
        args = [
            self.binary,
            *ports,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        log = (self.dir / "redis.log").open("ab")
        logged = log.tell()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not (self.listening() if self.tls else self.ping() and self.ours()):
            if self.proc.poll() is not None:
                if PORT_TAKEN in (self.dir / "redis.log").read_bytes()[logged:]:
                    self.proc = None
                    raise _PortTaken
                raise AssertionError(f"redis-server exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not answer PING within {timeout_s} s: {self.log()[-2000:]}")
            time.sleep(0.01)

    def ping(self) -> bool:
        """Whether it answers PING now (RESP: ``+PONG``; ``-NOAUTH`` also means it serves)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def ours(self) -> bool:
        """Whether the Redis answering on the port is this one (``INFO server``'s ``process_id``)."""
        assert self.proc is not None
        auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(auth + b"INFO server\r\n")
                reply = b""
                while b"process_id:" not in reply or not reply.endswith(b"\r\n\r\n"):
                    got = s.recv(65536)
                    if not got:
                        break
                    reply += got
        except OSError:
            return False
        return f"process_id:{self.proc.pid}\r\n".encode() in reply

    def listening(self) -> bool:
        """Whether its TLS port takes connections (its handshake is the client's to check)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: it dies at once, its data with it (unless ``persist``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(
    *, password: str | None = None, tls: tuple[Path, Path] | None = None, persist: bool = False
) -> Iterator[RedisServer]:
    """A started ``RedisServer``, stopped and its dir removed at the end."""
    server = RedisServer(password=password, tls=tls, persist=persist)
    try:
        server.start()
        yield server
    finally:
        server.remove()
