"""The engine over its Unix socket: a ``RemoteEngine`` (a worker's ``EngineClient``) against an
``EngineServer`` serving a real ``TranslationEngine`` on the fake runner, both on this loop, a real
socket between them. Results equal the in-process engine's; refusals, cancels, aborts and the
engine's death reach the worker's futures; a worker that stops reading is cut off at the bound."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.waiting import until
from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.remote import wire
from translate_svc.engine.remote.client import RemoteEngine
from translate_svc.engine.remote.server import EngineServer
from translate_svc.engine.results import EngineResult
from translate_svc.engine.scheduler import SchedulerConfig
from translate_svc.errors import NotReady, Overloaded
from translate_svc.model_api.requests import ModelInput

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]


def item(n: int, *targets: str, transcript: str | None = None) -> ModelInput:
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    return ModelInput(audio, targets or ("spa",), transcript, speech=True)


class Node:
    def __init__(self, runner: FakeRunner, engine: TranslationEngine, server: EngineServer, path: Path) -> None:
        self.runner, self.engine, self.server, self.path = runner, engine, server, path
        self.failures: list[BaseException] = []

    async def in_the_model(self, remote: RemoteEngine, owner: str) -> asyncio.Future[EngineResult]:
        """Submit a job and hold it in the model (the runner's gate closed) until the test opens it."""
        self.runner.started.clear()
        self.runner.gate.clear()
        fut = remote.submit(owner, item(1600))
        assert await asyncio.to_thread(self.runner.started.wait, 5)
        return fut

    async def worker(self, name: str = "w") -> RemoteEngine:
        remote = RemoteEngine(name, on_failure=self.failures.append)
        await remote.connect(self.path)
        return remote


@pytest_asyncio.fixture(loop_scope="session")
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    runner = FakeRunner()
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=8, max_wait_s=0.005, max_queued=6))
    await engine.start(warmup=False)
    server = EngineServer(engine, max_buffered_bytes=1 << 20)
    path = tmp_path / "engine.sock"
    await server.start(path)
    yield Node(runner, engine, server, path)
    runner.gate.set()
    await server.stop()
    await engine.stop()


async def test_results_card_and_stats_equal_the_in_process_engine(node: Node) -> None:
    remote = await node.worker()
    assert remote.healthy and remote.card == node.engine.card
    assert remote.stats().max_queued == 6
    items = [item(1600 * (i + 1), "spa", "fra", transcript="eng" if i % 2 else None) for i in range(5)]
    got = await asyncio.gather(*(remote.submit(f"s{i}", it) for i, it in enumerate(items)))
    want = await asyncio.gather(*(node.engine.submit("local", it) for it in items))
    for g, w in zip(got, want, strict=True):
        assert g.error is None and g.output is not None and w.output is not None
        assert g.output.transcript == w.output.transcript and g.output.texts == w.output.texts
        assert g.output.waveforms.keys() == w.output.waveforms.keys()
        for lang, wave in w.output.waveforms.items():
            assert np.array_equal(g.output.waveforms[lang], wave) and g.output.waveforms[lang].dtype == np.float32
        assert g.batch_size >= 1 and g.model_ms >= 0
    await remote.wait_idle()
    await remote.close()


