"""The SDK's speaking rate (issue 90 item 1) under this environment's protobuf and grpcio, against a
real ``translate-svc serve`` of this checkout (the test checkpoint): ``speed=`` on ``translate``
(and on ``OutputOptions``), ``update(speed=...)`` on a live stream, the server's refusal of a rate
out of 0.5..2.0 as ``TranslateError``.

The same clip at 1 and at 1.5: each translation's speech 1/1.5 as long, within two vocoder frames
(20 ms each) and 5 % (the repository's tests/support/speaking_rate.py; the client's tests import
nothing of the server's). An update's answer carries its rate; a refused one keeps the old one.
Never the words: the model's weights are random."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from conftest import Server

from translate_svc.client import AsyncTranslateClient, OutputOptions, StreamUpdated, TranslateError
from translate_svc.client_cli.decode import load_pcm16k

RATE = 16000


def speech_lengths(result) -> dict[tuple[int, str], int]:  # type: ignore[no-untyped-def]
    return {(s.segment_id, t.target): t.num_samples for s in result.segments for t in s.translations}


def at_rate(at_1: int, got: int, speed: float) -> bool:
    expected = at_1 / speed
    slack = 2 * 0.020 * RATE + 0.05 * expected
    return expected - slack <= got <= expected + slack


async def test_translate_at_1_5_speaks_in_two_thirds_of_the_time(server: Server, jfk_path: Path) -> None:
    async with AsyncTranslateClient(server.address) as c:
        own = await c.translate(jfk_path, targets=["spa", "fra"], source="eng")
        fast = await c.translate(jfk_path, targets=["spa", "fra"], source="eng", speed=1.5)
        same = await c.translate(jfk_path, targets=["spa", "fra"], source="eng", output=OutputOptions(speed=1.5))
    at_1, at_15 = speech_lengths(own), speech_lengths(fast)
    assert at_1.keys() == at_15.keys() and speech_lengths(same) == at_15
    assert any(n >= 10 * 0.020 * RATE for n in at_1.values()), at_1
    for key, n in at_1.items():
        assert at_rate(n, at_15[key], 1.5), (key, n, at_15[key])


@pytest.mark.parametrize("speed", [0.3, 2.5])
async def test_a_rate_out_of_range_is_refused_naming_it(server: Server, jfk_path: Path, speed: float) -> None:
    async with AsyncTranslateClient(server.address) as c:
        with pytest.raises(TranslateError) as err:
            await c.translate(jfk_path, targets="spa", source="eng", speed=speed)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "output.speed" in err.value.message and "0.5 to 2.0" in err.value.message


async def test_an_update_sets_the_rate_and_a_refused_one_keeps_it(server: Server, jfk_path: Path) -> None:
    pcm = load_pcm16k(jfk_path)
    answers: list[StreamUpdated] = []
    async with AsyncTranslateClient(server.address) as c, c.stream(targets="spa", source="eng") as s:
        await s.update(speed=2.5)
        await s.update(speed=0.5)
        for at in range(0, len(pcm), 1600):
            await s.send(pcm[at : at + 1600].tobytes())
        await s.close()
        async for ev in s:
            if isinstance(ev, StreamUpdated):
                answers.append(ev)
    refused, accepted = answers
    assert refused.error is not None and "0.5 to 2.0" in refused.error and refused.speed == 1.0
    assert accepted.error is None and accepted.speed == 0.5 and accepted.first_segment_id == 0
