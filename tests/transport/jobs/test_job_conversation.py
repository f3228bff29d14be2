"""A job of a conversation, on a real server on loopback (the test checkpoint, the test identifier
biased so that Spanish wins wherever it is a candidate), through both doors' real clients: aiohttp
on ``POST /v1/jobs``, the SDK on the ``Jobs`` gRPC service.

A job takes ``conversation`` in place of its targets and source, as a call does: each segment is
identified among the conversation's languages and translated into the others, its result saying
its source (``detected_language``, the transcript's language); each language has its dubbed track
and subtitles. What is asserted is the mechanics (the direction the biased identifier sets, which
languages each segment carries), never the words of random weights. The refusals are the core
check's (``check_conversation``), named by the job's field; the door only reads the JSON's shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient, JobState, TranslateError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]


class Served:
    def __init__(self, live: LiveServer, http: aiohttp.ClientSession) -> None:
        self.live = live
        self.jobs = JobsOverHttp(http, live.server.ports()["http_port"], "unused")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    from translate_svc.app import build_lid_test_checkpoint

    tmp = tmp_path_factory.mktemp("job-conversation")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.jobs.dir = tmp / "jobs"
    settings.jobs.quiet_wait_s = 0
    settings.model.lid_path = build_lid_test_checkpoint(tmp / "lid", bias="spa")
    async with serving(settings, warmup=False) as live, aiohttp.ClientSession() as http:
        yield Served(live, http)


@pytest.fixture(scope="module")
def clip(shared_audio: Path) -> bytes:
    return (shared_audio / "jfk.flac").read_bytes()


def from_spanish(segments: list[dict[str, Any]], others: list[str]) -> None:
    """Every segment identified as Spanish (the biased identifier's choice among the languages),
    its transcript in it, translated into the conversation's other languages only."""
    assert segments
    for seg in segments:
        assert seg["detected_language"] == "spa" and seg["transcript"]["language"] == "spa", seg
        assert [t["target_language"] for t in seg["translations"]] == others


async def test_a_conversation_job_over_http_says_each_segments_source(served: Served, clip: bytes) -> None:
    body = {"conversation": {"languages": ["eng", "spa"]}, "speech": True}
    job = await served.jobs.run(body, clip)
    assert job["state"] == "done", job["error"]
    assert job["conversation"] == {"languages": ["eng", "spa"]} and job["target_languages"] == []
    from_spanish(await served.jobs.segments(job["id"]), ["eng"])
    # each of the conversation's languages has its track and subtitles: English's carries the
    # translations; Spanish's subtitles are the transcripts of what was said in it
    status, wav = await served.jobs.call("GET", f"/{job['id']}/dubbed/eng")
    assert status == 200 and wav[:4] == b"RIFF"
    status, vtt = await served.jobs.call("GET", f"/{job['id']}/results?format=vtt&language=spa")
    assert status == 200 and vtt.decode().startswith("WEBVTT") and "-->" in vtt.decode()
    status, got = await served.jobs.call("GET", f"/{job['id']}/dubbed/fra")
    assert status == 400 and "job's targets" in got["error"]["message"]


async def test_three_languages_translate_into_the_two_not_spoken(served: Served, clip: bytes) -> None:
    job = await served.jobs.run({"conversation": {"languages": ["fra", "spa", "eng"]}, "speech": False}, clip)
    assert job["state"] == "done", job["error"]
    from_spanish(await served.jobs.segments(job["id"]), ["fra", "eng"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"conversation": {"languages": ["eng", "spa"]}, "target_languages": ["fra"]},
            "conversation and target_languages are both set",
        ),
        (
            {"conversation": {"languages": ["eng", "spa"]}, "source_language": "eng"},
            "conversation and source_language are both set",
        ),
        ({"conversation": {"languages": ["eng"]}}, "conversation.languages has 1 language(s)"),
        ({"conversation": {"languages": ["eng", "xyz"]}}, "'xyz' is not a language this server translates"),
        ({"conversation": ["eng", "spa"]}, 'conversation: {"languages": ["eng", "spa"]}'),
        ({"conversation": {"langs": ["eng", "spa"]}}, "unknown field 'conversation.langs'"),
        ({"conversation": {"languages": "eng,spa"}}, "conversation.languages: a list"),
    ],
)
async def test_a_bad_conversation_is_refused_saying_what_to_send(
    served: Served, body: dict[str, Any], says: str
) -> None:
    status, got = await served.jobs.call("POST", json=body)
    assert status == 400 and says in got["error"]["message"], got


async def test_the_sdk_submits_a_conversation_job(served: Served, shared_audio: Path) -> None:
    async with AsyncTranslateClient(f"127.0.0.1:{served.live.port}") as client:
        job = await client.submit_job(shared_audio / "jfk.flac", conversation="eng,spa", speech=False)
        assert job.conversation == ("eng", "spa") and job.targets == ()
        done = await client.wait_job(job.id)
        assert done.state is JobState.DONE and done.conversation == ("eng", "spa"), done.error
        from_spanish(json.loads(await client.job_results(job.id))["segments"], ["eng"])
        with pytest.raises(TranslateError) as e:
            await client.submit_job(shared_audio / "jfk.flac", conversation=["eng", "spa"], targets=["fra"])
        assert e.value.code.name == "INVALID_ARGUMENT"
        assert "conversation and target_languages are both set" in e.value.message


@pytest.mark.parametrize(
    ("talk", "field"),
    [
        ({"stated_language": "eng"}, "stated_language"),
        ({"voices": {"spa": 1}}, "voices"),
        ({"speeds": {"eng": 0.75}}, "speeds"),
    ],
)
async def test_a_jobs_conversation_refuses_what_only_a_call_takes(
    served: Served, talk: dict[str, Any], field: str
) -> None:
    """The stock gRPC stub: a job's ``Conversation`` holding a stated language, voices or speeds is
    refused naming the field, never run without it (HTTP refuses those keys as unknown)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.live.port}") as channel:
        request = pb.CreateJobRequest(
            format=pb.AudioFormat(encoding=pb.CONTAINER), conversation=pb.Conversation(languages=["eng", "spa"], **talk)
        )
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await pb_grpc.JobsStub(channel).CreateJob(request)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert f"conversation.{field}: a job's conversation takes its languages only" in (e.value.details() or "")
    status, got = await served.jobs.call("POST", json={"conversation": {"languages": ["eng", "spa"], **talk}})
    assert status == 400 and f"unknown field 'conversation.{field}'" in got["error"]["message"], got
