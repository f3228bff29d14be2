"""The engine process's wire: CPU per job on each side, bytes moved, and the engine's ceiling.

Run from the repository root::

    python -m benchmarks.studies.engine_ipc run --jobs 20000 --workers 2 --json out/engine_ipc.json

A **zero-cost runner** (features and outputs made in microseconds, no model) stands behind a real
``TranslationEngine`` (its loop, the scheduler, the features thread and the model thread), so what
is measured is everything but the model. Two runs, each of ``--jobs`` finals of ``--segment-s``
seconds (text out, one target), then as many live captions of ``--caption-s`` seconds (droppable;
alone in the queue, so the engine takes them):

- ``in-process``: the sessions' way today: jobs submitted straight to the engine, one process.
- ``remote``: the engine and ``EngineServer`` in a child process (pinned to ``--engine-cpu``),
  ``--workers`` ``RemoteEngine`` connections in this process (pinned to ``--client-cpu``), each
  keeping ``--window`` jobs in flight; then a third kind, ``mix``: finals and captions at once,
  one to three (what 400 real-time streams make: ~130 finals and up to 400 captions a second).

Per run and kind: jobs per second, CPU µs per job in the engine process and in the
worker process (from ``/proc``), and bytes per job on the wire (frames both ways). The wire's own
cost per job is the remote run's CPU (both sides) less the in-process run's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np
import typer

from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.remote import wire
from translate_svc.engine.remote.client import RemoteEngine
from translate_svc.engine.remote.server import EngineServer
from translate_svc.engine.results import EngineResult
from translate_svc.engine.scheduler import SchedulerConfig
from translate_svc.model_api.requests import Features, ModelInput, ModelOutput
from translate_svc.types import Language, ModelCard, ModelInfo

app = typer.Typer(add_completion=False)


class ZeroRunner:
    """A Runner that costs (almost) nothing: the engine, the scheduler and the wire are what is left."""

    def __init__(self) -> None:
        langs = (Language("eng", "English", True, True, True), Language("spa", "Spanish", True, True, True))
        self._card = ModelCard(ModelInfo("zero-cost", "none", True), langs, num_speakers=1)
        self._features = Features(np.zeros((1, 1), np.float32), np.ones(1, np.int64))

    @property
    def card(self) -> ModelCard:
        return self._card

    def extract_features(self, audio: np.ndarray) -> Features:
        return self._features

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        return [ModelOutput(None, {t: "una frase traducida de unas diez palabras" for t in i.targets}) for i in inputs]


def engine(max_queued: int) -> TranslationEngine:
    config = SchedulerConfig(max_batch_size=64, max_wait_s=0.002, max_batch_audio_s=10_000, max_queued=max_queued)
    return TranslationEngine(ZeroRunner, config)


def cpu_s(pid: int | None = None) -> float:
    """utime + stime of a process (this one when ``pid`` is None), seconds."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(submit: Any, n: int, window: int, item: ModelInput, *, droppable: bool) -> dict[str, int]:
    """Keep ``window`` jobs in flight until ``n`` are answered; count the done and the dropped."""
    counts = {"done": 0, "dropped": 0}
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with sem:
            fut: asyncio.Future[EngineResult] | None = submit(f"s{i % 64}", item, droppable=droppable)
            if fut is None:
                counts["dropped"] += 1
                return
            try:
                r = await fut
            except asyncio.CancelledError:
                counts["dropped"] += 1
                return
            assert r.error is None
            counts["done"] += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return counts


def inputs(segment_s: float, caption_s: float) -> tuple[ModelInput, ModelInput]:
    rng = np.random.default_rng(0)
    seg = ModelInput((0.1 * rng.standard_normal(int(16000 * segment_s))).astype(np.float32), ("spa",), None, False)
    cap = ModelInput((0.1 * rng.standard_normal(int(16000 * caption_s))).astype(np.float32), ("spa",), None, False)
    return seg, cap


async def run_in_process(jobs: int, window: int, segment_s: float, caption_s: float) -> dict[str, Any]:
    eng = engine(max_queued=4 * window + 64)
    await eng.start(warmup=False)
    seg, cap = inputs(segment_s, caption_s)

    def submit(owner: str, item: ModelInput, *, droppable: bool) -> asyncio.Future[EngineResult] | None:
        return eng.submit_droppable(owner, item) if droppable else eng.submit(owner, item)

    out: dict[str, Any] = {}
    for kind, item, droppable in (("finals", seg, False), ("captions", cap, True)):
        c0, t0 = cpu_s(), time.perf_counter()
        counts = await drive(submit, jobs, window, item, droppable=droppable)
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        out[kind] = {**counts, "wall_s": wall, "jobs_per_s": jobs / wall, "cpu_us_per_job": cpu / jobs * 1e6}
    await eng.stop()
    return out


