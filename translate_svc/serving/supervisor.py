"""The supervisor of ``serve --workers N``: one engine process, N front-end workers, one service.

Start: reserve every door's port with ``SO_REUSEPORT`` (``ports.py``: gRPC, health, HTTP, SIP,
AudioSocket; so port 0 picks one port for all workers, and a busy port fails before anything loads),
start the engine process and wait for its model, then start every worker and wait until each
serves. Then:

- a worker that exits is replaced (its slot in the node's stream count is zeroed, its live metrics
  dropped); its streams were lost with it and their clients resume on the other workers;
- the engine process exiting ends the node: every worker has already ended its streams with
  UNAVAILABLE (the clients resume elsewhere) and turned NOT_SERVING; the supervisor stops the
  workers and exits with status 1, so Kubernetes restarts the pod (docs/deploy.md);
- SIGTERM or SIGINT drains: every worker gets SIGTERM and drains its streams (``draining`` notice,
  resume elsewhere); once all have exited the engine process stops, and the supervisor exits 0.

The supervisor also runs the node's cluster hub (``cluster/hub_server.py``: the node's caps, and
without ``cluster.redis_url`` all that crosses streams, shared by the workers) on a Unix socket in
the node's runtime dir, before any worker starts and until every worker has stopped; the workers
find it in ``process.ENV_CLUSTER``.

Never imports torch or the model (import-linter checks it): the engine process does that alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translate_svc.cluster.choose import ClusterConfigError, open_store, redis_location
from translate_svc.cluster.hub_server import HubServer
from translate_svc.cluster.store import StoreUnavailable
from translate_svc.glossaries.choose import open_glossaries
from translate_svc.glossaries.store import GlossaryConfigError
from translate_svc.observability import metrics
from translate_svc.serving import process
from translate_svc.serving.ports import NodePorts, StartError
from translate_svc.settings import Settings
from translate_svc.settings.webhooks import REVEAL
from translate_svc.transport.openai.demo import page_url

logger = logging.getLogger(__name__)

#: a worker that dies sooner than this after its start is restarted after a pause, not at once
QUICK_DEATH_S = 5.0
#: how long a stopped child may take beyond its own grace before it is killed
KILL_AFTER_S = 15.0


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    info: dict[str, Any] = field(default_factory=dict)  # its ready line
    echo: asyncio.Future[None] | None = None  # copies the rest of its stdout to ours


class Supervisor:
    """Runs the node until it is stopped (``run`` returns the exit status). Event loop only.

    ``say`` prints the start-up lines (the CLI's stdout)."""

    def __init__(self, settings: Settings, workers: int, *, say: Callable[[str], None] = print) -> None:
        if workers < 2:
            raise ValueError("a node of front-end workers needs at least 2 (1 is the single-process server)")
        self.settings = settings
        self.workers = workers
        self.say = say
        self.dir = Path(tempfile.mkdtemp(prefix="translate-svc-node-"))
        self.socket = self.dir / "engine.sock"
        self.metrics_dir = self.dir / "metrics"
        self.metrics_dir.mkdir()
        #: the node's cluster hub: the node's caps (``session/tenants/leases.py``), and without Redis its rooms,
        #: calls and tenants' caps too (with Redis each worker is a holder there)
        self.hub: HubServer | None = None
        self.hub_socket = self.dir / "cluster.sock"
        self.engine: Child | None = None
        self.running: dict[str, Child] = {}
        self.port = 0
        self.health_port: int | None = None
        self.http_port: int | None = None  # the OpenAI-compatible door, shared like the gRPC port
        self.metrics_port: int | None = None
        #: every door's port, reserved for the workers
        self.ports = NodePorts()
        self._stop = asyncio.Event()

    # -- start -------------------------------------------------------------------------------------

    def _env(self, child_settings: Settings) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                # secrets as they are (a webhook's: SecretStr): the worker's settings, in its environment only
                process.ENV_SETTINGS: child_settings.model_dump_json(context=REVEAL),
                process.ENV_SOCKET: str(self.socket),
                process.ENV_WORKERS: str(self.workers),
                process.ENV_METRICS_DIR: str(self.metrics_dir),
                process.ENV_PARENT: str(os.getpid()),
            }
        )
        if self.hub is not None:
            env[process.ENV_CLUSTER] = str(self.hub_socket)
        return env

    async def _spawn(self, name: str, module: str, env: dict[str, str]) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env=env, stdout=asyncio.subprocess.PIPE, start_new_session=True
        )  # its own session: a signal to the terminal's process group reaches the supervisor only
        child = Child(name, proc)
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            code = await proc.wait()
            raise StartError(f"the {name} process exited with status {code} while starting (its log is above)")
        child.info = json.loads(line)
        child.echo = asyncio.ensure_future(_echo(proc.stdout))  # a full pipe would block the child
        return child

    async def start(self) -> None:
        s = self.settings.server
        self.ports = NodePorts.reserve(self.settings)
        self.port, self.health_port, self.http_port = self.ports.port, self.ports.health_port, self.ports.http_port
        child_settings = self.settings.model_copy(deep=True)
        self.ports.apply(child_settings)
        child_settings.server.metrics_port = None  # the supervisor serves the node's aggregate
        child_settings.server.workers = 1
        if child_settings.auth.client_secret_key is None:  # one key for the node: any worker checks any secret
            child_settings.auth.client_secret_key = secrets.token_hex(32)
        if self.settings.cluster.redis_url is not None:
            await _check_redis(self.settings)
        try:  # settings every worker would refuse: said once, before anything starts
            open_glossaries(self.settings, *redis_location(self.settings.cluster))
        except (GlossaryConfigError, ClusterConfigError) as e:
            raise StartError(str(e)) from None
        self.hub = HubServer(lease_s=self.settings.cluster.lease_s)
        await self.hub.start(self.hub_socket)
        self._env_base = self._env(child_settings)
        self.engine = await self._spawn("engine", "translate_svc.serving.engine_process", self._env_base)
        workers = await asyncio.gather(
            *(self._start_worker(f"w{i}") for i in range(self.workers)), return_exceptions=True
        )
        failed = [w for w in workers if isinstance(w, BaseException)]
        if failed:
            raise failed[0]
        self.ports.release_datagrams()  # the workers hold the SIP port's UDP: the datagrams are theirs
        if s.metrics_port is not None:
            self.metrics_port = metrics.serve_aggregate(s.metrics_port, s.host, self.metrics_dir)

    async def _start_worker(self, name: str) -> Child:
        env = dict(self._env_base, **{process.ENV_WORKER: name})
        child = await self._spawn(name, "translate_svc.serving.worker", env)
        self.running[name] = child
        return child

    def describe(self) -> str:
        assert self.engine is not None
        pids = ", ".join(str(c.proc.pid) for _, c in sorted(self.running.items()))  # w0, w1, ...
        line = (
            f"{self.workers} front-end workers (pids {pids}) on port {self.port}, "
            f"engine process pid {self.engine.proc.pid} at {self.socket}"
        )
        if self.http_port is not None:
            line += f", the OpenAI-compatible door on port {self.http_port}"
            if self.settings.server.demo_page:
                tls = self.settings.server.tls_cert_file is not None
                line += f", the demo page on {page_url(self.settings.server.host, self.http_port, tls=tls)}"
        if self.ports.sip_port is not None:
            line += f", SIP on port {self.ports.sip_port}"
        if self.ports.audiosocket_port is not None:
            line += f", AudioSocket on port {self.ports.audiosocket_port}"
        if self.metrics_port is not None:
            line += f", /metrics of all of them on port {self.metrics_port}"
        if self.hub is not None:
            line += f", the node's cluster hub at {self.hub_socket}"
        return line

    @property
    def test_model(self) -> bool:
        return bool(self.engine is not None and self.engine.info.get("test_model"))

    # -- run ---------------------------------------------------------------------------------------

    async def run(self, *, on_started: Callable[[Supervisor], None] | None = None) -> int:
        """Start, serve until SIGTERM/SIGINT or the engine's death, stop; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.start()
            if on_started is not None:
                on_started(self)
            return await self._watch()
        finally:
            await self._shutdown()

    async def _watch(self) -> int:
        assert self.engine is not None
        engine_exit = asyncio.ensure_future(self.engine.proc.wait())
        stop = asyncio.ensure_future(self._stop.wait())
        exits = {asyncio.ensure_future(c.proc.wait()): c for c in self.running.values()}
        try:
            while True:
                done, _ = await asyncio.wait({engine_exit, stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    logger.info("stopping: draining %d workers", len(self.running))
                    return 0
                if engine_exit in done:
                    logger.error(
                        "the engine process exited (status %s): every stream ended with UNAVAILABLE; "
                        "stopping the node (exit 1) so that it is restarted",
                        engine_exit.result(),
                    )
                    return 1
                for fut in done:
                    child = exits.pop(fut)
                    replacement = await self._replace(child)
                    if replacement is not None:
                        exits[asyncio.ensure_future(replacement.proc.wait())] = replacement
        finally:
            for fut in (engine_exit, stop, *exits):
                fut.cancel()

    async def _replace(self, dead: Child) -> Child | None:
        code = dead.proc.returncode
        logger.error("worker %s (pid %d) exited with status %s; starting a replacement", dead.name, dead.proc.pid, code)
        self.running.pop(dead.name, None)
        metrics.process_gone(dead.proc.pid, self.metrics_dir)
        # its calls died with it: the hub dropped its leases as its connection closed
        if time.monotonic() - dead.started < QUICK_DEATH_S:
            await asyncio.sleep(1.0)  # a crash loop does not spin
        try:
            return await self._start_worker(dead.name)
        except StartError as e:
            logger.error("%s", e)
            return None

    # -- stop --------------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Drain the workers (SIGTERM, their grace), then stop the engine process; clean up."""
        grace = self.settings.server.grace_s
        await asyncio.gather(*(_stop_child(c, grace + KILL_AFTER_S) for c in self.running.values()))
        if self.engine is not None:
            await _stop_child(self.engine, KILL_AFTER_S)
        if self.hub is not None:
            await self.hub.stop()  # after the workers: none of them loses it while it drains
        self.ports.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def _check_redis(settings: Settings) -> None:
    """The pods' Redis answers (each worker connects on its own later): a node that cannot reach it
    does not start, and says so once, naming the URL (never its password)."""
    try:
        store = open_store(settings.cluster)
        await store.start()
    except (ClusterConfigError, StoreUnavailable) as e:
        raise StartError(e.message if isinstance(e, StoreUnavailable) else str(e)) from None
    await store.close()


async def _echo(stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.buffer.write(line)
        sys.stdout.flush()


async def _stop_child(child: Child, within_s: float) -> None:
    if child.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(within_s):
            await child.proc.wait()
    except TimeoutError:
        logger.error("%s (pid %d) did not stop in %.0f s; killing it", child.name, child.proc.pid, within_s)
        with contextlib.suppress(ProcessLookupError):
            child.proc.kill()
        await child.proc.wait()
    if child.echo is not None:
        await child.echo  # its last lines
