"""A job's own VAD options (issue 102: the semantic end of turn on every door that cuts audio),
on a real server on loopback, through both doors' real clients: aiohttp on ``POST /v1/jobs``
(``vad``), the SDK on the ``Jobs`` gRPC service (``submit_job(vad=VadOptions(...))``).

jfk.flac is two sentences, the second said in three phrases; the silence rule cuts a segment a
phrase, ``eagerness`` ``medium`` (the end-of-turn model's real weights) keeps the second sentence
whole (tests/transport/grpc/test_semantic_turns.py: a stream of the same file). What is asserted
is where segments begin and end, never the test checkpoint's words. A bad option is refused at
once naming it, before any audio is sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.client import AsyncTranslateClient, TranslateError
from translate_svc.client.types import VadOptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

#: silero's regions of jfk.flac at the default VAD settings (ms, padded): one a phrase
PHRASES = [(320, 2270), (3270, 4450), (5380, 7680), (8160, 10620)]
SENTENCES = [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]


class Served:
    def __init__(self, live: LiveServer, http: aiohttp.ClientSession) -> None:
        self.live = live
        self.jobs = JobsOverHttp(http, live.server.ports()["http_port"], "unused")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> AsyncIterator[Served]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("job-vad") / "jobs"
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False) as live, aiohttp.ClientSession() as http:
        yield Served(live, http)


def near(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> bool:
    """The same segments, each end within a window (32 ms) of the expected one."""
    return len(got) == len(want) and all(
        abs(a - c) <= 32 and abs(b - d) <= 32 for (a, b), (c, d) in zip(got, want, strict=True)
    )


async def test_a_jobs_eagerness_over_http_keeps_a_paused_sentence_whole(served: Served, shared_audio: Path) -> None:
    clip = (shared_audio / "jfk.flac").read_bytes()
    body = {"source_language": "eng", "target_languages": ["spa"], "speech": False}
    plain = await served.jobs.run(body, clip)
    semantic = await served.jobs.run({**body, "vad": {"eagerness": "medium", "min_silence_ms": 100}}, clip)
    assert plain["state"] == semantic["state"] == "done", (plain, semantic)
    assert "vad" not in plain and semantic["vad"] == {"eagerness": "medium", "min_silence_ms": 100}
    spans = {
        name: [(s["start_ms"], s["end_ms"]) for s in await served.jobs.segments(job["id"])]
        for name, job in (("plain", plain), ("semantic", semantic))
    }
    assert near(spans["plain"], PHRASES), spans
    assert near(spans["semantic"], SENTENCES), spans


@pytest.mark.parametrize(
    ("vad", "words"),
    [
        ({"eagerness": "eager"}, "vad.eagerness='eager'"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_silence": 100}, "min_silence"),
        ({"min_silence_ms": "100"}, "vad.min_silence_ms is '100': a whole number"),
        ([1], "vad: an object of"),
    ],
)
async def test_a_bad_vad_option_is_refused_naming_it(served: Served, vad: object, words: str) -> None:
    status, doc = await served.jobs.call(
        "POST", json={"source_language": "eng", "target_languages": ["spa"], "vad": vad}
    )
    assert status == 400 and words in str(doc), (status, doc)


async def test_the_sdk_sets_a_jobs_vad_options_and_reads_them_back(served: Served, shared_audio: Path) -> None:
    async with AsyncTranslateClient(f"127.0.0.1:{served.live.port}") as client:
        job = await client.submit_job(
            shared_audio / "jfk.flac", targets=["spa"], source="eng", speech=False, vad=VadOptions(eagerness="low")
        )
        done = await client.wait_job(job.id)
        assert done.state.value == "done", done.error
        doc = json.loads(await client.job_results(job.id))
        spans = [(s["start_ms"], s["end_ms"]) for s in doc["segments"]]
        assert near(spans, SENTENCES), spans
        with pytest.raises(TranslateError) as caught:
            await client.submit_job(shared_audio / "jfk.flac", targets=["spa"], vad=VadOptions(eagerness="eager"))
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and "vad.eagerness='eager'" in str(caught.value)
