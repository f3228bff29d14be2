"""A finished recording reaches the operator as a signed ``recording.ready`` (issue 61): a real
server records a tenant's gRPC stream and sends its webhooks to a receiver on loopback that
verifies each delivery with the Standard Webhooks reference library; the event names the
recording, says it is complete, and lists every file of the manifest with its size and SHA-256."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import recordings as rec
from tests.support.live_server import serving
from tests.support.speech import speech_pcm16
from tests.support.webhook_receiver import new_secret, receiving
from translate_svc.settings import WebhookEndpoint, WebhookSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(40)]


async def test_a_finished_recording_is_told_as_a_signed_recording_ready(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    s = rec.setup(tmp_path)
    async with receiving(new_secret()) as receiver:
        settings = rec.settings(test_model_dir, s)
        settings.webhooks = WebhookSettings(
            endpoints=[WebhookEndpoint(url=receiver.url, secret=receiver.secrets[0], events=["recording.ready"])],
            data_dir=tmp_path / "webhooks",
            allow_http=True,  # the receiver on loopback
        )
        async with serving(settings) as live:
            pcm = speech_pcm16(shared_audio / "jfk.flac", 8.0, 16000)
            got = await rec.stream(live.stub, pcm, rec.ACME, ["spa"])
            assert got.ended is not None and got.segments
            await receiver.wait_for(lambda r: bool(r.events("recording.ready")), timeout_s=60)
            manifest = rec.on_disk(s.directory, "acme", got.session_id)
    (event,) = receiver.events("recording.ready")
    data = event["data"]
    assert data["tenant"] == "acme" and data["recording_id"] == got.session_id == data["session_id"]
    assert data["complete"] is True and data["reason"] == ""
    assert data["files"] == {f["name"]: {"bytes": f["bytes"], "sha256": f["sha256"]} for f in manifest["files"]}
    assert {"source.ogg", "segments.jsonl"} <= set(data["files"])
