"""Dubbing to the source's clock on a Translate clip (issue 90 item 2): with ``TranslateRequest.fit``
each segment's speech is made at the slowest rate within the bound (0.85..1.35 unless the request
says) at which it ends by the next segment's start (the clip's end, for the last one), and each
Translation says its ``speech_rate`` and ``overlap_ms``. Through the stock stub against a real
server on loopback with the test checkpoint, on 60 s of shared speech with many pauses, into two
languages (the random-weight model's speech runs from a fraction of its segment to several times
it, so both fitted and overflowing segments occur).

Checked: every rate in its bound; under the bound's fastest, the speech ends by the next start
and ``overlap_ms`` is 0; at it, ``overlap_ms`` is the speech's length past the budget; each fitted
speech is the unfitted one divided by its rate (within two frames and 5 %); a bound of 1..1 leaves
the speech as it was and reports where it overlaps (through TranslateChunked); a bad bound, or ``fit`` beside
``output.speed``, is INVALID_ARGUMENT naming the field. Before the change the request had no
``fit`` (and the model no fitting). Never the words."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2

from tests.support.dub_fit import Spoken, check_fitted
from tests.support.live_server import LiveServer
from tests.support.raw import clip_chunks, raw_request
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

RATE = 16000


def _request(pcm: bytes, fit: pb.SpeechFit | None, **output: object) -> pb.TranslateRequest:
    request = raw_request(
        pcm,
        pb.LINEAR16,
        source_language="eng",
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(speech=True, transcript=False, **output),
    )
    if fit is not None:
        request.fit.CopyFrom(fit)
    return request


def _spoken(response: pb.TranslateResponse) -> list[list[Spoken]]:
    return [
        [
            Spoken(
                t.target_language,
                t.audio.num_samples,
                t.audio.sample_rate_hz,
                t.speech_rate if t.HasField("speech_rate") else None,
                t.overlap_ms if t.HasField("overlap_ms") else None,
            )
            for t in s.translations
        ]
        for s in response.segments
    ]


async def test_a_fitted_clip_ends_each_speech_by_the_next_start_within_its_bound(
    live: LiveServer, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 60.0, RATE).tobytes()
    plain = await live.stub.Translate(_request(pcm, None))
    fitted = await live.stub.Translate(_request(pcm, pb.SpeechFit()))  # the server's bound: 0.85..1.35
    for r in (plain, fitted):
        assert r.segments and all(s.status.code == code_pb2.OK for s in r.segments)
    spans = [(s.start_ms, s.end_ms) for s in fitted.segments]
    assert spans == [(s.start_ms, s.end_ms) for s in plain.segments]
    tally = check_fitted(spans, fitted.audio_duration_ms, _spoken(fitted), 0.85, 1.35, _spoken(plain))
    assert tally.under >= 3 and tally.overlaps >= 1, tally  # both kinds occur on this clip
    # the plain clip's speech is at the rate asked (1), with no overlap said: it was not fitted
    assert all(t.speech_rate == 1.0 and not t.HasField("overlap_ms") for s in plain.segments for t in s.translations)


async def test_a_bound_of_one_leaves_the_speech_as_it_was_and_says_where_it_overlaps(
    live: LiveServer, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 60.0, RATE).tobytes()
    plain = await live.stub.Translate(_request(pcm, None))
    # through TranslateChunked: the same clip request, its bytes in chunks
    held = await live.stub.TranslateChunked(
        clip_chunks(_request(pcm, pb.SpeechFit(slowest=1.0, fastest=1.0)), 256 * 1024)
    )
    spans = [(s.start_ms, s.end_ms) for s in held.segments]
    tally = check_fitted(spans, held.audio_duration_ms, _spoken(held), 1.0, 1.0)
    assert tally.overlaps >= 3, tally
    assert [[t.samples for t in s] for s in _spoken(held)] == [[t.samples for t in s] for s in _spoken(plain)]


@pytest.mark.parametrize(
    ("fit", "output", "names"),
    [
        (pb.SpeechFit(slowest=0.3), {}, "fit.slowest"),
        (pb.SpeechFit(fastest=2.5), {}, "fit.fastest"),
        (pb.SpeechFit(slowest=1.3, fastest=0.9), {}, "fit.slowest"),
        (pb.SpeechFit(), {"speed": 1.5}, "output.speed"),
    ],
)
async def test_a_bad_fit_is_invalid_argument_naming_the_field(
    live: LiveServer, fit: pb.SpeechFit, output: dict[str, float], names: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(_request(b"\0\0" * RATE, fit, **output))
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert names in (e.value.details() or ""), e.value.details()
