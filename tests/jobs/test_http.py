"""Background jobs on the HTTP port (issue 73) against a real server on loopback (test checkpoint,
a tokens file, a webhook receiver verifying with ``standardwebhooks``): a clip uploaded in parts
and the same clip fetched from an https URL (a loopback server with a ``trustme`` certificate)
both finish with results equal to ``TranslateChunked``'s, subtitles and dubbed tracks, and their
signed ``job.completed``; the refusals are precise."""

from __future__ import annotations

import io
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import soundfile as sf
import trustme
from aiohttp import web

from tests.support.jobs import TARGETS, chunked_segments, job_segments
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.jobs.routes import JobRoutes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

ACME = "acme-token-5d1c9e0b7a3f"
OTHER = "other-token-2f8a6c4e0d1b"
PART = 48 * 1024


class Media:
    """An HTTPS server on loopback serving the clip (and a redirect to it)."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.ca = trustme.CA()
        self.client_ssl = ssl.create_default_context()
        self.ca.configure_trust(self.client_ssl)
        self.port = 0

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/clip.flac", lambda r: web.Response(body=self.clip))
        app.router.add_get("/hop", lambda r: web.HTTPFound("/clip.flac"))
        runner = web.AppRunner(app)
        await runner.setup()
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ssl)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.port = runner.addresses[0][1]
        return runner


class Served:
    def __init__(self, live: LiveServer, receiver: Receiver, media: Media, http: aiohttp.ClientSession) -> None:
        self.live, self.receiver, self.media, self.http = live, receiver, media, http
        self.base = f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/jobs"

    async def call(self, method: str, path: str, token: str = ACME, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.read()
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, body

    async def finished(self, job_id: str) -> dict[str, Any]:
        while True:
            status, job = await self.call("GET", f"/{job_id}?wait=60")
            assert status == 200, job
            if job["state"] in ("done", "failed", "cancelled"):
                return job


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, shared_audio: Path
) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("jobs-http")
    tokens = tmp / "tokens"
    tokens.write_text(f"{ACME} * jobs tenant=acme jobs=3 job_hours=1\n{OTHER} * jobs tenant=other\n")
    media = Media((shared_audio / "jfk.flac").read_bytes())
    runner = await media.start()
    async with receiving(new_secret()) as receiver:
        settings = make_settings(test_model_dir)
        settings.server.http_port = 0
        settings.auth.tokens_file = tokens
        settings.jobs.dir = tmp / "jobs"
        settings.jobs.fetch_hosts = ["localhost"]
        settings.jobs.max_part_bytes = 64 * 1024
        settings.webhooks = receiver.webhooks(tmp / "events", ["job.completed", "job.failed"])
        async with serving(settings) as live, aiohttp.ClientSession() as http:
            routes = live.server.route_set(JobRoutes)
            assert routes is not None
            routes.desk.fetch_checks = {"allowed": lambda a: a.is_loopback, "ssl_context": media.client_ssl}
            yield Served(live, receiver, media, http)
    await runner.cleanup()


async def reference(served: Served) -> pb.TranslateResponse:
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=served.media.clip, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=list(TARGETS),
        output=pb.OutputOptions(text=True, speech=True, transcript=True, word_timings=True),
    )
    return await served.live.stub.TranslateChunked(
        clip_chunks(request, 64 * 1024), metadata=(("authorization", f"Bearer {ACME}"),), timeout=300
    )


async def check_results(served: Served, job_id: str, reply: pb.TranslateResponse) -> None:
    status, doc = await served.call("GET", f"/{job_id}/results")
    assert status == 200 and doc["complete"] is True
    assert job_segments(doc["segments"]) == chunked_segments(reply)
    status, srt = await served.call("GET", f"/{job_id}/results?format=srt&language=spa")
    assert status == 200 and srt.decode().count(" --> ") == sum(
        1 for s in doc["segments"] if s["translations"][0]["text"]
    )
    status, vtt = await served.call("GET", f"/{job_id}/results?format=vtt&language=transcript")
    assert status == 200 and vtt.decode().startswith("WEBVTT")
    for lang in TARGETS:
        status, wav = await served.call("GET", f"/{job_id}/dubbed/{lang}")
        assert status == 200
        samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
        assert rate == 16000 and len(samples) == 11 * 16000  # as long as jfk.flac (issue 91)


async def test_a_clip_uploaded_in_parts_finishes_equal_to_translate_chunked(served: Served) -> None:
    status, job = await served.call("POST", "", json={"source_language": "eng", "target_languages": list(TARGETS)})
    assert status == 201 and job["state"] == "uploading" and job["upload"]["method"] == "PUT"
    clip = served.media.clip
    for at in range(0, len(clip), PART):
        part = clip[at : at + PART]
        headers = {"Content-Range": f"bytes {at}-{at + len(part) - 1}/{len(clip)}"}
        status, got = await served.call("PUT", f"/{job['id']}/audio", data=part, headers=headers)
        assert status == 200 and got["received_bytes"] == at + len(part)
    # a part sent again (its answer lost) starts behind the upload: 409, nothing written twice
    status, err = await served.call("PUT", f"/{job['id']}/audio?offset=0", data=clip[:PART])
    assert status == 409 and f"starts at {len(clip)}" in err["error"]["message"]
    status, queued = await served.call("POST", f"/{job['id']}/complete")
    assert status == 202 and queued["state"] in ("queued", "running", "done") and queued["duration_ms"] == 11_000
    reply = await reference(served)
    done = await served.finished(job["id"])
    assert done["state"] == "done" and done["progress"] == 1.0 and done["segments"] == len(reply.segments)
    await check_results(served, job["id"], reply)
    await served.receiver.wait_for(lambda r: any(e["data"]["job_id"] == job["id"] for e in r.events("job.completed")))
    event = next(e for e in served.receiver.events("job.completed") if e["data"]["job_id"] == job["id"])
    assert event["data"]["segments"] == len(reply.segments) and event["data"]["state"] == "done"


async def test_a_clip_fetched_from_an_https_url_after_a_redirect_finishes_the_same(served: Served) -> None:
    url = f"https://localhost:{served.media.port}/hop"
    status, job = await served.call(
        "POST", "", json={"source_language": "eng", "target_languages": list(TARGETS), "url": url}
    )
    assert status == 202, job
    done = await served.finished(job["id"])
    assert done["state"] == "done", done["error"]
    await check_results(served, job["id"], await reference(served))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://localhost/clip.flac", "https://"),
        (
            "https://media.example.org/clip.flac",
            "does not fetch from host 'media.example.org': use a host in its jobs.fetch_hosts",
        ),
        ("https://user:pw@localhost/clip.flac", "user name"),
    ],
)
async def test_a_url_the_fetch_rules_refuse_is_400_before_any_job(served: Served, url: str, says: str) -> None:
    status, err = await served.call(
        "POST", "", json={"target_languages": ["spa"], "source_language": "eng", "url": url}
    )
    assert status == 400 and says in err["error"]["message"]


async def test_a_fetch_that_fails_fails_its_job_saying_why_and_signs_job_failed(served: Served) -> None:
    url = f"https://localhost:{served.media.port}/missing"
    status, job = await served.call(
        "POST", "", json={"source_language": "eng", "target_languages": ["spa"], "url": url}
    )
    assert status == 202
    done = await served.finished(job["id"])
    assert done["state"] == "failed" and "HTTP 404" in done["error"]
    await served.receiver.wait_for(lambda r: any(e["data"]["job_id"] == job["id"] for e in r.events("job.failed")))


async def test_refusals_are_precise(served: Served) -> None:
    status, err = await served.call("POST", "", json={"target_languages": ["xx-nope"], "source_language": "eng"})
    assert status == 400 and "xx-nope" in err["error"]["message"]
    status, err = await served.call("POST", "", data=b"not json")
    assert status == 400 and "not JSON" in err["error"]["message"]
    status, err = await served.call("POST", "", json={"target_languages": ["spa"], "format": {"encoding": "linear16"}})
    assert status == 400 and "sample_rate_hz" in err["error"]["message"]
    status, _ = await served.call("POST", "", token="wrong-token", json={"target_languages": ["spa"]})
    assert status == 401
    status, job = await served.call("POST", "", json={"source_language": "eng", "target_languages": ["spa"]})
    assert status == 201
    # another tenant's job is as one that never was
    assert (await served.call("GET", f"/{job['id']}", token=OTHER))[0] == 404
    status, err = await served.call("POST", f"/{job['id']}/complete")
    assert status == 400 and "nothing was uploaded" in err["error"]["message"]
    status, err = await served.call("GET", f"/{job['id']}/results?format=srt")
    assert status == 400 and "language=" in err["error"]["message"]
    status, err = await served.call("PUT", f"/{job['id']}/audio", data=b"x" * (64 * 1024 + 1))
    assert status == 413 and "jobs.max_part_bytes" in err["error"]["message"]
    status, err = await served.call(
        "PUT", f"/{job['id']}/audio", data=b"x" * 10, headers={"Content-Range": "bytes 0-99/*"}
    )
    assert status == 400 and "Content-Range says 100 bytes" in err["error"]["message"]
    status, err = await served.call(
        "PUT", f"/{job['id']}/audio", data=b"x" * 10, headers={"Content-Range": "bytes=0-9"}
    )
    assert status == 400 and "Content-Range: bytes START-END" in err["error"]["message"]
    status, cancelled = await served.call("POST", f"/{job['id']}/cancel")
    assert status == 200 and cancelled["state"] == "cancelled"
    status, err = await served.call("PUT", f"/{job['id']}/audio", data=b"x" * 10)
    assert status == 409 and "cancelled" in err["error"]["message"]


async def test_a_tenants_jobs_not_finished_are_capped(served: Served) -> None:
    made = []
    while True:
        status, job = await served.call("POST", "", json={"source_language": "eng", "target_languages": ["spa"]})
        if status != 201:
            break
        made.append(job["id"])
    assert status == 429 and "jobs=3" in job["error"]["message"] and 1 <= len(made) <= 3
    for job_id in made:
        assert (await served.call("POST", f"/{job_id}/cancel"))[0] == 200
    assert (await served.call("POST", "", json={"source_language": "eng", "target_languages": ["spa"]}))[0] == 201
