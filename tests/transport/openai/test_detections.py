"""``POST /v1/audio/detections`` on a real server's HTTP port (``translate-svc serve`` on the made-up
stable translator: detection runs in the server's sandbox processes whatever the model), through
aiohttp's client: a file marked by the product's watermarker reads as marked with its span, the
same speech unmarked does not, and a form without a file, with other fields or with a file that is
not audio gets a 400 saying what to fix."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from tests.support.credentials import make_keys
from tests.support.server_process import ServerProcess
from translate_svc.marking.credentials import Made, Signer
from translate_svc.marking.watermarker import shared

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(20)]

#: a detection's first call starts the server's sandbox process (torch and the network, at a lower
#: priority than the server's threads): minutes on a machine busy with other work
WAIT_S = 300.0


@pytest.fixture(scope="module")
def url(test_model_dir: Path) -> Iterator[str]:
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    srv = ServerProcess([*args, "--test-translator", "stable"])
    try:
        yield f"http://127.0.0.1:{srv.info.http_port}/v1/audio/detections"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def marked_flac(shared_audio: Path) -> bytes:
    samples, rate = sf.read(shared_audio / "jfk.flac", dtype="float32")
    mono = samples.mean(axis=1).astype(np.float32) if samples.ndim == 2 else samples
    out = io.BytesIO()
    sf.write(out, shared().mark(mono, rate), rate, format="FLAC")
    return out.getvalue()


async def post(url: str, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename="clip.flac", content_type="audio/flac")
        else:
            form.add_field(name, value)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=WAIT_S)) as resp:
            return resp.status, await resp.json()


async def test_a_marked_file_reads_as_marked_with_its_span(url: str, marked_flac: bytes) -> None:
    status, doc = await post(url, {"file": marked_flac})
    assert status == 200, doc
    assert doc["object"] == "audio.detection" and doc["marked"] is True and doc["conclusive"] is True, doc
    assert doc["probability"] > 0.9 and doc["watermarker"] == shared().name and doc["duration"] == 11.0, doc
    assert len(doc["spans"]) == 1 and doc["spans"][0]["start"] == 0.0 and doc["spans"][0]["end"] >= 10.0, doc


async def test_the_same_speech_unmarked_reads_as_not_marked(url: str, shared_audio: Path) -> None:
    status, doc = await post(url, {"file": (shared_audio / "jfk.flac").read_bytes()})
    assert status == 200 and doc["marked"] is False and doc["probability"] < 0.5 and doc["spans"] == [], doc
    assert doc["content_credentials"] is None, doc


async def test_a_signed_files_content_credentials_come_back_checked(url: str, marked_flac: bytes) -> None:
    keys = make_keys()
    made = Made("jfk.flac", "facebook/seamless-m4t-v2-large")
    signed = Signer(keys.chain_pem, keys.key_pem, generator="t").sign_bytes(marked_flac, "audio/flac", made)
    status, doc = await post(url, {"file": signed})
    assert status == 200 and doc["marked"] is True, doc
    c = doc["content_credentials"]
    assert c["state"] == "Valid" and c["generated"] is True and c["model"] == made.model, c  # no trust anchors here
    assert c["signer"] == "translate-svc test signer" and c["failures"] == ["signingCredential.untrusted"], c


@pytest.mark.parametrize(
    ("fields", "param", "said"),
    [
        ({"model": "seamless"}, "file", "`file` is required"),
        ({"file": b""}, "file", "send it in a `file` part"),
        ({"file": b"RIFF", "model": "seamless"}, "model", "takes only a `file` part"),
        ({"file": b"these are not samples\n" * 20}, None, "the audio is not a WAV, FLAC, OGG, MP3 or WebM file"),
    ],
)
async def test_a_bad_form_or_file_is_a_400_saying_what_to_fix(
    url: str, fields: dict[str, Any], param: str | None, said: str
) -> None:
    status, doc = await post(url, fields)
    assert status == 400 and said in doc["error"]["message"] and doc["error"].get("param") == param, doc
