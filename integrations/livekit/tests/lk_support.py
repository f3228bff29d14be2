"""The plugin tests' helpers: real translate_svc servers (the random-weight test checkpoint) as
subprocesses on loopback, the shared test audio as LiveKit ``rtc.AudioFrame``s, and a recorder of a
session's events. (Not ``conftest``: the repository's own tests have a module of that name.)

The tests run in the plugin's virtualenv (integrations/livekit/.venv: livekit-agents, the client
distribution and the plugin, no server); the servers run in the project's own virtualenv
(``<repo>/.venv``, or ``TRANSLATE_SVC_SERVER_PYTHON``), started as ``python -m translate_svc.cli
serve ... --port 0 --ready-file F``; a server is ready when F names its pid (the server's one
deliberate ready signal), never on a log line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

REPO = Path(__file__).resolve().parents[3]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
#: the Python of the project's own virtualenv (the server needs torch and the model code)
SERVER_PYTHON = Path(os.environ.get("TRANSLATE_SVC_SERVER_PYTHON", REPO / ".venv" / "bin" / "python"))
READY_TIMEOUT_S = 300.0
FRAME_MS = 50  # what LiveKit's room input hands a session (AudioInputOptions.frame_size_ms)
IDLE_S = 5.0  # the stable server's limits.idle_timeout_s
LIMITED_S = 4.0  # the limited server's limits.max_stream_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_python() -> Path:
    """The project virtualenv's Python, or a failure that says how to make it."""
    if not SERVER_PYTHON.is_file():
        raise RuntimeError(
            f"no project virtualenv at {SERVER_PYTHON}: run `make install` at the repository root "
            "(or set TRANSLATE_SVC_SERVER_PYTHON to a Python with translate_svc installed)"
        )
    return SERVER_PYTHON


