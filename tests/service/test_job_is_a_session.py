"""A job is a session (issue 91, point 4): a background job's run goes through the session
lifecycle every door's sessions do, and the jobs and glossaries APIs' calls write access lines.
One real server in this process on loopback (the stable test translator, a tokens file, the
webhooks' usage records on disk, a receiver verifying with ``standardwebhooks``), real clients:
aiohttp on ``/v1/jobs`` and ``/v1/glossaries``, the generated stubs on ``Glossaries``.

Before, a job's session was opened beside the lifecycle (``jobs/worker.py`` ``open_clip``): no
``session.started``/``session.ended``, no usage record (``translate-svc usage`` showed 0.0 s
after a 216 s job, while docs/api.md says job audio counts), nothing on
``translate_svc_tenant_audio_seconds_total``, no access line; glossary calls wrote none either.
Now a job's run yields one ``session.started`` and one ``session.ended`` (door ``job``, its
``request_id`` the job's id) whose usage equals how much the tenant's counters grew, the usage
command reports its audio, and its access line says what it translated."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from typer.testing import CliRunner

from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import access_lines
from tests.support.session_usage import check_usage, tenant_counters
from tests.support.tokens import bearer
from tests.support.waiting import eventually, until
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc import cli
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.settings import WebhookEndpoint, WebhookSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

TOKEN = "acme-job-session-token-2e7b"
TENANT = "acme"
#: jfk.flac: 11.0 s
AUDIO_S = 11.0


class Served:
    def __init__(self, live: LiveServer, receiver: Receiver, http: aiohttp.ClientSession) -> None:
        self.live, self.receiver, self.http = live, receiver, http
        port = live.server.ports()["http_port"]
        self.jobs = JobsOverHttp(http, port, TOKEN)
        self.glossaries = f"http://127.0.0.1:{port}/v1/glossaries"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("job-session")
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN} * jobs glossaries tenant={TENANT}\n")
    async with receiving(new_secret()) as receiver:
        settings = make_settings(test_model_dir)
        settings.server.http_port = 0
        settings.server.metrics_port = 0
        settings.auth.tokens_file = tokens
        settings.jobs.dir = tmp / "jobs"
        settings.jobs.quiet_wait_s = 0
        settings.jobs.max_part_bytes = 32 * 1024**2
        settings.glossaries.enabled = True
        settings.glossaries.data_dir = tmp / "glossaries"
        settings.webhooks = WebhookSettings(
            endpoints=[WebhookEndpoint(url=receiver.url, secret=receiver.secrets[0])],
            data_dir=tmp / "webhooks",
            allow_http=True,  # the receiver on loopback
        )
        async with (
            serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live,
            aiohttp.ClientSession() as http,
        ):
            yield Served(live, receiver, http)


def of_door(receiver: Receiver, kind: str, door: str, request_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in receiver.events(kind) if e["data"]["door"] == door and request_id in (None, e["data"]["request_id"])
    ]


async def test_a_jobs_run_is_a_session_with_its_webhooks_usage_record_metric_and_access_line(
    served: Served, shared_audio: Path
) -> None:
    receiver = served.receiver
    before = await asyncio.to_thread(tenant_counters, served.live, TENANT)
    with access_lines() as access:
        body = {"source_language": "eng", "target_languages": ["spa", "fra"]}
        done = await served.jobs.run(body, (shared_audio / "jfk.flac").read_bytes())
        assert done["state"] == "done", done["error"]
        await receiver.wait_for(lambda r: len(of_door(r, "session.ended", "job", done["id"])) >= 1, 30)
        await receiver.wait_for(lambda r: len(of_door(r, "session.started", "job", done["id"])) >= 1, 30)
        await until(lambda: bool(access.of("job")), 10)
        after = await asyncio.to_thread(tenant_counters, served.live, TENANT)
        (started,) = of_door(receiver, "session.started", "job", done["id"])
        (ended,) = of_door(receiver, "session.ended", "job", done["id"])
        data = ended["data"]
        assert started["data"]["session_id"] == data["session_id"]
        assert data["request_id"] == started["data"]["request_id"] == done["id"]
        assert (data["tenant"], data["ending"], data["code"]) == (TENANT, "completed", "OK"), data
        assert data["target_languages"] == ["spa", "fra"] and data["source_language"] == "eng"
        # its usage is what the tenant's counters grew by: the job's whole audio, once
        check_usage("job", data["usage"], before, after)
        assert data["usage"]["audio_in_s"] == pytest.approx(AUDIO_S)
        assert data["usage"]["segments_total"] == done["segments"] > 0
        (line,) = access.of("job")
        assert (line["request_id"], line["tenant"], line["code"]) == (done["id"], TENANT, "OK")
        assert line["audio_s"] == pytest.approx(AUDIO_S) and line["segments_total"] == done["segments"]
        assert line["targets"] == "spa,fra"
        # the jobs API's own calls, each with its line
        for method in ("jobs.create", "jobs.upload", "jobs.complete", "jobs.get"):
            assert access.of(method) and all(r["tenant"] == TENANT for r in access.of(method)), method
        assert access.of("jobs.create")[0]["code"] == "OK" and access.of("jobs.create")[0]["status"] == 201
    # the operator's usage command, from the same records
    data_dir = served.live.server.settings.webhooks.data_dir
    out = CliRunner().invoke(cli.app, ["usage", "--data-dir", str(data_dir), "--tenant", TENANT, "--json"])
    assert out.exit_code == 0, out.output
    (report,) = [json.loads(x) for x in out.output.splitlines()]
    assert report["audio_in_s"] == pytest.approx(AUDIO_S) and report["sessions"] == 1
    assert report["segments"] == done["segments"]
    assert receiver.refused == []


async def test_a_cancelled_jobs_session_ends_cancelled(served: Served, shared_audio: Path) -> None:
    """Cancelled by its owner while it runs: ``session.ended`` says ``cancelled``, with what it did."""
    samples, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    out = io.BytesIO()
    sf.write(out, np.tile(samples, 10), rate, format="WAV", subtype="PCM_16")  # 10 minutes: still running
    clip = out.getvalue()
    status, job = await served.jobs.call("POST", json={"source_language": "eng", "target_languages": ["spa"]})
    assert status == 201
    assert (await served.jobs.call("PUT", f"/{job['id']}/audio", data=clip))[0] == 200
    assert (await served.jobs.call("POST", f"/{job['id']}/complete"))[0] == 202

    async def running() -> bool:
        _, now = await served.jobs.call("GET", f"/{job['id']}")
        return bool(now["state"] == "running" and now["segments"] >= 1)

    await eventually(running, "the job running", deadline_s=60, poll_s=0.05)
    status, cancelled = await served.jobs.call("POST", f"/{job['id']}/cancel")
    assert status == 200 and cancelled["state"] == "cancelled"
    mine = lambda r: of_door(r, "session.ended", "job", job["id"])  # noqa: E731
    await served.receiver.wait_for(lambda r: len(mine(r)) == 1, 30)
    (ended,) = mine(served.receiver)
    assert (ended["data"]["ending"], ended["data"]["code"]) == ("cancelled", "CANCELLED"), ended["data"]
    assert 0 < ended["data"]["usage"]["audio_in_s"] < 600


async def test_glossary_calls_write_access_lines_on_both_ports(served: Served) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    entry = {"phrase": "acme", "translation": "acme", "target_language": "spa"}
    stub = pb_grpc.GlossariesStub(served.live.channel)
    with access_lines() as access:
        async with served.http.post(served.glossaries, json={"id": "g1", "entries": [entry]}, headers=headers) as r:
            assert r.status == 201, await r.text()
        async with served.http.get(f"{served.glossaries}/missing", headers=headers) as r:
            assert r.status == 404
        await stub.ListGlossaries(pb.ListGlossariesRequest(), metadata=bearer(TOKEN), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetGlossary(pb.GetGlossaryRequest(glossary_id="missing"), metadata=bearer(TOKEN), timeout=10)
        await until(lambda: bool(access.of("GetGlossary")), 10)
        lines = {m: access.of(m) for m in ("glossaries.create", "glossaries.get", "ListGlossaries", "GetGlossary")}
    assert {m: [(x["tenant"], x["code"]) for x in found] for m, found in lines.items()} == {
        "glossaries.create": [(TENANT, "OK")],
        "glossaries.get": [(TENANT, "NOT_FOUND")],
        "ListGlossaries": [(TENANT, "OK")],
        "GetGlossary": [(TENANT, "NOT_FOUND")],
    }
