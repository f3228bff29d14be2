"""Recordings of real sessions (issue 61): a gRPC stream, a Translate clip and an OpenAI realtime
session of a tenant that records, on a real server on loopback; its files decrypted on the test's
side with the tenant's key (the sealed format, not the server's reader) and compared with what the
client received; a text tenant keeps no audio, a tenant that does not record keeps nothing, the
retention deletes on time, and a rotated key still opens an old recording."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.support import recordings as rec
from tests.support.live_server import LiveServer
from tests.support.raw import raw_request
from tests.support.realtime import MODEL as OPENAI_MODEL
from tests.support.realtime import openai_client
from tests.support.speech import speech_pcm16
from tests.support.tokens import bearer
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(90)]

#: a tenant whose recordings are kept about 3.5 s (retention_days as a fraction of a day)
BRIEF = "brief-stream-token-9f8e7d"
BRIEF_DAYS = 0.00004


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, rec.Setup]]:
    s = rec.setup(tmp_path_factory.mktemp("recordings"))
    s.tokens.write_text(rec.tokens_text() + f"{BRIEF} * tenant=brief record=text retention_days={BRIEF_DAYS}\n")
    s.keys.add("brief", "b1")
    async with rec.recording_server(test_model_dir, s, sweep_interval_s=0.25) as live:
        yield live, s


@pytest.fixture(scope="module")
def pcm(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


async def finished(live: LiveServer, token: str, recording_id: str) -> dict[str, Any]:
    """The recording's manifest from the API, once its session's recording is finished."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        status, body, _ = await rec.api(live, "GET", f"/v1/recordings/{recording_id}", token)
        if status == 200 and json.loads(body).get("ended_at") is not None:
            found.update(json.loads(body))
            return True
        return False

    await eventually(done, f"recording {recording_id} finished", deadline_s=60)
    return found


def ids(s: rec.Setup, tenant: str) -> set[str]:
    """The tenant's recordings on disk, by id."""
    where = s.directory / tenant
    return {p.name for p in where.iterdir()} if where.exists() else set()


def plain(s: rec.Setup, tenant: str, recording_id: str, name: str) -> bytes:
    manifest = rec.on_disk(s.directory, tenant, recording_id)
    tenant_key = s.keys.keys[(tenant, manifest["key"]["id"])]
    blob = (s.directory / tenant / recording_id / (name + ".sealed")).read_bytes()
    return rec.unseal(blob, rec.data_key(manifest, tenant_key), name)


async def test_an_audio_tenants_files_decrypt_to_what_its_client_received(
    served: tuple[LiveServer, rec.Setup], pcm: np.ndarray
) -> None:
    live, s = served
    got = await rec.stream(live.stub, pcm, rec.ACME, ["spa", "fra"], word_timings=True)
    assert got.ended is not None and got.segments
    manifest = await finished(live, rec.ACME_READ, got.session_id)
    assert manifest["complete"] is True and manifest["tenant"] == "acme" and manifest["mode"] == "audio"
    assert manifest["resume_token"] == got.resume_token
    assert "key" not in manifest  # the API never shows the wrapped key
    files = {f["name"]: f for f in manifest["files"]}
    assert {"segments.jsonl", "source.ogg"} <= set(files)

    for name, entry in files.items():  # each file decrypts with acme's key, to its manifest's SHA-256
        data = plain(s, "acme", got.session_id, name)
        assert entry["complete"] is True and hashlib.sha256(data).hexdigest() == entry["sha256"]
        status, body, headers = await rec.api(
            live, "GET", f"/v1/recordings/{got.session_id}/files/{name}", rec.ACME_READ
        )
        assert status == 200 and body == data and headers["X-Recording-File-Complete"] == "true"

    lines = [json.loads(line) for line in plain(s, "acme", got.session_id, "segments.jsonl").splitlines()]
    assert [line["segment_id"] for line in lines] == [seg.segment_id for seg in got.segments]
    for line, seg in zip(lines, got.segments, strict=True):
        assert (line["start_ms"], line["end_ms"]) == (seg.start_ms, seg.end_ms)
        assert line["transcript"]["text"] == seg.transcript.text
        assert [w["word"] for w in line["transcript"]["words"]] == [w.word for w in seg.transcript.words]
        assert [(t["language"], t["text"]) for t in line["translations"]] == [
            (t.target_language, t.text) for t in seg.translations
        ]
        # confidence (issue 72): each result's, as its client received it (finite, <= 0)
        assert seg.transcript.HasField("avg_logprob") and line["transcript"]["avg_logprob"] <= 0.0
        assert line["transcript"]["avg_logprob"] == pytest.approx(seg.transcript.avg_logprob, abs=1e-6)
        assert [t["avg_logprob"] for t in line["translations"]] == pytest.approx(
            [t.avg_logprob for t in seg.translations], abs=1e-6
        )
        assert line["transcript"]["words"] and [w["avg_logprob"] for w in line["transcript"]["words"]] == pytest.approx(
            [w.avg_logprob for w in seg.transcript.words], abs=1e-6
        )
        assert [w["avg_logprob"] for t in line["translations"] for w in t["words"]] == pytest.approx(
            [w.avg_logprob for t in seg.translations for w in t.words], abs=1e-6
        )
    confidences = [line["transcript"]["avg_logprob"] for line in lines]
    assert all(math.isfinite(v) for v in confidences) and len(set(confidences)) == len(confidences)

    samples, rate = rec.decoded_samples(plain(s, "acme", got.session_id, "source.ogg"))
    assert rate == 48_000 and abs(samples - len(pcm) * 3) <= 960  # the input, within a 20 ms frame

    for language in ("spa", "fra"):
        heard_s = sum(
            t.audio.num_samples / t.audio.sample_rate_hz
            for seg in got.segments
            for t in seg.translations
            if t.target_language == language
        )
        name = f"speech.{language}.ogg"
        if heard_s == 0:
            assert name not in files
            continue
        samples, rate = rec.decoded_samples(plain(s, "acme", got.session_id, name))
        assert abs(samples / rate - heard_s) <= 0.020  # the speech the client got, within a frame


