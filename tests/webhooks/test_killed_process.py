"""A session whose process is killed still gets its one ``session.ended`` (issue 61): ``translate-svc
serve`` (its webhooks set through the environment, as an operator sets them) is killed with SIGKILL
mid-stream; the next process on the same data dir finds the session open with a dead owner and ends
it from its last checkpoint (``ending: lost``, the audio it had received by then), once."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.support.raw import channel
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from tests.support.webhook_receiver import new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

LEASE_S = 0.5


async def test_a_killed_servers_open_session_is_ended_as_lost_by_the_next_start(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 8.0, 16000)
    async with receiving(new_secret()) as receiver:
        env = {
            "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([{"url": receiver.url, "secret": receiver.secrets[0]}]),
            "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(tmp_path / "data"),
            "TRANSLATE_SVC_WEBHOOKS__LEASE_S": str(LEASE_S),
            "TRANSLATE_SVC_WEBHOOKS__FIRST_BACKOFF_S": "0.2",
            "TRANSLATE_SVC_WEBHOOKS__MAX_BACKOFF_S": "1",
        }
        args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable"]
        first = await asyncio.to_thread(ServerProcess, args, env)
        ch = channel(first.address)
        try:
            cfg = pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000), target_languages=["spa"]
            )

            async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
                yield pb.StreamingTranslateRequest(config=cfg)
                for at in range(0, len(pcm), 1600):
                    await asyncio.sleep(0.1)
                    yield pb.StreamingTranslateRequest(audio=pcm[at : at + 1600].tobytes())

            call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), timeout=60)
            reading = asyncio.ensure_future(call.read())  # StreamStarted: the session is open
            await asyncio.wait_for(reading, 30)
            await receiver.wait_for(lambda r: len(r.events("session.started")) == 1)
            await asyncio.sleep(2.5 + 2 * LEASE_S)  # over a second of audio charged, and checkpointed
            first.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.proc.wait, 30)
            with pytest.raises(grpc.aio.AioRpcError):
                while await call.read() is not grpc.aio.EOF:
                    pass
        finally:
            await ch.close()
            first.stop()
        assert receiver.events("session.ended") == []
        second = await asyncio.to_thread(ServerProcess, args, env)
        try:
            await receiver.wait_for(lambda r: len(r.events("session.ended")) == 1, 60)
            await asyncio.sleep(4 * LEASE_S)  # more beats and sweeps: nothing more comes
        finally:
            await asyncio.to_thread(second.stop)
    (started,) = receiver.events("session.started")
    (ended,) = receiver.events("session.ended")
    data = ended["data"]
    assert data["session_id"] == started["data"]["session_id"]
    assert data["door"] == "StreamingTranslate"
    assert (data["ending"], data["reason"]) == ("lost", "process_exited")
    assert data["usage"]["audio_in_s"] >= 1.0  # what it had received at its last checkpoint