async def test_a_full_queue_refuses_on_the_future_and_droppables_are_cancelled(node: Node) -> None:
    remote = await node.worker()
    node.runner.gate.clear()  # hold the first batch in the model
    first = remote.submit("a", item(1600))
    assert await asyncio.to_thread(node.runner.started.wait, 5)
    held = [remote.submit("a", item(1600 + i)) for i in range(6)]  # the queue's 6 places
    over = remote.submit("b", item(3200))  # the local view is a reply old: the engine refuses it
    with pytest.raises(Overloaded, match="server busy"):
        await over
    assert remote.stats().queued == 6
    with pytest.raises(Overloaded):  # now the local view knows
        remote.submit("b", item(3200))
    assert remote.submit_droppable("b", item(800)) is None
    node.runner.gate.set()
    assert all(r.error is None for r in await asyncio.gather(first, *held))
    # behind again, with a final queued: the engine drops the caption (a cancelled future)
    blocker = await node.in_the_model(remote, "a")
    final = remote.submit("a", item(1700))
    await asyncio.sleep(0.05)  # its features are computed: a final waits in the scheduler
    caption = remote.submit_droppable("b", item(900))
    assert caption is not None
    with pytest.raises(asyncio.CancelledError):
        await caption
    node.runner.gate.set()
    await asyncio.gather(blocker, final)
    await remote.wait_idle()
    await remote.close()


async def test_cancel_and_abort_drop_queued_jobs_and_every_job_is_answered(node: Node) -> None:
    remote = await node.worker()
    running = await node.in_the_model(remote, "x")
    cancelled = remote.submit("x", item(1601))
    aborted = [remote.submit("y", item(1602 + i)) for i in range(3)]
    await asyncio.sleep(0.05)
    cancelled.cancel()
    assert remote.abort("y") == 3
    assert all(f.cancelled() for f in aborted)
    node.runner.gate.set()
    assert (await running).error is None
    await asyncio.wait_for(remote.wait_idle(), 5)  # the engine answered every job (Gone for the dropped)
    assert node.engine.queued == 0
    await remote.close()


async def test_the_engine_going_away_fails_open_jobs_and_turns_the_worker_unhealthy(node: Node) -> None:
    remote = await node.worker()
    waiting = await node.in_the_model(remote, "z")
    await node.server.stop()  # the engine process's side closes every connection
    with pytest.raises(NotReady, match="engine process is gone"):
        await waiting
    assert not remote.healthy and len(node.failures) == 1
    with pytest.raises(NotReady):
        remote.submit("z", item(1600))
    with pytest.raises(NotReady):
        _ = remote.card
    await remote.close()


async def test_a_worker_that_stops_reading_is_cut_off_at_the_bound(node: Node) -> None:
    """A raw socket that sends segments and never reads: the engine disconnects it once 1 MiB of
    replies wait, and drops its jobs; other workers keep working."""
    good = await node.worker("good")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)  # a send the engine never takes fails the test instead of hanging it
    sock.connect(str(node.path))
    enc = msgspec.msgpack.Encoder(**wire.HOOKS)

    def frame(m: wire.ToEngine) -> bytes:
        payload = enc.encode(m)
        return struct.pack(">I", len(payload)) + payload

    def flood() -> None:
        sock.sendall(frame(wire.Hello("stuck", 0)))
        speech = item(16000 * 4, "spa", "fra")  # replies of 2 x 4 s of float32 speech: 512 KB each
        for job in range(40):
            try:
                sock.sendall(frame(wire.submit_of(job, "o", speech, droppable=False)))
            except OSError:  # disconnected: what this test waits for
                return

    flooding = asyncio.create_task(asyncio.to_thread(flood))
    for _ in range(400):
        if node.server.workers == 1 and flooding.done():
            break
        await asyncio.sleep(0.05)
    assert node.server.workers == 1, "the stuck worker is still connected"
    # the stuck worker's jobs are dropped; the good worker hears the queue's new state a moment
    # later (the next State message), and only then has room by its own count
    for _ in range(200):
        if good.stats().queued < good.stats().max_queued:
            break
        await asyncio.sleep(0.05)
    assert good.healthy and (await good.submit("g", item(1600))).error is None
    sock.close()
    await flooding
    await good.close()