async def test_a_text_tenant_keeps_the_segments_and_no_audio(
    served: tuple[LiveServer, rec.Setup], pcm: np.ndarray
) -> None:
    live, s = served
    got = await rec.stream(live.stub, pcm[: 16000 * 6], rec.TEXTY, ["spa"])
    manifest = await finished(live, rec.TEXTY_READ, got.session_id)
    assert [f["name"] for f in manifest["files"]] == ["segments.jsonl"] and manifest["complete"] is True
    on_disk = sorted(p.name for p in (s.directory / "texty" / got.session_id).iterdir())
    assert on_disk == ["manifest.json", "segments.jsonl.sealed"]
    lines = plain(s, "texty", got.session_id, "segments.jsonl").splitlines()
    assert len(lines) == len(got.segments)
    assert all("speech" not in t for line in lines for t in json.loads(line)["translations"])


async def test_a_tenant_that_does_not_record_keeps_nothing(
    served: tuple[LiveServer, rec.Setup], pcm: np.ndarray
) -> None:
    live, s = served
    got = await rec.stream(live.stub, pcm[: 16000 * 6], rec.QUIET, ["spa"])
    assert got.ended is not None and got.segments
    status, body, _ = await rec.api(live, "GET", "/v1/recordings", rec.QUIET_READ)
    assert status == 200 and json.loads(body) == {"recordings": []}
    assert not (s.directory / "quiet").exists()
    assert not any(p.name == got.session_id for p in s.directory.glob("*/*"))


async def test_retention_deletes_a_recording_on_time(served: tuple[LiveServer, rec.Setup], pcm: np.ndarray) -> None:
    live, s = served
    got = await rec.stream(live.stub, pcm[: 16000 * 4], BRIEF, ["spa"])
    where = s.directory / "brief" / got.session_id

    async def ended() -> bool:
        return (where / "manifest.json").exists() and rec.on_disk(s.directory, "brief", got.session_id)["ended_at"]

    await eventually(ended, "the brief recording finished", deadline_s=30, poll_s=0.02)
    ended_at = rec.on_disk(s.directory, "brief", got.session_id)["ended_at"]

    async def gone() -> bool:
        return not where.exists()

    await eventually(gone, "the brief recording deleted", deadline_s=30, poll_s=0.02)
    gone_at = time.time()
    retention_s = BRIEF_DAYS * 86_400
    assert gone_at >= ended_at + retention_s  # not before its retention
    assert gone_at <= ended_at + retention_s + 5  # and soon after (a sweep every 0.25 s)


