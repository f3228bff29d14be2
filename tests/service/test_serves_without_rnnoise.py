"""A server without ``pyrnnoise`` starts, and refuses noise suppression per request saying what is
missing (issue 91, point 8), as it refuses speaker labels without Resemblyzer. Before, ``serve``
loaded RNNoise at start and stopped there: that is what kept the GPU runbook's server from
starting. ``translate-svc serve`` runs as its own process with a ``pyrnnoise`` on its path that is
not the package (a plain module, found first): the library is then not found, as when the wheel is
not installed; the options of gRPC (a stream and a clip) and of the audio REST endpoints are
refused, and the same requests without them are served."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import openai
import pytest
import soundfile as sf

from tests.support.raw import TEXT_ONLY, stream_config
from tests.support.server_process import ServerProcess
from tests.support.speech import jfk_16k
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)


@pytest.fixture(scope="module")
def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    shadow = tmp_path_factory.mktemp("no-rnnoise")
    (shadow / "pyrnnoise.py").write_text('raise ImportError("not the pyrnnoise package")\n')
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH", "")) if p)
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    server = ServerProcess([*args, "--test-translator", "stable"], env={"PYTHONPATH": path})
    try:
        yield server
    finally:
        server.stop()


def _wav(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _refused_for_rnnoise(details: str) -> None:
    assert "noise suppression" in details and "pyrnnoise" in details, details


async def test_streams_and_clips_are_refused_noise_suppression_and_served_without(
    served: ServerProcess, shared_audio: Path
) -> None:
    pcm = (jfk_16k(shared_audio)[: 16000 * 4] * 32767).astype("<i2")
    async with grpc.aio.insecure_channel(served.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)

        async def stream(pause_s: float = 0.0, **kw: object) -> list[pb.StreamingTranslateResponse]:
            async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
                yield stream_config(FMT, **kw)
                for i in range(0, len(pcm), 3200):
                    await asyncio.sleep(pause_s)
                    yield pb.StreamingTranslateRequest(audio=pcm[i : i + 3200].tobytes())

            return [r async for r in stub.StreamingTranslate(requests(), timeout=120)]

        # refused at its config, while its client goes on writing (at once, then for a second): the
        # server reads and drops what still comes (server.error_drain_s, 2 s), so the client gets the
        # status, not a failed write (INTERNAL, grpc/grpc#36066: the refusal once ended the door's
        # request reading, so the call ended at once)
        for pause_s in (0.0, 1.0 / 20):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stream(pause_s, noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, (pause_s, refused.value)
            _refused_for_rnnoise(refused.value.details() or "")
        served_plain = await stream()
        assert any(r.HasField("segment") for r in served_plain)

        clip = pb.TranslateRequest(
            audio=pb.AudioInput(
                content=_wav(pcm.astype(np.float32) / 32768), format=pb.AudioFormat(encoding=pb.CONTAINER)
            ),
            source_language="eng",
            target_languages=["spa"],
            output=TEXT_ONLY,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Translate(
                pb.TranslateRequest(
                    audio=clip.audio,
                    source_language="eng",
                    target_languages=["spa"],
                    output=TEXT_ONLY,
                    noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE,
                ),
                timeout=120,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        _refused_for_rnnoise(refused.value.details() or "")
        assert (await stub.Translate(clip, timeout=120)).segments


async def test_the_audio_endpoints_refuse_x_noise_reduction_and_serve_without(
    served: ServerProcess, shared_audio: Path
) -> None:
    wav = _wav(jfk_16k(shared_audio)[: 16000 * 4])
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{served.info.http_port}/v1", api_key="x", max_retries=0)

    async def transcribe(**extra: str) -> str:
        answer = await client.audio.transcriptions.create(
            file=("a.wav", wav, "audio/wav"), model="whisper-1", language="en", extra_body=extra
        )
        return answer.text

    with pytest.raises(openai.BadRequestError) as refused:
        await transcribe(x_noise_reduction="near_field")
    body: Any = refused.value.body
    assert body["code"] == "unsupported_feature", body
    _refused_for_rnnoise(body["message"])
    assert isinstance(await transcribe(), str)