async def test_detection_terms_and_stage_times_cross_the_wire() -> None:
    from translate_svc.model_api.requests import DETECTED, ModelOutput
    from translate_svc.types import Term

    terms = (Term("Acme", keep=True), Term("gRPC", weight=5.0))
    item = ModelInput(np.ones(160, np.float32), ("spa",), DETECTED, True, 1, ("eng", "spa"), terms)
    sent = wire.decode(wire.encode(wire.submit_of(7, "s", item, droppable=False)), wire.ToEngine)
    assert isinstance(sent, wire.Submit)
    got = wire.model_input(sent)
    assert (got.targets, got.transcript_language, got.detect, got.terms) == (("spa",), DETECTED, ("eng", "spa"), terms)
    out = ModelOutput("hola", {"spa": "x"}, {}, {"eng": 0.25, "spa": 0.75}, speech_ms=1.5, language_id_ms=2.5)
    back = wire.decode(
        wire.encode(wire.result_of(7, EngineResult(out, None, 1.0, 2.0, 1, None, 0.75, 1))), wire.ToWorker
    )
    assert isinstance(back, wire.Result)
    job = wire.job_result(back)
    done = job.output
    assert done is not None
    assert (done.detected, done.speech_ms, done.language_id_ms) == ({"eng": 0.25, "spa": 0.75}, 1.5, 2.5)
    # a final's wait behind optional work
    assert (job.queue_ms, job.optional_ms, job.optional_batches) == (1.0, 0.75, 1)


async def test_a_steps_chunk_words_cross_the_wire() -> None:
    """Word timings of a simultaneous step (issue 45): each row's chunk words and a final step's
    transcript words come back from the engine process as the runner gave them."""
    from translate_svc.model_api.requests import ModelOutput, SimulRowOutput
    from translate_svc.types import WordTiming

    words = (WordTiming("hola", 0, 180), WordTiming("mundo", 180, 420))
    heard = (WordTiming("hello", 0, 320),)
    row = SimulRowOutput("spa", (5, 6), "hola mundo", (0, 1), (5, 6), "hola mundo", 20, tuple(range(20)),
                         np.zeros(6720, np.float32), 2, 20, chunk_words=words)  # fmt: skip
    out = ModelOutput("hello", {"spa": "hola mundo"}, simul={"spa": row}, transcript_words=heard)
    back = wire.decode(wire.encode(wire.result_of(7, EngineResult(out, None, 1.0, 2.0, 1))), wire.ToWorker)
    assert isinstance(back, wire.Result)
    done = wire.job_result(back).output
    assert done is not None and done.simul is not None
    assert done.simul["spa"].chunk_words == words and done.transcript_words == heard


async def test_the_kind_of_work_is_read_from_the_fields_and_crosses_the_wire() -> None:
    """``ModelInput.kind`` (what the runner dispatches on) is derived from ``simul`` and ``text``,
    so the wire carries it with them, without a field of its own."""
    from translate_svc.model_api.requests import SimulRequest, SimulTarget, SourceText, WorkKind

    audio = np.ones(160, np.float32)
    kinds = {
        WorkKind.SEGMENT: ModelInput(audio, ("spa",), "eng"),
        WorkKind.TEXT: ModelInput(np.zeros(0, np.float32), ("spa",), text=SourceText("hola", "spa")),
        WorkKind.RETRANSLATION: ModelInput(audio, ("spa",), "eng", simul=SimulRequest((SimulTarget("spa"),))),
    }
    assert [kind.value for kind in kinds] == ["segment", "text", "retranslation"]
    for kind, sent_item in kinds.items():
        assert sent_item.kind is kind
        sent = wire.decode(wire.encode(wire.submit_of(1, "k", sent_item, droppable=False)), wire.ToEngine)
        assert isinstance(sent, wire.Submit) and wire.model_input(sent).kind is kind


