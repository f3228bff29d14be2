"""Recordings on the doors they are claimed for beyond gRPC and the realtime socket (issue 73): a
phone call (a fake Twilio written from Twilio's Media Streams page), a SIP call (SIPp), a Riva
speech-to-text stream (the unmodified ``nvidia-riva-client``) and the REST transcription endpoint
(the ``openai`` SDK), each made by a tenant that records audio, on one real server on loopback.
Each leaves one finished, complete recording whose files decrypt with the tenant's key on the
test's side: its segments (as many as its session's ``segments_total`` on the access line) and the
input audio it heard (at least the speech sent)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import riva.client
import soundfile as sf
from openai import AsyncOpenAI

from tests.support import recordings as rec
from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import AccessLines, FakeTwilio, access_lines, calls_ended, phone_url, ulaw_bytes
from tests.support.sip_peers import need, pcap_call, write_rtp_pcap
from tests.support.speech import speech_pcm16
from tests.support.waiting import eventually
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

SECONDS = 4.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, rec.Setup]]:
    s = rec.setup(tmp_path_factory.mktemp("recordings"))
    settings = rec.settings(test_model_dir, s)
    settings.phone.websocket = True
    settings.sip.port = 0
    settings.sip.tenant = "acme"  # SIP callers are this tenant's: acme records audio
    settings.server.riva = True
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        yield live, s


async def phone(live: LiveServer, shared: Path, tmp: Path) -> None:
    audio = ulaw_bytes(speech_pcm16(shared / "silero_test.wav", SECONDS, 8000))
    carrier = FakeTwilio(phone_url(live.server, "twilio"), headers={"Authorization": f"Bearer {rec.ACME}"})
    assert (await carrier.call(audio, linger_s=4.0, quiet_s=1.0, speed=2)).events


async def sip(live: LiveServer, shared: Path, tmp: Path) -> None:
    need("sipp")
    pcap = write_rtp_pcap(tmp / "speech.pcap", ulaw_bytes(speech_pcm16(shared / "silero_test.wav", SECONDS, 8000)))
    run = await pcap_call(tmp, int(live.server.ports()["sip_port"]), pcap, SECONDS)
    assert run.returncode == 0, f"{run.stdout[-1500:]}\n{run.errors[-3000:]}"


async def riva_stream(live: LiveServer, shared: Path, tmp: Path) -> None:
    auth = riva.client.Auth(uri=f"127.0.0.1:{live.port}", metadata_args=[["authorization", f"Bearer {rec.ACME}"]])
    client = riva.client.NeuralMachineTranslationClient(auth)
    cfg = riva.client.StreamingTranslateSpeechToTextConfig(
        asr_config=riva.client.StreamingRecognitionConfig(
            config=riva.client.RecognitionConfig(
                encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US"
            )
        ),
        translation_config=riva.client.TranslationConfig(target_language_code="es-ES"),
    )
    data = speech_pcm16(shared / "silero_test.wav", SECONDS, 16000).tobytes()
    chunks = [data[i : i + 6400] for i in range(0, len(data), 6400)]
    assert await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks, cfg)))


async def rest(live: LiveServer, shared: Path, tmp: Path) -> None:
    out = io.BytesIO()
    sf.write(out, speech_pcm16(shared / "silero_test.wav", SECONDS, 16000), 16000, format="WAV", subtype="PCM_16")
    client = AsyncOpenAI(base_url=rec.http_url(live, "/v1"), api_key=rec.ACME, max_retries=0)
    got = await client.audio.transcriptions.create(file=("speech.wav", out.getvalue()), model="m", language="en")
    assert isinstance(got.text, str)


#: name: (the access line's method, the session)
DOORS: dict[str, tuple[str, Callable[[LiveServer, Path, Path], Awaitable[None]]]] = {
    "phone": ("phone_twilio", phone),
    "sip": ("sip", sip),
    "riva": ("riva.StreamingTranslateSpeechToText", riva_stream),
    "rest": ("audio.transcriptions", rest),
}


async def listed(live: LiveServer) -> set[str]:
    status, body, _ = await rec.api(live, "GET", "/v1/recordings", rec.ACME_READ)
    assert status == 200, body
    return {r["id"] for r in json.loads(body)["recordings"]}


@pytest.mark.parametrize("name", list(DOORS))
async def test_a_recording_tenants_session_on_this_door_is_recorded(
    served: tuple[LiveServer, rec.Setup], shared_audio: Path, tmp_path: Path, name: str
) -> None:
    live, s = served
    method, run = DOORS[name]
    before = await listed(live)
    with access_lines() as access:
        await run(live, shared_audio, tmp_path)
        await calls_ended(live.server)
        lines = await lines_of(access, method)
    assert len(lines) == 1 and lines[0]["code"] == "OK", lines
    found: dict[str, Any] = {}

    async def finished() -> bool:
        new = await listed(live) - before
        if len(new) != 1:
            return False
        (recording_id,) = new
        status, body, _ = await rec.api(live, "GET", f"/v1/recordings/{recording_id}", rec.ACME_READ)
        if status == 200 and json.loads(body).get("ended_at") is not None:
            found.update(json.loads(body))
            return True
        return False

    await eventually(finished, f"the {name} session's recording finished", deadline_s=60)
    assert found["complete"] is True and found["tenant"] == "acme" and found["mode"] == "audio", found
    assert {"segments.jsonl", "source.ogg"} <= {f["name"] for f in found["files"]}, found
    recording_id = found["id"]
    manifest = rec.on_disk(s.directory, "acme", recording_id)
    key = rec.data_key(manifest, s.keys.keys[("acme", manifest["key"]["id"])])

    def plain(file: str) -> bytes:
        return rec.unseal((s.directory / "acme" / recording_id / f"{file}.sealed").read_bytes(), key, file)

    segments = [json.loads(line) for line in plain("segments.jsonl").splitlines()]
    assert len(segments) == lines[0]["segments_total"] >= 1, (segments, lines[0])
    samples, rate = rec.decoded_samples(plain("source.ogg"))
    assert samples / rate >= SECONDS - 0.1, (samples, rate)


async def lines_of(access: AccessLines, method: str) -> list[dict[str, Any]]:
    """The access lines of ``method`` (a call's is written as it ends)."""

    async def written() -> bool:
        return bool(access.of(method))

    await eventually(written, f"the {method} access line", deadline_s=30)
    return access.of(method)
