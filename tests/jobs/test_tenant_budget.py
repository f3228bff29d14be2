"""Issue 87 J7: a job is its tenant's work, admitted as its Translate calls are. Before, a job's
session was opened with ``open_clip`` directly and ``charge_audio``'s refusal was ignored: a tenant
allowed 60 audio seconds a minute got 20 minutes translated in 7 s, then lost its live service for
19 minutes (its budget 19 minutes below zero). Now each second a job feeds is drawn from the
tenant's budget first, and only while the budget holds more than ``jobs.budget_reserve`` (half) of
a minute's worth, so the tenant's live calls keep theirs; and a running job holds one of the
tenant's ``translate_calls``, so a job does not start while they are all in use.

A real server on loopback (the test checkpoint, which translates this 176 s recording in about
6 s alone), the jobs API over aiohttp and ``Translate`` over gRPC with the tenant's token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.attacks.jobs import jobs_url, status_of, token_line, uploaded_job
from tests.support.jobs import long_clip
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

METERED = "budget-metered-token-2c7d9e"
ONE_CALL = "budget-one-call-token-5a3b8f"
PER_MINUTE = 60
#: how long the job is watched once under way
WATCH_S = 10.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("budget")
    tokens = tmp / "tokens"
    tokens.write_text(
        token_line(METERED, "metered", f"audio_seconds_per_minute={PER_MINUTE}")
        + token_line(ONE_CALL, "onecall", "translate_calls=1")
    )
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    async with serving(settings) as live:
        yield live


def translate_request(audio: bytes) -> pb.TranslateRequest:
    return pb.TranslateRequest(
        audio=pb.AudioInput(content=audio, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True),
    )


async def live_call(live: LiveServer, token: str, audio: bytes) -> str:
    """A ``Translate`` call of the tenant: its status code's name."""
    try:
        await live.stub.Translate(
            translate_request(audio), metadata=(("authorization", f"Bearer {token}"),), timeout=60
        )
    except grpc.aio.AioRpcError as e:
        return e.code().name
    return "OK"


async def test_a_job_spends_only_what_the_tenants_live_calls_leave(
    live: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    base = jobs_url(live)
    recording = long_clip(shared_audio, tmp_path / "long.wav").read_bytes()
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        job = await uploaded_job(http, base, METERED, recording)
        began = loop.time()

        async def state() -> dict:  # type: ignore[type-arg]
            return (await status_of(http, "GET", f"{base}/{job['id']}", METERED))[1]

        async def under_way() -> bool:
            return (await state())["segments"] > 0

        await eventually(under_way, "the job under way", 60)
        now = await state()
        while now["state"] not in ("done", "failed") and loop.time() - began < WATCH_S:
            now = (await status_of(http, "GET", f"{base}/{job['id']}?wait=1", METERED))[1]
        took = loop.time() - began
        call = await live_call(live, METERED, (shared_audio / "jfk.flac").read_bytes())
        await status_of(http, "POST", f"{base}/{job['id']}/cancel", METERED)
    print(
        f"\nJ7 budget: a tenant at {PER_MINUTE} audio s/min: its job translated {now['done_ms'] / 1000:.0f} s of "
        f"{now['duration_ms'] / 1000:.0f} s in {took:.1f} s ({now['state']}); its live Translate call then: {call}"
    )
    # what the budget allows in that time: a minute's worth banked, then its refill (and a segment in flight)
    assert now["done_ms"] <= (PER_MINUTE + PER_MINUTE / 60 * took + 15) * 1000, now
    assert call == "OK"


async def test_a_job_waits_while_its_tenants_translate_calls_are_all_in_use(
    live: LiveServer, shared_audio: Path
) -> None:
    base = jobs_url(live)
    audio = (shared_audio / "jfk.flac").read_bytes()
    metadata = (("authorization", f"Bearer {ONE_CALL}"),)
    release = asyncio.Event()

    async def held_call() -> AsyncIterator[pb.TranslateRequest]:  # its clip's first chunk, then nothing
        first = next(iter(clip_chunks(translate_request(audio), 4096)))
        yield first
        await release.wait()

    call = live.stub.TranslateChunked(held_call(), metadata=metadata, timeout=120)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        try:

            async def call_in_progress() -> bool:  # the call holds the tenant's one Translate call
                status = await live_call(live, ONE_CALL, audio)
                return status == "RESOURCE_EXHAUSTED"

            await eventually(call_in_progress, "the held call taking the tenant's translate_calls=1", 30)
            job = await uploaded_job(http, base, ONE_CALL, audio)
            seen = set()
            end = loop.time() + WATCH_S  # long enough for this job to finish several times over
            while loop.time() < end:
                now = (await status_of(http, "GET", f"{base}/{job['id']}?wait=1", ONE_CALL))[1]
                seen.add((now["state"], now["segments"]))
                if now["state"] in ("done", "failed"):
                    break
        finally:
            release.set()
            call.cancel()
        print(f"\nJ7 translate_calls=1: while the tenant's one call was in progress its job showed {sorted(seen)}")
        assert all(segments == 0 and state in ("queued", "running") for state, segments in seen), seen

        async def finished() -> bool:
            return (await status_of(http, "GET", f"{base}/{job['id']}?wait=5", ONE_CALL))[1]["state"] == "done"

        await eventually(finished, "the job done once the tenant's call ended", 60)