async def test_a_text_input_crosses_the_wire_and_runs_in_the_engine_process(node: Node) -> None:
    """Text in (issue 36) from a worker: the text and its language reach the engine's runner, which
    queues it without features (the fake names the text in its answer)."""
    from translate_svc.model_api.requests import SourceText

    text = ModelInput(np.zeros(0, np.float32), ("spa", "fra"), None, speech=False, text=SourceText("hola", "spa"))
    sent = wire.decode(wire.encode(wire.submit_of(3, "t", text, droppable=False)), wire.ToEngine)
    assert isinstance(sent, wire.Submit) and wire.model_input(sent).text == SourceText("hola", "spa")
    remote = await node.worker()
    seen: list[np.ndarray] = []
    node.runner.on_features = seen.append
    got = await remote.submit("t", text)
    assert got.error is None and got.output is not None
    assert got.output.texts == {"spa": "spa:text=hola", "fra": "fra:text=hola"}
    assert seen == []  # no features computed for a text
    await remote.close()


async def test_a_simultaneous_step_crosses_the_wire_both_ways(node: Node) -> None:
    """A step's request (the policy state as data) reaches the runner as sent, and its rows (token
    ids, commit, chunk as float32) come back as the in-process engine returns them: droppable
    steps and a final one."""
    from translate_svc.model_api.requests import SimulRequest, SimulTarget

    targets = (
        SimulTarget("spa", (5, 6), 1, 40, recent=((5, 6, 7), (5, 6, 7, 8))),
        SimulTarget("fra", (), 0, recent=()),
    )
    node.runner.waveform = lambda item, lang: np.linspace(-1, 1, 333, dtype=np.float32) * (2 if lang == "spa" else 1)
    remote = await node.worker()
    audio = np.random.default_rng(3).standard_normal(8000).astype(np.float32)
    for final in (False, True):
        request = SimulRequest(targets, final=final, min_units=7, agreement=3, hold_last_word=False)
        step = ModelInput(audio, ("spa", "fra"), "eng", speech=True, speaker_id=1, simul=request)
        if final:
            got, want = await remote.submit("s", step), await node.engine.submit("local", step)
        else:
            pending = remote.submit_droppable("s", step)
            assert pending is not None
            got = await pending
            local = node.engine.submit_droppable("local", step)
            assert local is not None
            want = await local
        assert node.runner.ran[-1][0].simul == request  # the request reached the runner as sent
        assert got.error is None and got.output is not None and want.output is not None
        g, w = got.output.simul, want.output.simul
        assert g is not None and w is not None and g.keys() == w.keys() == {"spa", "fra"}
        assert (got.output.texts, got.output.transcript) == (want.output.texts, want.output.transcript)
        for lang, row in w.items():
            back = g[lang]
            assert (back.token_ids, back.text, back.word_starts, back.committed, back.committed_text) == (
                row.token_ids, row.text, row.word_starts, row.committed, row.committed_text
            )  # fmt: skip
            assert (back.units_total, back.chunk_units, back.spoken_tokens, back.spoken_units) == (
                row.units_total, row.chunk_units, row.spoken_tokens, row.spoken_units
            )  # fmt: skip
            if row.chunk is None:
                assert back.chunk is None and not final
            else:
                assert back.chunk is not None and back.chunk.dtype == np.float32 and final
                assert np.array_equal(back.chunk, row.chunk)
        assert g["spa"].committed == ((5, 6, 8000) if final else (5, 6))
    await remote.wait_idle()
    await remote.close()


async def test_a_background_owner_crosses_the_wire_and_its_segments_go_after_live_ones(node: Node) -> None:
    remote = await node.worker()
    remote.join("job")
    remote.join("live")
    remote.background("job")  # issue 73: a job's session
    held = await node.in_the_model(remote, "live")
    ran = len(node.runner.ran)
    job = remote.submit("job", item(3200))
    final = remote.submit("live", item(4800))
    await until(lambda: node.engine.queued == 2 and node.engine.preparing == 0)
    node.runner.gate.set()
    await asyncio.gather(held, job, final)
    assert [len(b[0].audio) for b in node.runner.ran[ran:]] == [1600, 4800, 3200]  # the job's, though older, last
    await remote.close()
