"""Content credentials on a job's files (issue 103 item 3): with the operator's key set
(``credentials.cert_file``, ``key_file``: a throwaway CA and signer here, ``tests/support/
credentials.py``), a dubbed track fetched over HTTP or gRPC and a dubbed MP4 carry a C2PA manifest
that c2pa-python reads back and verifies as ``Trusted`` under that CA: made by a trained model, the
server's model named, its time, the SHA-256 of the upload it was made from (noted when the upload
was checked: the upload itself is gone by then) and its language; the track's samples exactly
those the segments imply (signing adds a chunk, changes no sample); one changed byte of the
video's media makes it ``Invalid``; the signed copies made for a request are gone once sent.
Without the key, the same track carries no manifest. Before, no file carried one.

A real server on loopback with the real VAD and a fake model (``FakeRunner``, each segment's speech
three times its length at a level of its own: tests/jobs/test_dubbed_track.py)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import soundfile as sf

from tests.support import videos
from tests.support.credentials import ThrowawayKeys, signing
from tests.support.dubbed_speech import implied, speaking_runner
from tests.support.jobs import JobsOverHttp, fresh_connections, grpc_job
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.marking.credentials import read_bytes
from translate_svc.settings.jobs import DubOverflow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]


class Served:
    def __init__(self, jobs: JobsOverHttp, stub: Any, folder: Path, model: str, keys: ThrowawayKeys | None) -> None:
        self.jobs, self.stub, self.folder, self.model, self.keys = jobs, stub, folder, model, keys


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["signed", "unsigned"])
async def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    runner = speaking_runner()
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("credentials") / "jobs"
    settings.jobs.quiet_wait_s = 0
    keys = None
    if request.param == "signed":
        keys = signing(settings, tmp_path_factory.mktemp("keys"))
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live, fresh_connections() as http:
        model = live.server.app.sessions.card.info.name
        jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
        yield Served(jobs, pb_grpc.JobsStub(live.channel), settings.jobs.dir, model, keys)


def assert_signed_by_us(served: Served, data: bytes, content_type: str, source: bytes, language: str) -> None:
    found = read_bytes(data, content_type, trust_anchors_pem=served.keys.ca_pem if served.keys else None)
    if served.keys is None:
        assert found is None, found
        return
    assert found is not None, "no C2PA manifest in the file"
    assert found.state == "Trusted", found
    assert found.generated and found.model == served.model and found.created, found
    assert found.signer == "translate-svc test signer", found
    assert found.source_sha256 == hashlib.sha256(source).hexdigest(), found  # the upload it was made from
    assert found.languages == (language,), found


async def test_a_dubbed_track_over_http_and_grpc_carries_a_manifest_and_the_same_samples(
    served: Served, shared_audio: Path
) -> None:
    source = (shared_audio / "silero_test.wav").read_bytes()  # 60 s, 16 kHz
    done = await served.jobs.run({"source_language": "eng", "target_languages": ["spa"]}, source)
    assert done["state"] == "done", done["error"]
    segments = await served.jobs.segments(done["id"])
    headers = {"Authorization": f"Bearer {served.jobs.token}"}
    async with served.jobs.http.get(f"{served.jobs.base}/{done['id']}/dubbed/spa", headers=headers) as r:
        wav = await r.read()
        assert r.status == 200, wav[:300]
        assert int(r.headers["Content-Length"]) == len(wav)
    track, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == 16000 and (track == implied(segments, 60 * 16000, DubOverflow.OVERLAP)).all()
    assert_signed_by_us(served, wav, "audio/wav", source, "spa")

    job, _ = await grpc_job(served.stub, pb.CreateJobRequest(source_language="eng", target_languages=["fra"]), source)
    assert job.state == pb.JOB_DONE, job
    got = served.stub.GetJobResults(
        pb.GetJobResultsRequest(job_id=job.job_id, format=pb.JOB_RESULTS_DUBBED_WAV, language="fra"), timeout=60
    )
    over_grpc = b"".join([c.data async for c in got])
    assert sf.info(io.BytesIO(over_grpc)).frames == 60 * 16000
    assert_signed_by_us(served, over_grpc, "audio/wav", source, "fra")
    # the signed copies made for the two requests are gone
    assert not list(served.folder.rglob("dubbed.*")), list(served.folder.rglob("dubbed.*"))


async def test_a_dubbed_mp4_carries_a_manifest_that_one_changed_byte_breaks(
    served: Served, shared_audio: Path, tmp_path: Path
) -> None:
    video = videos.write_video(tmp_path / "talk.mp4", shared_audio / "jfk.flac")
    upload = await asyncio.to_thread(video.read_bytes)
    done = await served.jobs.run({"source_language": "eng", "target_languages": ["spa"]}, upload)
    assert done["state"] == "done", done["error"]
    headers = {"Authorization": f"Bearer {served.jobs.token}"}
    async with served.jobs.http.get(f"{served.jobs.base}/{done['id']}/video", headers=headers) as r:
        body = await r.read()
        assert r.status == 200, body[:300]
        assert int(r.headers["Content-Length"]) == len(body)
    out = tmp_path / "dubbed.mp4"
    await asyncio.to_thread(out.write_bytes, body)
    kinds = [(s.type, s.language) for s in videos.streams(out)]  # a video FFmpeg still opens, dubbed
    assert any(t == "video" for t, _ in kinds), kinds
    assert ("audio", "spa") in kinds, kinds
    assert_signed_by_us(served, body, "video/mp4", upload, "spa")
    if served.keys is not None:
        changed = bytearray(body)
        mdat = body.index(b"mdat") + 64  # inside the media data, which the manifest's hash covers
        changed[mdat] ^= 0x01
        found = read_bytes(bytes(changed), "video/mp4", trust_anchors_pem=served.keys.ca_pem)
        assert found is not None and found.state == "Invalid", found
