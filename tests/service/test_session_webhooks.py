"""Every door's session yields exactly one signed ``session.ended`` whose usage equals the server's
own counters (issue 61): a gRPC stream, Translate, TranslateText, an OpenAI realtime session, a
phone call (a fake Twilio written from Twilio's Media Streams page, ``phone_carriers.py``) and a
Riva speech-to-text stream (the unmodified ``nvidia-riva-client``), one after another through one
real server on loopback (the stable test translator), each delivery verified by a receiver with
the Standard Webhooks reference library (``webhook_receiver.py``). For each session the usage it
carries (audio in, speech out, segments by status, text characters in and out) is compared with
how much the tenant counters on ``/metrics`` grew over it."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import riva.client
from typer.testing import CliRunner

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import FakeTwilio, phone_settings, phone_url, ulaw_bytes
from tests.support.realtime import MODEL, openai_client
from tests.support.session_usage import check_usage, tenant_counters
from tests.support.speech import speech_pcm16
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc import cli
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.settings import WebhookEndpoint, WebhookSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

SECONDS = 4.0
TENANT = "default"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, Receiver]]:
    async with receiving(new_secret()) as receiver:
        settings = phone_settings(test_model_dir)
        settings.server.riva = True
        settings.server.metrics_port = 0
        settings.webhooks = WebhookSettings(
            endpoints=[WebhookEndpoint(url=receiver.url, secret=receiver.secrets[0])],
            data_dir=tmp_path_factory.mktemp("webhooks"),
            allow_http=True,  # the receiver on loopback
        )
        async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
            yield live, receiver


async def grpc_stream(live: LiveServer, pcm: np.ndarray) -> None:
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=True),
    )

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        for at in range(0, len(pcm), 3200):
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + 3200].tobytes())

    ended = [r async for r in live.stub.StreamingTranslate(requests(), timeout=60) if r.HasField("ended")]
    assert len(ended) == 1


async def translate(live: LiveServer, pcm: np.ndarray) -> None:
    req = pb.TranslateRequest(
        audio=pb.AudioInput(content=pcm.tobytes(), format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
        source_language="eng",
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(text=True, speech=True),
    )
    assert (await live.stub.Translate(req, timeout=60)).segments


async def translate_text(live: LiveServer, _: np.ndarray) -> None:
    req = pb.TranslateTextRequest(
        texts=["the meeting starts at nine", "bring the report"], source_language="eng", target_languages=["spa"]
    )
    assert (await live.stub.TranslateText(req, timeout=60)).results


async def realtime(live: LiveServer, _: np.ndarray, shared: Path) -> None:
    """A realtime translation session with the real ``openai`` SDK: audio appended, then closed."""
    pcm24k = speech_pcm16(shared / "silero_test.wav", SECONDS, 24000)
    async with openai_client(live, "any").realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.send({"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}})  # type: ignore[arg-type]
        for at in range(0, len(pcm24k), 4800):
            chunk = base64.b64encode(pcm24k[at : at + 4800].tobytes()).decode()
            await conn.send({"type": "session.input_audio_buffer.append", "audio": chunk})  # type: ignore[arg-type]
        await conn.send({"type": "session.close"})  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            types = [ev.type async for ev in conn]
    assert "session.closed" in types, types


async def phone(live: LiveServer, _: np.ndarray, shared: Path) -> None:
    audio = ulaw_bytes(speech_pcm16(shared / "silero_test.wav", SECONDS, 8000))
    log = await FakeTwilio(phone_url(live.server, "twilio")).call(audio, linger_s=4.0, quiet_s=1.0, speed=2)
    assert log.events


async def riva_stream(live: LiveServer, pcm: np.ndarray) -> None:
    client = riva.client.NeuralMachineTranslationClient(riva.client.Auth(uri=f"127.0.0.1:{live.port}"))
    cfg = riva.client.StreamingTranslateSpeechToTextConfig(
        asr_config=riva.client.StreamingRecognitionConfig(
            config=riva.client.RecognitionConfig(
                encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US"
            )
        ),
        translation_config=riva.client.TranslationConfig(target_language_code="es-ES"),
    )
    data = pcm.tobytes()
    chunks = [data[i : i + 6400] for i in range(0, len(data), 6400)]
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks, cfg)))
    assert responses


DOORS: dict[str, tuple[str, Callable[..., Awaitable[None]], bool]] = {
    # name: (the event's door, the session, whether it takes the shared audio dir)
    "grpc_stream": ("StreamingTranslate", grpc_stream, False),
    "translate": ("Translate", translate, False),
    "translate_text": ("TranslateText", translate_text, False),
    "openai_realtime": ("realtime", realtime, True),
    "phone": ("phone_twilio", phone, True),
    "riva": ("riva.StreamingTranslateSpeechToText", riva_stream, False),
}


async def test_every_doors_session_ends_in_one_signed_session_ended_with_the_counters_usage(
    served: tuple[LiveServer, Receiver], shared_audio: Path
) -> None:
    live, receiver = served
    pcm = speech_pcm16(shared_audio / "silero_test.wav", SECONDS, 16000)
    for name, (door, run, shared) in DOORS.items():
        before = await asyncio.to_thread(tenant_counters, live, TENANT)
        n = len(receiver.events("session.ended"))
        await (run(live, pcm, shared_audio) if shared else run(live, pcm))
        await receiver.wait_for(lambda r, n=n: len(r.events("session.ended")) > n)
        after = await asyncio.to_thread(tenant_counters, live, TENANT)
        ended = receiver.events("session.ended")[n:]
        assert len(ended) == 1, (name, ended)
        data: dict[str, Any] = ended[0]["data"]
        assert data["door"] == door and data["tenant"] == TENANT and data["ending"] == "completed", (name, data)
        check_usage(name, data["usage"], before, after, audio=name != "translate_text")
    await receiver.wait_for(lambda r: len(r.events("session.started")) == len(DOORS))  # in no set order
    await asyncio.sleep(0.5)  # nothing more comes
    ended = receiver.events("session.ended")
    started = receiver.events("session.started")
    assert len(ended) == len(DOORS) == len({e["data"]["session_id"] for e in ended})
    assert {e["data"]["session_id"] for e in started} == {e["data"]["session_id"] for e in ended}
    assert {e["data"]["door"] for e in ended} == {door for door, _, _ in DOORS.values()}
    assert receiver.refused == []
    # the operator's view answers from the same records: the sum of what the webhooks carried
    data_dir = live.server.settings.webhooks.data_dir
    out = CliRunner().invoke(cli.app, ["usage", "--data-dir", str(data_dir), "--tenant", TENANT, "--json"])
    assert out.exit_code == 0, out.output
    (report,) = [json.loads(line) for line in out.output.splitlines()]
    usages = [e["data"]["usage"] for e in ended]
    assert report["sessions"] == len(DOORS)
    assert report["audio_in_s"] == pytest.approx(sum(u["audio_in_s"] for u in usages))
    assert report["segments"] == sum(u["segments_total"] for u in usages)
    assert report["text_in_chars"] == sum(u["text_in_chars"] for u in usages)
    for lang in ("spa", "fra"):
        assert report["speech_out_s"][lang] == pytest.approx(sum(u["speech_out_s"].get(lang, 0) for u in usages))
        assert report["text_out_chars"][lang] == sum(u["text_out_chars"].get(lang, 0) for u in usages)
    later = CliRunner().invoke(cli.app, ["usage", "--data-dir", str(data_dir), "--since", "2100-01-01", "--json"])
    assert later.exit_code == 0 and later.output == ""
