"""DetectSynthetic through the stock gRPC stub on a real server: speech marked by the product's
watermarker reads as marked, with its spans; the same speech unmarked does not; the server's own
translated speech (``model.watermark`` perth) reads as marked; short, empty, undecodable and
too-long clips get their precise answer or status; a file's content credentials (C2PA) are read
and checked: ``Trusted`` under the server's trust anchors, ``Valid`` under another CA, ``Invalid``
once a sample changed, absent from a file without. The detector runs in a sandbox process."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.credentials import ThrowawayKeys, make_keys
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import translate_file
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.marking.credentials import Made, Signer
from translate_svc.marking.watermarker import shared

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

MAX_DETECT_S = 30.0


@pytest.fixture(scope="module")
def keys() -> ThrowawayKeys:
    return make_keys()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(
    test_model_dir: Path, keys: ThrowawayKeys, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir, watermark="perth")
    settings.limits.max_detect_seconds = MAX_DETECT_S
    settings.credentials.trust_anchors_file = keys.write(tmp_path_factory.mktemp("ca"))["trust_anchors_file"]
    async with serving(settings) as server:
        yield server


def wav(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def container(content: bytes) -> pb.DetectSyntheticRequest:
    return pb.DetectSyntheticRequest(audio=pb.AudioInput(content=content, format=pb.AudioFormat(encoding=pb.CONTAINER)))


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(shared_audio / "jfk.flac", dtype="float32")
    return (samples.mean(axis=1) if samples.ndim == 2 else samples).astype(np.float32), rate


async def test_marked_speech_reads_as_marked_with_its_spans(live: LiveServer, jfk: tuple[np.ndarray, int]) -> None:
    samples, rate = jfk
    marked = shared().mark(samples, rate)
    resp = await live.stub.DetectSynthetic(container(wav(marked, rate)), timeout=120)
    assert resp.probability > 0.9 and resp.marked and resp.conclusive, resp
    assert resp.watermarker == shared().name
    assert resp.audio_duration_ms == round(len(samples) / rate * 1000)
    assert len(resp.spans) == 1 and resp.spans[0].start_ms == 0, resp.spans
    assert resp.spans[0].end_ms >= resp.audio_duration_ms - 1000


async def test_the_same_speech_unmarked_reads_as_unmarked(live: LiveServer, shared_audio: Path) -> None:
    resp = await live.stub.DetectSynthetic(container((shared_audio / "jfk.flac").read_bytes()), timeout=120)
    assert resp.probability < 0.5 and not resp.marked and resp.conclusive and not resp.spans, resp


async def test_the_server_s_own_speech_reads_as_marked(live: LiveServer, shared_audio: Path) -> None:
    """Translated speech as the server sends it (PCM16 at 16 kHz, raw): the test checkpoint's vocoder
    reads reliably from 4 s (tests/transport/grpc/test_speech_watermark.py)."""
    translated = await translate_file(live.stub, shared_audio / "jfk.flac", ["fra"], source="eng")
    speech = [tr.audio for seg in translated.segments for tr in seg.translations if tr.audio.num_samples >= 4 * 16000]
    assert speech, "no translation of 4 s to read"
    for audio in speech:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=audio.sample_rate_hz)
        resp = await live.stub.DetectSynthetic(
            pb.DetectSyntheticRequest(audio=pb.AudioInput(content=audio.content, format=fmt)), timeout=120
        )
        assert resp.marked and resp.probability > 0.8, resp


async def test_a_short_clip_is_answered_but_not_conclusive(live: LiveServer, jfk: tuple[np.ndarray, int]) -> None:
    samples, rate = jfk
    resp = await live.stub.DetectSynthetic(container(wav(samples[: rate // 2], rate)), timeout=120)
    assert not resp.conclusive and resp.audio_duration_ms == 500, resp


@pytest.mark.parametrize(
    ("request_", "said"),
    [
        (pb.DetectSyntheticRequest(), "audio.content is empty"),
        (container(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"), "could not decode the audio container"),
        (
            pb.DetectSyntheticRequest(
                audio=pb.AudioInput(content=b"\x00" * 100, format=pb.AudioFormat(encoding=pb.LINEAR16))
            ),
            "sample_rate_hz",
        ),
    ],
)
async def test_malformed_clips_are_refused_saying_what_to_fix(
    live: LiveServer, request_: pb.DetectSyntheticRequest, said: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.DetectSynthetic(request_, timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and said in (e.value.details() or ""), e.value


async def test_a_clip_over_the_limit_is_refused_naming_it(live: LiveServer) -> None:
    silence = np.zeros(int(16000 * (MAX_DETECT_S + 1)), dtype=np.float32)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.DetectSynthetic(container(wav(silence, 16000)), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and f"a detection reads at most {MAX_DETECT_S:g} s" in (
        e.value.details() or ""
    ), e.value
    listed = await live.stub.ListLanguages(pb.ListLanguagesRequest())
    assert listed.limits.max_detect_seconds == MAX_DETECT_S


async def test_a_files_content_credentials_are_read_and_checked(
    live: LiveServer, jfk: tuple[np.ndarray, int], keys: ThrowawayKeys
) -> None:
    samples, rate = jfk
    made = Made("speech.wav", "facebook/seamless-m4t-v2-large", "ab" * 32, ("fra",))
    signed = Signer(keys.chain_pem, keys.key_pem, generator="translate_svc tests").sign_bytes(
        wav(shared().mark(samples, rate), rate), "audio/wav", made
    )
    resp = await live.stub.DetectSynthetic(container(signed), timeout=120)
    assert resp.marked and resp.HasField("content_credentials"), resp
    c = resp.content_credentials
    assert (c.state, c.generated, c.model, c.source_sha256) == ("Trusted", True, made.model, made.source_sha256), c
    assert c.signer == "translate-svc test signer" and c.created and not c.failures, c

    changed = bytearray(signed)
    changed[4000] ^= 0x10  # a sample: the mark still reads, the manifest no longer matches
    resp = await live.stub.DetectSynthetic(container(bytes(changed)), timeout=120)
    c = resp.content_credentials
    assert c.state == "Invalid" and "assertion.dataHash.mismatch" in c.failures, c

    other = make_keys()
    elsewhere = Signer(other.chain_pem, other.key_pem, generator="t").sign_bytes(wav(samples, rate), "audio/wav", made)
    resp = await live.stub.DetectSynthetic(container(elsewhere), timeout=120)
    assert not resp.marked and resp.content_credentials.state == "Valid", resp  # intact; its CA not trusted here

    resp = await live.stub.DetectSynthetic(container(wav(samples, rate)), timeout=120)
    assert not resp.HasField("content_credentials"), resp