def wait_ready(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """The gRPC port in ``proc``'s ready file at ``path``, once the file names ``proc``'s pid (a
    file left by another run is not this one's); RuntimeError when ``proc`` exits first or
    ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            doc = json.loads(path.read_text())  # written at once (os.replace): whole or absent
            if int(doc["pid"]) == proc.pid:
                return int(doc["port"])
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the server did not write its ready file {path} in {timeout_s:g} s")
        time.sleep(0.05)


class Server:
    """``translate-svc serve`` on 127.0.0.1, port 0; ready when its ready file says so."""

    def __init__(self, name: str, model: Path, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.metrics_port = free_port()
        self.ready = workdir / f"{name}.ready.json"
        self.log = workdir / f"{name}.log"
        env = {
            **os.environ,
            "TRANSLATE_SVC_SERVER__METRICS_PORT": str(self.metrics_port),
            # a SIGTERM drains the streams for 0.5 s (not 20), then ends them with DRAINING
            "TRANSLATE_SVC_SERVER__DRAIN_S": "0.5",
            "TRANSLATE_SVC_SERVER__GRACE_S": "10",
            **(env or {}),
        }
        cmd = [str(server_python()), "-m", "translate_svc.cli", "serve", "--model", str(model)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*cmd, *args, "--host", "127.0.0.1", "--port", "0", "--ready-file", str(self.ready)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        self.port = 0

    def wait_ready(self) -> Server:
        try:
            self.port = wait_ready(self.ready, self.proc, READY_TIMEOUT_S)
        except RuntimeError as e:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server {self.name}: {e}\n{tail}") from e
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def metric(self, name: str) -> float:
        """The sum of every series of ``name`` on the server's /metrics."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M))

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Servers:
    """Two servers, started together (a drain test needs both; the others use the first). One a
    test stopped is started again when asked for."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.dir = Path(tempfile.mkdtemp(prefix="lk-translate-svc-"))
        self.pair = [Server("a", model, self.dir), Server("b", model, self.dir)]
        # serve --test-translator stable: made-up words with exact commit points (simultaneous
        # mode); it ends a stream that sent nothing for IDLE_S (a quiet track)
        self._stable = Server(
            "stable",
            model,
            self.dir,
            "--test-translator",
            "stable",
            env={"TRANSLATE_SVC_LIMITS__IDLE_TIMEOUT_S": str(IDLE_S)},
        )
        self._stable_ready = False
        # the stable translator with one stream at a time and streams of at most LIMITED_S: a
        # second stream is refused (RESOURCE_EXHAUSTED, RetryInfo 1 s), a long one cut
        self._limited = Server(
            "limited",
            model,
            self.dir,
            "--test-translator",
            "stable",
            env={"TRANSLATE_SVC_LIMITS__MAX_STREAMS": "1", "TRANSLATE_SVC_LIMITS__MAX_STREAM_SECONDS": str(LIMITED_S)},
        )
        self._limited_ready = False
        for s in self.pair:
            s.wait_ready()
        self.restarts = 0

    @property
    def stable(self) -> Server:
        if not self._stable_ready:
            self._stable.wait_ready()
            self._stable_ready = True
        return self._stable

    @property
    def limited(self) -> Server:
        if not self._limited_ready:
            self._limited.wait_ready()
            self._limited_ready = True
        return self._limited

    def get(self, i: int) -> Server:
        if not self.pair[i].alive:
            self.pair[i].stop()
            self.restarts += 1
            self.pair[i] = Server(f"{'ab'[i]}{self.restarts}", self.model, self.dir).wait_ready()
        return self.pair[i]

    def stop(self) -> None:
        for s in [*self.pair, self._stable, self._limited]:
            s.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def frames(pcm: np.ndarray, *, rate: int = 16000, channels: int = 1, ms: int = FRAME_MS) -> list[rtc.AudioFrame]:
    """``pcm`` (16 kHz mono int16) as LiveKit frames at ``rate`` with ``channels``, ``ms`` each."""
    if rate != 16000:
        resampler = rtc.AudioResampler(16000, rate, num_channels=1)
        src = rtc.AudioFrame(pcm.tobytes(), 16000, 1, pcm.size)
        parts = [np.frombuffer(f.data, np.int16) for f in [*resampler.push(src), *resampler.flush()]]
        pcm = np.concatenate(parts)
    step = rate * ms // 1000
    out = []
    for i in range(0, pcm.size, step):
        chunk = pcm[i : i + step]
        data = np.repeat(chunk, channels) if channels > 1 else chunk
        out.append(rtc.AudioFrame(data.tobytes(), rate, channels, chunk.size))
    return out


async def push_paced(
    sessions: Any,
    frames_: list[rtc.AudioFrame],
    *,
    speed: float = 1.0,
    at: tuple[float, Callable[[], Any]] | None = None,
) -> None:
    """Push each frame to every session (as each session's room input would), ``speed`` times
    real time; ``at``: after this many seconds of audio, call this once (awaited if a coroutine).
    The plugin's lasting stream holds at most 30 s of audio no stream has taken (then drops the
    oldest, an error event): at 20x, then at 5x, a loaded server (four busy loops beside the suite)
    fell more than 30 s behind the push, so the default is real time, as a room's track comes."""
    sessions = list(sessions)
    t0 = time.perf_counter()
    pushed_s = 0.0
    done = at is None
    for f in frames_:
        for s in sessions:
            s.push_audio(f)
        pushed_s += f.duration
        if not done and at is not None and pushed_s >= at[0]:
            done = True
            r = at[1]()
            if asyncio.iscoroutine(r):
                await r
        await asyncio.sleep(max(0.0, t0 + pushed_s / speed - time.perf_counter()))


class Recorder:
    """Everything one model session says: its audio stream and its events, in order."""

    EVENTS = (
        "input_transcript",
        "output_transcript",
        "input_speech_started",
        "input_speech_stopped",
        "error",
        "segment",
    )

    def __init__(self, session: Any) -> None:
        self.session = session
        self.stream: list[Any] = []  # TranslatedAudioFrame | OutputSpeechStopped
        self.events: list[tuple[str, Any]] = []
        for name in self.EVENTS:
            session.on(name, self._recorder(name))
        self.task = asyncio.create_task(self._read())

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(ev: Any) -> None:
            self.events.append((name, ev))

        return record

    async def _read(self) -> None:
        async for item in self.session.audio_stream:
            self.stream.append(item)

    def of(self, name: str) -> list[Any]:
        return [ev for n, ev in self.events if n == name]

    async def until(self, what: Callable[[], bool], within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not what():
            if self.task.done():
                self.task.result()
                if not what():
                    raise AssertionError(f"the audio stream ended first; errors: {self.of('error')}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within} s; errors: {self.of('error')}")
            await asyncio.sleep(0.02)

    async def finish(self, within: float = 90.0) -> None:
        """Wait for the audio stream to end (after ``end_input``, every result is in)."""
        await asyncio.wait_for(asyncio.shield(self.task), within)