async def test_a_rotated_key_still_opens_an_old_recording(
    served: tuple[LiveServer, rec.Setup], pcm: np.ndarray
) -> None:
    live, s = served
    old = await rec.stream(live.stub, pcm[: 16000 * 4], rec.ACME, ["spa"])
    old_manifest = await finished(live, rec.ACME_READ, old.session_id)
    old_key_id = rec.on_disk(s.directory, "acme", old.session_id)["key"]["id"]
    s.keys.add("acme", f"rotated-{time.monotonic_ns()}")  # the tenant's current key from now on
    new_key_id = s.keys.lines[-1].split()[1]

    async def uses_new_key() -> bool:  # the key file is re-read within a second of a change
        got = await rec.stream(live.stub, pcm[: 16000 * 2], rec.ACME, ["spa"])
        await finished(live, rec.ACME_READ, got.session_id)
        return bool(rec.on_disk(s.directory, "acme", got.session_id)["key"]["id"] == new_key_id)

    await eventually(uses_new_key, "a new recording made with the rotated key", deadline_s=60, poll_s=1.1)
    assert old_key_id != new_key_id
    entry = next(f for f in old_manifest["files"] if f["name"] == "segments.jsonl")
    status, body, _ = await rec.api(live, "GET", f"/v1/recordings/{old.session_id}/files/segments.jsonl", rec.ACME_READ)
    assert status == 200 and hashlib.sha256(body).hexdigest() == entry["sha256"]


async def test_a_translate_clip_is_recorded_like_a_stream(
    served: tuple[LiveServer, rec.Setup], pcm: np.ndarray
) -> None:
    live, s = served

    before = ids(s, "acme")
    request = raw_request(pcm[: 16000 * 4].tobytes(), pb.LINEAR16, source_language="eng", target_languages=["spa"])
    response = await live.stub.Translate(request, metadata=bearer(rec.ACME))

    async def one_more() -> bool:  # the clip's session, recorded (its directory made by the writer thread)
        return len(ids(s, "acme") - before) == 1

    await eventually(one_more, "the clip's recording")
    (rid,) = ids(s, "acme") - before
    manifest = await finished(live, rec.ACME_READ, rid)
    assert manifest["complete"] is True and {f["name"] for f in manifest["files"]} >= {"segments.jsonl", "source.ogg"}
    lines = [json.loads(line) for line in plain(s, "acme", rid, "segments.jsonl").splitlines()]
    assert [(line["start_ms"], line["translations"][0]["text"]) for line in lines] == [
        (seg.start_ms, seg.translations[0].text) for seg in response.segments
    ]
    samples, _ = rec.decoded_samples(plain(s, "acme", rid, "source.ogg"))
    assert abs(samples - 16000 * 4 * 3) <= 960


async def test_an_openai_realtime_session_is_recorded_like_a_stream(
    served: tuple[LiveServer, rec.Setup], shared_audio: Path
) -> None:
    live, s = served
    pcm24k = speech_pcm16(shared_audio / "jfk.flac", 6, 24_000)
    before = ids(s, "acme")
    events: list[Any] = []
    async with openai_client(live, rec.ACME).realtime.translations.connect(model=OPENAI_MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        session = {
            "audio": {"output": {"language": "es"}, "input": {"language": "en"}},
            "x_simultaneous_step_ms": 0,  # segment mode: one transcript delta per segment
        }
        await conn.session.update(session=session)  # type: ignore[arg-type]
        for at in range(0, len(pcm24k), 4800):
            await conn.session.input_audio_buffer.append(
                audio=base64.b64encode(pcm24k[at : at + 4800].tobytes()).decode()
            )
        await conn.session.close()
        async with asyncio.timeout(60):
            async for ev in conn:
                events.append(ev)
                if ev.type == "session.closed":
                    break
    texts = [e.delta.strip() for e in events if e.type == "session.output_transcript.delta"]
    heard_s = sum(len(base64.b64decode(e.delta)) / 2 / 24_000 for e in events if e.type == "session.output_audio.delta")

    async def one_more() -> bool:
        return len(ids(s, "acme") - before) == 1

    await eventually(one_more, "the realtime session's recording")
    (rid,) = ids(s, "acme") - before
    manifest = await finished(live, rec.ACME_READ, rid)
    assert manifest["complete"] is True
    lines = [json.loads(line) for line in plain(s, "acme", rid, "segments.jsonl").splitlines()]
    assert [t["text"] for line in lines for t in line["translations"] if t["text"]] == [t for t in texts if t]
    samples, _ = rec.decoded_samples(plain(s, "acme", rid, "source.ogg"))
    assert abs(samples - len(pcm24k) * 2) <= 960  # 24 kHz in, 48 kHz in the file
    if heard_s:  # (random weights may say nothing: then no speech file, as for the gRPC stream)
        samples, rate = rec.decoded_samples(plain(s, "acme", rid, "speech.spa.ogg"))
        assert abs(samples / rate - heard_s) <= 0.020  # the speech the client got (24 kHz), within a frame
