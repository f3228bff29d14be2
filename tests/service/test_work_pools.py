"""Work a caller sizes never runs on the loop's default executor, and one tenant's never holds
another's (``session/work.py``, DESIGN.md pitfall 41).

The review found the loop's default executor shared by media probes, every live result resampled
or Opus-encoded, every job part written and every large stream message decoded: a tenant's 8
``complete`` calls in flight left another tenant's 24 kHz gRPC stream 136.8 s late and its job
part 408. Here a real server on loopback (the fake runner as its model) runs with that executor
made two threads and both held by blocked work for the whole test (as a probe that never ends
would hold them), and tenant ``acme``'s share of the part-write pool held too; then tenant
``other``, from real clients, gets everything: a gRPC stream asking 24 kHz speech, sent in 3 s
messages (over 64 KiB: decoded off the loop), every result with its speech resampled; a job part
written; a done job's dubbed track and results read. ``acme``'s own part waits its turn (queued,
not refused) and is written once its held writes end. Before the pools, the stream's first result
never came (its encoding queued behind the held work), so the call hit its safety net: no timing
is measured, the test only needs the held work never to end while it runs."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL, call_config, jfk_then_silence
from tests.support.tokens import bearer
from tests.support.waiting import until
from translate_svc.api.v1 import translate_pb2 as pb

# a loop of its own: the test replaces the loop's default executor
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

ACME, OTHER = "acme-pools-token-5f1c", "other-pools-token-9d2e"
#: a safety net so that a broken test fails instead of hanging; never a measured bound
WAIT_S = 120.0
#: 3 s of 16 kHz PCM16 a message: 96,000 bytes, over the 64 KiB decoded off the loop
MESSAGE_MS = 3000
JOB = {"source_language": "eng", "target_languages": ["spa"], "speech": True}


async def stream(live_stub: object, pcm: np.ndarray, token: str) -> list[pb.StreamingTranslateResponse]:
    """A StreamingTranslate call of ``token``'s tenant asking Spanish speech at 24 kHz, ``pcm`` in
    3 s messages, read to its end."""
    cfg = call_config(speech=True, speech_sample_rate_hz=24000)

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        step = MESSAGE_MS * 16
        for i in range(0, len(pcm), step):
            yield pb.StreamingTranslateRequest(audio=pcm[i : i + step].astype("<i2").tobytes())

    return [r async for r in live_stub.StreamingTranslate(requests(), metadata=bearer(token), timeout=WAIT_S)]  # type: ignore[attr-defined]


async def test_a_held_default_executor_and_one_tenants_held_writes_leave_another_tenant_served(
    shared_audio: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ACME} * jobs tenant=acme\n{OTHER} * jobs tenant=other\n")
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp_path / "jobs"
    settings.jobs.quiet_wait_s = 0
    pcm = jfk_then_silence(shared_audio)
    jfk = (shared_audio / "jfk.flac").read_bytes()
    runner = FakeRunner()
    async with (
        serving(settings, warmup=False, runner_factory=lambda: runner) as live,
        aiohttp.ClientSession() as http,
    ):
        port = live.server.ports()["http_port"]
        acme, other = JobsOverHttp(http, port, ACME), JobsOverHttp(http, port, OTHER)
        done = await other.run(JOB, jfk)  # a done job to download, made while nothing is held
        assert done["state"] == "done", done
        status, uploading = await other.call("POST", json=JOB)
        assert status == 201, uploading
        status, acme_job = await acme.call("POST", json=JOB)
        assert status == 201, acme_job

        loop = asyncio.get_running_loop()
        default = ThreadPoolExecutor(2, thread_name_prefix="held-default")
        loop.set_default_executor(default)
        release = threading.Event()
        held = [loop.run_in_executor(None, release.wait) for _ in range(2)]  # the default executor: full
        writes = live.server.app.sessions.work.part_writes
        acme_held = [  # acme's share of the part-write pool, held
            asyncio.ensure_future(writes.run("acme", release.wait))
            for _ in range(settings.limits.part_writes_per_tenant)
        ]
        acme_part: asyncio.Task[tuple[int, object]] | None = None
        try:
            async with asyncio.timeout(WAIT_S):
                # the other tenant's live stream: every result, its speech resampled to 24 kHz
                got = await stream(live.stub, pcm, OTHER)
                assert got[-1].HasField("ended"), [r.WhichOneof("response") for r in got[-3:]]
                results = [r.segment for r in got if r.HasField("segment")]
                assert len(results) >= 3, len(results)
                for s in results:
                    [t] = s.translations
                    assert t.audio.sample_rate_hz == 24000 and len(t.audio.content) > 0, (s.segment_id, t.audio)

                # acme's own part: it waits for its turn on the pool (not refused)
                acme_part = asyncio.create_task(acme.call("PUT", f"/{acme_job['id']}/audio", data=jfk))
                await until(lambda: writes.waiting("acme") == 1, WAIT_S)  # queued behind its held writes

                # the other tenant's part: written at once
                status, part = await other.call("PUT", f"/{uploading['id']}/audio", data=jfk)
                assert (status, part["received_bytes"]) == (200, len(jfk)), part

                # the other tenant's done job: its dubbed track and its results read
                status, wav = await other.call("GET", f"/{done['id']}/dubbed/spa")
                assert status == 200, wav
                track, rate = sf.read(io.BytesIO(wav), dtype="int16")
                assert rate == 16000 and len(track) > 0
                status, doc = await other.call("GET", f"/{done['id']}/results")
                assert status == 200 and doc["complete"] and doc["segments"], doc
                assert not acme_part.done()  # still waiting for acme's own held writes
        finally:
            release.set()
        async with asyncio.timeout(WAIT_S):
            status, part = await acme_part
            assert (status, part) == (200, {"id": acme_job["id"], "received_bytes": len(jfk)}), part  # type: ignore[comparison-overlap]
            await asyncio.gather(*held, *acme_held)
        default.shutdown()
