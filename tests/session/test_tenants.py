"""Tenants (issue 23): every token belongs to a named tenant from the tokens file, with optional
caps on concurrent streams, concurrent Translate calls and audio seconds per minute. A call over a
cap gets RESOURCE_EXHAUSTED with RetryInfo and a message naming the cap; other tenants are
unaffected; usage per tenant is on /metrics, labelled only with names from the file.

One real server on loopback (tokens required), raw gRPC clients.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from prometheus_client import REGISTRY, generate_latest

from tests.support.calls import retry_ms
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.transport.tokens.file import TokenFileError, parse_tokens

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

X, Y, Z = "tenant-x-token-91c2", "tenant-y-token-0b7e", "tenant-z-token-5d33"
FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenants(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tenants") / "tokens"
    tokens.write_text(
        f"{X} stream,translate tenant=x streams=2 translate_calls=1\n"
        f"{Y} * tenant=y\n"
        f"{Z} stream tenant=z audio_seconds_per_minute=3\n"
    )
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_tenants_third_stream_is_refused_naming_its_cap_while_another_tenant_opens_four(
    tenants: LiveServer,
) -> None:
    release = asyncio.Event()

    async def held() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))
        await release.wait()

    refused_before = sample("translate_svc_tenant_calls_total", tenant="x", method="stream", code="RESOURCE_EXHAUSTED")
    x_calls = [tenants.stub.StreamingTranslate(held(), metadata=bearer(X)) for _ in range(2)]
    for c in x_calls:
        assert (await c.read()).HasField("started")
    third = tenants.stub.StreamingTranslate(held(), metadata=bearer(X))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await third.read()
    message = e.value.details() or ""
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    assert "tenant 'x'" in message and "streams=2" in message, message
    assert retry_ms(e.value) == 1000
    # tenant y is not held back by x's cap
    y_calls = [tenants.stub.StreamingTranslate(held(), metadata=bearer(Y)) for _ in range(4)]
    for c in y_calls:
        assert (await c.read()).HasField("started")
    release.set()
    for c in x_calls + y_calls:
        while (await c.read()) is not grpc.aio.EOF:
            pass
        assert await c.code() == grpc.StatusCode.OK
    # once x's streams ended, x may open another
    again = tenants.stub.StreamingTranslate(held(), metadata=bearer(X))
    assert (await again.read()).HasField("started")
    again.cancel()
    # usage per tenant, on /metrics (the text a scrape gets), labelled by the file's names only
    after = sample("translate_svc_tenant_calls_total", tenant="x", method="stream", code="RESOURCE_EXHAUSTED")
    assert after == refused_before + 1
    assert sample("translate_svc_tenant_calls_total", tenant="y", method="stream", code="OK") >= 4
    scraped = generate_latest(REGISTRY).decode()
    assert 'translate_svc_tenant_calls_total{code="OK",method="stream",tenant="y"}' in scraped


async def test_a_tenants_audio_budget_ends_its_stream_after_the_open_speech_and_refuses_the_next(
    tenants: LiveServer, shared_audio: Path
) -> None:
    """z may send 3 audio seconds a minute: its 8 s stream ends when the budget is spent, with what
    was sent translated first (StreamEnd QUOTA), and its next call is refused until it refills."""
    speech = load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 8].tobytes()
    audio_before = sample("translate_svc_tenant_audio_seconds_total", tenant="z")

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))
        for at in range(0, len(speech), 3200):  # 100 ms chunks, as fast as the server reads
            yield pb.StreamingTranslateRequest(audio=speech[at : at + 3200])

    got: list[pb.StreamingTranslateResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for r in tenants.stub.StreamingTranslate(requests(), metadata=bearer(Z), timeout=60):
            got.append(r)
    message = e.value.details() or ""
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    assert "tenant 'z'" in message and "3 audio seconds per minute" in message, message
    assert retry_ms(e.value) > 0
    ended = got[-1].ended
    assert got[-1].HasField("ended") and ended.reason == pb.StreamEnd.QUOTA
    assert 3000 <= ended.audio_received_ms < 8000  # stopped near the budget, not at the end of the audio
    assert ended.segments_total == sum(r.HasField("segment") for r in got)
    assert sample("translate_svc_tenant_audio_seconds_total", tenant="z") - audio_before == pytest.approx(
        ended.audio_received_ms / 1000, abs=0.01
    )
    # the next stream of z is refused up front, naming the budget
    with pytest.raises(grpc.aio.AioRpcError) as again:
        async for _ in tenants.stub.StreamingTranslate(requests(), metadata=bearer(Z), timeout=30):
            pass
    assert again.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "audio seconds per minute" in (again.value.details() or "") and retry_ms(again.value) > 0


async def test_a_tenants_translate_cap_refuses_the_calls_over_it(tenants: LiveServer, shared_audio: Path) -> None:
    """x may run one Translate at a time: of three sent at once, the ones over the cap are
    refused before their clip is read (RESOURCE_EXHAUSTED, RetryInfo, the cap named); y is not."""
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    buf = io.BytesIO()
    sf.write(buf, np.tile(pcm, 3), 16000, format="WAV", subtype="PCM_16")
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=buf.getvalue(), format=pb.AudioFormat(encoding=pb.CONTAINER)),
        target_languages=["spa"],
    )
    outcomes = await asyncio.gather(
        *(tenants.stub.Translate(request, metadata=bearer(X), timeout=120) for _ in range(3)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    answered = [o for o in outcomes if isinstance(o, pb.TranslateResponse)]
    assert len(answered) >= 1 and answered[0].segments, outcomes
    assert refused, "three concurrent calls of a tenant capped at one were all admitted"
    for err in refused:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        assert "translate_calls=1" in (err.details() or "") and retry_ms(err) == 1000
    y = await asyncio.gather(*(tenants.stub.Translate(request, metadata=bearer(Y), timeout=120) for _ in range(2)))
    assert all(r.segments for r in y)
    assert sample("translate_svc_tenant_calls_total", tenant="x", method="translate", code="RESOURCE_EXHAUSTED") >= 1


async def test_the_tokens_file_names_tenants_and_caps_and_stays_backward_compatible() -> None:
    old = dict(parse_tokens("a\nb languages,translate\n", "f"))
    assert {g.tenant.name for g in old.values()} == {"default"}
    grants = [g for _, g in parse_tokens("a * tenant=acme streams=3\nb stream tenant=acme\n", "f")]
    assert [g.tenant.caps.streams for g in grants] == [3, 3]  # a cap holds for every token of its tenant
    for text, match in [
        ("a tenant=acme streams=3\nb tenant=acme streams=4\n", "line 2: tenant 'acme' has streams=3 on another line"),
        ("a tenant=ac_me\n", "line 1: tenant 'ac_me' is not a name"),
        ("a streams=0\n", "line 1: streams must be a number of at least 1"),
        ("a burst=9\n", "line 1: unknown option 'burst'"),
        ("a tenant=p\na tenant=q\n", "line 2: this token is listed before under tenant 'p'"),
    ]:
        with pytest.raises(TokenFileError, match=match):
            parse_tokens(text, "f")