async def run_remote(
    engine_pid: int, jobs: int, window: int, workers: int, segment_s: float, caption_s: float, path: Path
) -> dict[str, Any]:
    remotes = [RemoteEngine(f"bench{i}") for i in range(workers)]
    for r in remotes:
        await r.connect(path)
    seg, cap = inputs(segment_s, caption_s)
    per = jobs // workers

    def submitter(r: RemoteEngine) -> Any:
        def submit(owner: str, item: ModelInput, *, droppable: bool) -> asyncio.Future[EngineResult] | None:
            return r.submit_droppable(owner, item) if droppable else r.submit(owner, item)

        return submit

    out: dict[str, Any] = {}
    for kind, item, droppable in (("finals", seg, False), ("captions", cap, True)):
        drives = [drive(submitter(r), per, window, item, droppable=droppable) for r in remotes]
        out[kind] = await measured(engine_pid, per * workers, drives)
    # the mix 400 real-time streams make: about 130 finals and up to 400 captions a second (1 : 3)
    nf, wf = per // 4, max(1, window // 4)
    drives = [drive(submitter(r), nf, wf, seg, droppable=False) for r in remotes]
    drives += [drive(submitter(r), per - nf, window - wf, cap, droppable=True) for r in remotes]
    out["mix"] = {"finals": nf * workers, "captions": (per - nf) * workers}
    out["mix"].update(await measured(engine_pid, per * workers, drives))
    for r in remotes:
        await r.close()
    return out


async def measured(engine_pid: int, n: int, drives: list[Any]) -> dict[str, Any]:
    """Run ``drives`` (``n`` jobs in all) at once: their counts, rate and CPU on each side."""
    e0, c0, t0 = cpu_s(engine_pid), cpu_s(), time.perf_counter()
    results = await asyncio.gather(*drives)
    wall, cpu, ecpu = time.perf_counter() - t0, cpu_s() - c0, cpu_s(engine_pid) - e0
    return {
        "done": sum(r["done"] for r in results),
        "dropped": sum(r["dropped"] for r in results),
        "wall_s": wall,
        "jobs_per_s": n / wall,
        "engine_cpu_us_per_job": ecpu / n * 1e6,
        "worker_cpu_us_per_job": cpu / n * 1e6,
        "engine_cores": ecpu / wall,
        "worker_cores": cpu / wall,
    }


def frame_bytes(segment_s: float, caption_s: float) -> dict[str, int]:
    """Bytes on the wire per final and per caption, both ways (the length prefix included)."""
    enc = msgspec.msgpack.Encoder(**wire.HOOKS)
    seg, cap = inputs(segment_s, caption_s)
    out = ModelOutput(None, {"spa": "una frase traducida de unas diez palabras"})
    result = wire.result_of(0, EngineResult(out, None, 1.0, 1.0, 8))
    state = wire.State(True, 10, 8, 1000, 2)
    back = len(enc.encode(result)) + len(enc.encode(state)) + 8
    return {
        "final_to_engine": len(enc.encode(wire.submit_of(0, "session-id", seg, droppable=False))) + 4,
        "caption_to_engine": len(enc.encode(wire.submit_of(0, "session-id", cap, droppable=True))) + 4,
        "text_result_to_worker": back,
    }


@app.command("run")
def main(
    jobs: Annotated[int, typer.Option(help="finals per run, then as many captions")] = 20000,
    workers: Annotated[int, typer.Option(help="RemoteEngine connections in the remote run")] = 2,
    window: Annotated[int, typer.Option(help="jobs in flight per connection")] = 128,
    segment_s: Annotated[float, typer.Option(help="seconds of audio per final")] = 3.0,
    caption_s: Annotated[float, typer.Option(help="seconds of audio per caption")] = 1.0,
    engine_cpu: Annotated[int, typer.Option(help="core for the engine process (taskset); -1: no pinning")] = 0,
    client_cpu: Annotated[int, typer.Option(help="core for this process; -1: no pinning")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    if client_cpu != -1:
        os.sched_setaffinity(0, {client_cpu})
    path = Path(f"/tmp/engine-ipc-{os.getpid()}.sock")
    local = asyncio.run(run_in_process(jobs, window, segment_s, caption_s))
    cmd = [sys.executable, "-m", "benchmarks.studies.engine_ipc", "serve-engine", str(path)]
    cmd += ["--max-queued", str(4 * window * workers + 64)]
    if engine_cpu != -1:
        cmd = ["taskset", "-c", str(engine_cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the engine process did not start")
        remote = asyncio.run(run_remote(proc.pid, jobs, window, workers, segment_s, caption_s, path))
    finally:
        proc.terminate()
        proc.wait(10)
    sizes = frame_bytes(segment_s, caption_s)
    doc = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "config": {"jobs": jobs, "workers": workers, "window": window, "segment_s": segment_s, "caption_s": caption_s},
        "in_process": local,
        "remote": remote,
        "bytes": sizes,
        "wire_cpu_us_per_job": {
            kind: remote[kind]["engine_cpu_us_per_job"]
            + remote[kind]["worker_cpu_us_per_job"]
            - local[kind]["cpu_us_per_job"]
            for kind in ("finals", "captions")
        },
    }
    print(json.dumps(doc, indent=2))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(doc, indent=2) + "\n")


@app.command("serve-engine")
def serve_engine(path: Path, max_queued: Annotated[int, typer.Option()] = 10_000) -> None:
    """The remote run's engine process (started by ``main``)."""

    async def serve() -> None:
        eng = engine(max_queued)
        await eng.start(warmup=False)
        server = EngineServer(eng)
        await server.start(path)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    app()
