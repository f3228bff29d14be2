"""OpenAI's audio REST endpoints (issue 51, item 6), driven by the real ``openai`` package against a
real server on loopback: ``client.audio.transcriptions.create`` and ``client.audio.translations.create``
for every ``response_format`` and with ``stream=True``; the SRT and WebVTT parse with ``srt`` and
``webvtt-py``; each segment the clip core cuts (the gRPC ``Translate`` of the same file) is one
timed piece. Bad input, one test each, gets OpenAI's error shape and leaves the server serving."""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import json
import logging
import math
import socket
import struct
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
import pytest_asyncio
import soundfile as sf
import srt
import webvtt
from openai import AsyncOpenAI

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model_api.requests import ModelInput, ModelOutput

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

TOKEN = "audio-test-token-8e21"
STREAM_ONLY = "audio-stream-only-51bd"
CLIP_LIMIT = 1536 * 1024  # limits.max_message_bytes: jfk.flac (1.1 MB) fits, silero_test.wav (1.9 MB) does not


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} translate stream\n{STREAM_ONLY} stream\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.limits.max_message_bytes = CLIP_LIMIT
    settings.limits.max_chunk_bytes = 256 * 1024
    async with serving(settings) as live:
        yield live


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> bytes:
    return (shared_audio / "jfk.flac").read_bytes()


def client(live: LiveServer, token: str = TOKEN) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url(live)}/v1", api_key=token, max_retries=0)


def url(live: LiveServer) -> str:
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}"


async def clip_spans(live: LiveServer, data: bytes, target: str | None = None) -> list[tuple[int, int]]:
    """The spans the clip core cuts from the same file: the gRPC ``Translate`` (ASR only)."""
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=data, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="" if target else "eng",
        target_languages=[target] if target else [],
        output=pb.OutputOptions(text=bool(target), speech=False, transcript=not target),
    )
    reply = await live.stub.Translate(request, timeout=120, metadata=(("authorization", f"Bearer {TOKEN}"),))
    return [(s.start_ms, s.end_ms) for s in reply.segments]


async def test_every_response_format_of_a_transcription_tells_the_same_segments(door: LiveServer, jfk: bytes) -> None:
    spans = await clip_spans(door, jfk)
    assert len(spans) >= 3
    c = client(door)
    create = c.audio.transcriptions.create
    verbose = await create(file=("jfk.flac", jfk), model="whisper-1", language="en", response_format="verbose_json")
    assert [(round(s.start * 1000), round(s.end * 1000)) for s in verbose.segments or []] == spans
    assert verbose.language == "english" and verbose.duration == 11.0
    assert [s.id for s in verbose.segments or []] == list(range(len(spans)))
    assert all(s.tokens == [] and s.temperature == 0.0 for s in verbose.segments or [])
    # confidence (issue 72): the model's own mean token log-probability, never a constant; the
    # model gives no no-speech probability, so that field is left out
    raw = [s.to_dict() for s in verbose.segments or []]
    assert all("no_speech_prob" not in s for s in raw)
    logprobs = [s["avg_logprob"] for s in raw]
    assert all(math.isfinite(v) and v <= 0.0 for v in logprobs) and len(set(logprobs)) == len(logprobs)
    texts = [s.text for s in verbose.segments or [] if s.text]
    assert verbose.text == " ".join(texts)
    plain = await create(file=("jfk.flac", jfk), model="whisper-1", language="en", response_format="json")
    assert plain.text == verbose.text and plain.usage is not None and plain.usage.type == "duration"
    text = await create(file=("jfk.flac", jfk), model="whisper-1", language="en", response_format="text")
    assert text == verbose.text + "\n"
    timed = [s for s in verbose.segments or [] if s.text]
    subtitles = list(srt.parse(await create(file=("jfk.flac", jfk), model="m", language="en", response_format="srt")))
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subtitles] == [
        (s.start, s.end, s.text) for s in timed
    ]
    vtt = await create(file=("jfk.flac", jfk), model="m", language="en", response_format="vtt")
    captions = webvtt.from_buffer(io.StringIO(vtt)).captions
    assert [(c.start_in_seconds + c.start_time.milliseconds / 1000, c.text) for c in captions] == [
        (s.start, s.text) for s in timed
    ]
    # segment timestamps may be asked for (they are the segments)
    again = await create(
        file=("jfk.flac", jfk),
        model="m",
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["segment"],
    )
    # the same segments; the confidence to float32 rounding (a batch's padding moves the sums' order)
    strip = [{k: v for k, v in s.to_dict().items() if k != "avg_logprob"} for s in again.segments or []]
    assert strip == [{k: v for k, v in s.items() if k != "avg_logprob"} for s in raw]
    np.testing.assert_allclose([s.to_dict()["avg_logprob"] for s in again.segments or []], logprobs, atol=1e-4)


async def test_a_streamed_transcription_sends_a_delta_per_segment_then_done(door: LiveServer, jfk: bytes) -> None:
    c = client(door)
    whole = await c.audio.transcriptions.create(file=("jfk.flac", jfk), model="m", language="en")
    stream = await c.audio.transcriptions.create(file=("jfk.flac", jfk), model="m", language="en", stream=True)
    events: list[Any] = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) <= {"transcript.text.delta"}, kinds
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == whole.text
    spans = await clip_spans(door, jfk)
    got = [(e.x_segment["start_ms"], e.x_segment["end_ms"]) for e in events[:-1]]
    assert set(got) <= set(spans) and got == sorted(got)
    assert all(e.logprobs is None for e in events)  # not asked


def check_logprobs(logprobs: Any) -> list[float]:
    """OpenAI's ``logprobs``: ``{token, logprob, bytes}`` each, the model's own values (<= 0)."""
    assert logprobs, "no token came: nothing was checked"
    values = []
    for lp in logprobs:
        assert lp.token and lp.bytes == list(lp.token.encode())
        assert math.isfinite(lp.logprob) and lp.logprob <= 0.0
        values.append(lp.logprob)
    assert len(set(values)) > 1  # each token its own: not a constant
    return values


async def test_include_logprobs_gives_each_transcript_token_with_its_logprob(
    door: LiveServer, jfk: bytes, shared_audio: Path
) -> None:
    """``include[]=logprobs`` (issue 72) through the SDK: the ``json`` answer's ``logprobs``, and with
    ``stream=true`` each delta's tokens, all of them again in ``done``; the same values either way."""
    c = client(door)
    create = c.audio.transcriptions.create
    whole = await create(file=("jfk.flac", jfk), model="m", language="en", include=["logprobs"])
    values = check_logprobs(whole.logprobs)
    stream = await create(file=("jfk.flac", jfk), model="m", language="en", include=["logprobs"], stream=True)
    events: list[Any] = [e async for e in stream]
    deltas, done = events[:-1], events[-1]
    assert [x.token for x in done.logprobs] == [x.token for e in deltas for x in e.logprobs]
    assert [x.logprob for x in done.logprobs] == pytest.approx([x.logprob for e in deltas for x in e.logprobs])
    np.testing.assert_allclose(check_logprobs(done.logprobs), values, atol=1e-4)
    samples, rate = sf.read(shared_audio / "silero_test.wav", frames=8 * 16000)
    silero = io.BytesIO()
    sf.write(silero, samples, rate, format="WAV")
    other = await create(file=("silero.wav", silero.getvalue()), model="m", language="en", include=["logprobs"])
    assert check_logprobs(other.logprobs) != values  # another recording, its own values


async def test_translations_go_to_english_or_the_target_named_in_every_format(door: LiveServer, jfk: bytes) -> None:
    c = client(door)
    create = c.audio.translations.create
    spans = await clip_spans(door, jfk, "eng")
    verbose = await create(file=("jfk.flac", jfk), model="whisper-1", response_format="verbose_json")
    assert (
        verbose.language == "english"
        and [(round(s.start * 1000), round(s.end * 1000)) for s in verbose.segments or []] == spans
    )
    plain = await create(file=("jfk.flac", jfk), model="whisper-1")
    assert plain.text == verbose.text
    assert await create(file=("jfk.flac", jfk), model="whisper-1", response_format="text") == verbose.text + "\n"
    timed = [s for s in verbose.segments or [] if s.text]
    subtitles = list(srt.parse(await create(file=("jfk.flac", jfk), model="whisper-1", response_format="srt")))
    assert [s.content for s in subtitles] == [s.text for s in timed]
    vtt = await create(file=("jfk.flac", jfk), model="whisper-1", response_format="vtt")
    assert [cap.text for cap in webvtt.from_buffer(io.StringIO(vtt)).captions] == [s.text for s in timed]
    spanish = await create(
        file=("jfk.flac", jfk),
        model="whisper-1",
        response_format="verbose_json",
        extra_body={"x_target_language": "es"},
    )
    assert spanish.language == "spanish" and len(spanish.segments or []) == len(await clip_spans(door, jfk, "spa"))
    # stream=true (the SDK has no such argument for translations: our extension's events, read raw)
    raw = await c.audio.translations.with_raw_response.create(
        file=("jfk.flac", jfk), model="whisper-1", extra_body={"stream": "true"}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "transcript.text.done" and events[-1]["text"] == plain.text
    assert "".join(e["delta"] for e in events[:-1]) == plain.text


async def test_word_timestamps_lie_in_their_segments_in_verbose_json_and_shape_srt_and_vtt_cues(
    door: LiveServer, jfk: bytes
) -> None:
    """``timestamp_granularities=["word"]`` (and with ``"segment"``) through the SDK's own
    ``transcriptions.create``: ``verbose_json`` has ``words`` (``{word, start, end}``), each inside one
    segment's span, in order, none overlapping the next, the segments as without them; SRT and
    WebVTT cues are made of the words (at most two lines of 42 characters, each cue's text exactly
    the words inside its times, every word once, in order). Without ``word``: no words. A
    translation takes no granularities (OpenAI's translations endpoint has none): 400."""
    c = client(door)
    create = c.audio.transcriptions.create
    spans = await clip_spans(door, jfk)
    plain = await create(file=("jfk.flac", jfk), model="whisper-1", language="en", response_format="verbose_json")
    assert plain.words is None  # not asked: not computed
    words: list[tuple[float, float, str]] = []
    for grains in (["word"], ["word", "segment"]):
        got = await create(
            file=("jfk.flac", jfk),
            model="whisper-1",
            language="en",
            response_format="verbose_json",
            timestamp_granularities=grains,  # type: ignore[arg-type]
        )
        segments = got.segments or []
        assert [(round(s.start * 1000), round(s.end * 1000)) for s in segments] == spans
        assert got.text == plain.text
        assert got.words, f"{grains}: no timed word: nothing was checked"
        timed = [(w.start, w.end, w.word) for w in got.words]
        for start, end, word in timed:
            assert word and not any(ch.isspace() for ch in word), word
            assert 0 <= start <= end, (start, end, word)
            assert sum(s.start <= start and end <= s.end for s in segments) == 1, (start, end, word)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(timed)), timed  # ordered, not overlapping
        word_logprobs = [w.to_dict()["x_avg_logprob"] for w in got.words]  # confidence (issue 72)
        assert all(math.isfinite(v) and v <= 0.0 for v in word_logprobs) and len(set(word_logprobs)) > 1
        assert not words or timed == words  # the same words either way
        words = timed

    def ms(t: float) -> int:
        return round(t * 1000)

    in_segments = [[w for w in words if s.start <= w[0] and w[1] <= s.end] for s in plain.segments or []]
    subtitles = await create(
        file=("jfk.flac", jfk), model="m", language="en", response_format="srt", timestamp_granularities=["word"]
    )
    vtt = await create(
        file=("jfk.flac", jfk), model="m", language="en", response_format="vtt", timestamp_granularities=["word"]
    )
    srt_cues = [
        (round(c.start.total_seconds() * 1000), round(c.end.total_seconds() * 1000), c.content)
        for c in srt.parse(subtitles)
    ]
    vtt_cues = [
        (
            round(c.start_in_seconds * 1000 + c.start_time.milliseconds),
            round(c.end_in_seconds * 1000 + c.end_time.milliseconds),
            c.text,
        )
        for c in webvtt.from_buffer(io.StringIO(vtt)).captions
    ]
    for cues in (srt_cues, vtt_cues):
        assert [w for _, _, text in cues for w in text.split()] == [w[2] for w in words]
        for start, end, text in cues:
            lines = text.split("\n")
            assert 1 <= len(lines) <= 2 and all(len(line) <= 42 or " " not in line for line in lines), text
            inside = [[w[2] for w in g if start <= ms(w[0]) and ms(w[1]) <= end] for g in in_segments]
            assert text.split() in inside, (start, end, text)

    with pytest.raises(openai.BadRequestError) as refused:
        await c.audio.translations.create(
            file=("jfk.flac", jfk),
            model="whisper-1",
            response_format="verbose_json",
            extra_body={"timestamp_granularities": ["word"]},
        )
    assert refused.value.body["param"] == "timestamp_granularities", refused.value.body  # type: ignore[index]
    await still_serves(door, jfk)


async def bad(
    live: LiveServer, form: aiohttp.FormData | bytes, *, token: str = TOKEN, **headers: str
) -> tuple[int, Any]:
    """POST ``form`` to the transcriptions endpoint with aiohttp (no SDK checks in the way)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url(live)}/v1/audio/transcriptions",
            data=form,
            headers={"Authorization": f"Bearer {token}", **headers},
        ) as r:
            return r.status, await r.json()


def form(fields: dict[str, str], file: bytes | None = None) -> aiohttp.FormData:
    f = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        f.add_field(name, value)
    if file is not None:
        f.add_field("file", file, filename="audio", content_type="application/octet-stream")
    return f


async def still_serves(live: LiveServer, jfk: bytes) -> None:
    """Nothing else was affected: the next client gets its transcript."""
    got = await client(live).audio.transcriptions.create(file=("jfk.flac", jfk), model="m", language="en")
    assert isinstance(got.text, str)


def assert_error(status: int, body: Any, want_status: int, code: str, param: str | None, says: str) -> None:
    assert status == want_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}, body
    assert body["error"]["code"] == code and body["error"]["param"] == param, body
    assert body["error"]["type"] == "invalid_request_error" and says in body["error"]["message"], body


async def test_a_form_without_a_file_is_refused(door: LiveServer, jfk: bytes) -> None:
    status, body = await bad(door, form({"model": "whisper-1", "language": "en"}))
    assert_error(status, body, 400, "invalid_value", "file", "`file` is required")
    await still_serves(door, jfk)


async def test_a_file_over_the_clip_limit_is_refused_with_413_before_it_is_read_whole(
    door: LiveServer, jfk: bytes, shared_audio: Path
) -> None:
    big = (shared_audio / "silero_test.wav").read_bytes()
    assert len(big) > CLIP_LIMIT
    with pytest.raises(openai.APIStatusError) as sdk:  # with Content-Length: refused from its header
        await client(door).audio.transcriptions.create(file=("silero_test.wav", big), model="m", language="en")
    assert sdk.value.status_code == 413 and sdk.value.body["code"] == "file_too_large"  # type: ignore[index]

    async def chunked() -> AsyncIterator[bytes]:  # without: refused as the file passes the limit
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for at in range(0, len(big), 65536):
            yield big[at : at + 65536]
        yield b"\r\n" + boundary + b"--\r\n"

    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url(door)}/v1/audio/transcriptions",
            data=chunked(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "multipart/form-data; boundary=b0undary"},
        ) as r:
            status, body = r.status, await r.json()
    assert_error(status, body, 413, "file_too_large", "file", "clip limit")
    await still_serves(door, jfk)


async def test_a_container_not_on_the_whitelist_is_refused(door: LiveServer, jfk: bytes) -> None:
    aiff = io.BytesIO()
    sf.write(aiff, np.zeros(16000, np.float32), 16000, format="AIFF")  # libsndfile reads it; we do not
    status, body = await bad(door, form({"model": "m", "language": "en"}, aiff.getvalue()))
    assert_error(status, body, 400, "invalid_value", None, "not a WAV, FLAC, OGG, MP3 or WebM file")
    await still_serves(door, jfk)


async def test_what_is_not_available_is_refused_saying_so(door: LiveServer, jfk: bytes) -> None:
    cases = [
        (
            {"timestamp_granularities[]": "word"},
            "timestamp_granularities",
            "word timestamps need a timed response_format",
        ),
        ({"timestamp_granularities[]": "char"}, "timestamp_granularities", 'it takes "segment", "word" or both'),
        ({"response_format": "srt", "stream": "true"}, "stream", "use it with response_format json or text"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"response_format": "diarized_json", "x_speakers": "9"}, "x_speakers", "1..8"),
        ({"x_speakers": "2"}, "x_speakers", "goes with response_format diarized_json"),
        ({"include[]": "words"}, "include", "not logprobs"),
        ({"include[]": "logprobs", "response_format": "verbose_json"}, "include", "goes with response_format json"),
        ({"language": "xx-nonsense"}, "language", "not one this model transcribes"),
        ({"temperature": "7"}, "temperature", "between 0 and 1"),
        ({"x_profanity": "bleep"}, "x_profanity", "must be off, mask or remove"),
    ]
    for fields, param, says in cases:
        status, body = await bad(door, form({"model": "m", "language": "en", **fields}, jfk))
        assert_error(status, body, 400, "invalid_value", param, says)
    await still_serves(door, jfk)


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing the request did was logged as the server's fault (an ERROR, a traceback)."""
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


async def test_a_part_header_over_the_port_s_bound_is_a_400_saying_so(
    door: LiveServer, jfk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A part's header line over 8190 bytes (aiohttp's reader raised it past ours: a 500 and a
    traceback), and a part with more than 64 headers: 400 in OpenAI's shape."""
    caplog.set_level(logging.INFO)
    long_line = b'--bnd\r\nContent-Disposition: form-data; name="model"\r\nX-Pad: ' + b"a" * 20000 + b"\r\n\r\nm\r\n"
    many = b'--bnd\r\nContent-Disposition: form-data; name="model"\r\n' + b"X-Pad: a\r\n" * 80 + b"\r\nm\r\n"
    for body, says in ((long_line, "a line of the form is too long"), (many, "more than 64 headers")):
        status, answer = await bad(door, body + b"--bnd--\r\n", **{"Content-Type": "multipart/form-data; boundary=bnd"})
        assert_error(status, answer, 400, "invalid_value", None, says)
    no_traceback(caplog)
    await still_serves(door, jfk)


async def test_a_chunking_strategy_nested_past_the_json_parser_is_a_400(
    door: LiveServer, jfk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for value in ("[" * 50_000, '{"a": ' * 5_000):  # deeper than Python's parser goes: RecursionError
        status, body = await bad(door, form({"model": "m", "language": "en", "chunking_strategy": value}, jfk))
        assert_error(status, body, 400, "invalid_value", "chunking_strategy", "server_vad object")
    no_traceback(caplog)
    await still_serves(door, jfk)


async def test_a_bad_client_secret_mint_body_is_refused_in_openai_s_shape(
    door: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``POST /v1/realtime/translations/client_secrets``: JSON nested deeper than the parser goes (a
    500 and a traceback) is 400; a body over aiohttp's 1 MiB is 413 in OpenAI's shape, not text."""
    caplog.set_level(logging.INFO)
    mint = f"{url(door)}/v1/realtime/translations/client_secrets"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for data, want, code in (("[" * 100_000, 400, "invalid_value"), ("x" * (2 << 20), 413, "request_too_large")):
            async with session.post(mint, data=data, headers=headers) as r:
                status, body = r.status, await r.json()
            assert status == want and body["error"]["code"] == code, (status, body)
            assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"], body
        async with session.post(mint, json={"expires_after": {"seconds": 60}}, headers=headers) as r:
            assert r.status == 200 and (await r.json())["value"].startswith("ek_")  # still minting
    no_traceback(caplog)


@pytest.mark.parametrize("leave", ["reset", "close"])
async def test_a_client_that_leaves_mid_send_is_an_info_line(
    door: LiveServer, jfk: bytes, caplog: pytest.LogCaptureFixture, leave: str
) -> None:
    """Half a form, then a TCP reset, or a close before the ``Content-Length``'s end: one INFO line,
    no traceback, the call logged ``CANCELLED``; the call's slot is given back."""
    caplog.set_level(logging.INFO)
    assert door.server.http is not None
    _, writer = await asyncio.open_connection("127.0.0.1", door.server.http.port)
    head = (
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: multipart/form-data; boundary=bnd\r\n"
        f"Content-Length: {len(jfk) + 200}\r\n\r\n"
    ).encode()
    writer.write(head + b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n\r\n')
    writer.write(jfk[: len(jfk) // 2])
    await writer.drain()
    counters = door.server.app.sessions.counters
    async with asyncio.timeout(30):  # the form is being read
        while not counters.count("translate"):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    if leave == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()
    else:
        writer.close()

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "went away" in r.getMessage() or r.levelno >= logging.ERROR]

    async with asyncio.timeout(30):
        while not said() or counters.count("translate"):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # (anything aiohttp logs after the handler returned)
    lines = said()
    assert [r.levelno for r in lines] == [logging.INFO], [(r.name, r.levelname, r.getMessage()) for r in lines]
    access = [r.getMessage() for r in caplog.records if r.name == "translate_svc.access"]
    assert access and access[-1].endswith("code=CANCELLED"), access
    no_traceback(caplog)
    await still_serves(door, jfk)


async def test_a_compressed_body_is_bounded_as_decoded(
    door: LiveServer, jfk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """``Content-Encoding: gzip``: its ``Content-Length`` says nothing of what it decodes to. A 73 KB
    body of 37.5 MB (the form's lines before its first boundary, which no part counts) is 413 as
    soon as it passes the limit, as a plain body's ``Content-Length`` is; a compressed form within
    the limit is served."""
    caplog.set_level(logging.INFO)
    bomb = gzip.compress(b"preamble line\r\n" * 2_500_000 + b"--bnd--\r\n")
    assert len(bomb) < 200_000
    headers = {"Content-Type": "multipart/form-data; boundary=bnd", "Content-Encoding": "gzip"}
    status, body = await bad(door, bomb, **headers)
    assert_error(status, body, 413, "file_too_large", "file", "as decoded")
    raw = (
        b'--bnd\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'
        b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="jfk.flac"\r\n\r\n' + jfk + b"\r\n--bnd--\r\n"
    )
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url(door)}/v1/audio/transcriptions",
            data=gzip.compress(raw),
            headers={"Authorization": f"Bearer {TOKEN}", **headers},
        ) as r:
            assert r.status == 200, await r.text()
            assert isinstance((await r.json())["text"], str)
    no_traceback(caplog)


async def test_tokens_need_the_translate_permission(door: LiveServer, jfk: bytes) -> None:
    status, body = await bad(door, form({"model": "m"}, jfk), token=STREAM_ONLY)
    assert status == 403 and body["error"]["code"] == "insufficient_permissions", body
    status, body = await bad(door, form({"model": "m"}, jfk), token="nope")
    assert status == 401 and body["error"]["code"] == "invalid_api_key", body


async def test_a_streaming_client_that_leaves_ends_its_clip_s_work(test_model_dir: Path, shared_audio: Path) -> None:
    """The first event written, the client leaves; the next event's write fails and ends the clip:
    the model runs no more of its segments (its queued ones are dropped; a batch is one segment)."""
    runner = _FirstThenHeld()
    settings = make_settings(test_model_dir, max_batch_size=1)  # a batch per segment
    settings.server.http_port = 0
    data = (shared_audio / "silero_test.wav").read_bytes()
    async with serving(settings, runner_factory=lambda: runner) as live:
        runner.free = len(runner.batches) + 1  # (after the warm-up's)
        warmup = sum(runner.batches)
        fields = form({"model": "m", "language": "en", "stream": "true"}, data)
        async with aiohttp.ClientSession() as session:
            r = await session.post(f"{url(live)}/v1/audio/transcriptions", data=fields)
            assert (await r.content.readline()).startswith(b'data: {"type": "transcript.text.delta"')
            r.close()
        runner.held.set()  # the next segment's result comes once the client has gone
        counters = live.server.app.sessions.counters
        async with asyncio.timeout(60):  # the call ends (the server's own count of clip calls)
            while counters.count("translate"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        ran = sum(runner.batches) - warmup
        whole = await AsyncOpenAI(base_url=f"{url(live)}/v1", api_key="-", max_retries=0).audio.transcriptions.create(
            file=("silero_test.wav", data), model="m", language="en", response_format="verbose_json"
        )
    total = len(whole.segments or [])
    assert total >= 10 and ran <= 4, (ran, total)  # the first, the held one, what was under way


class _FirstThenHeld(FakeRunner):
    """Runs its first ``free`` batches, then holds each next one until ``held`` is set. Its
    transcripts are never empty: every segment is an event."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.free = 1

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        if len(self.batches) >= self.free:
            self.held.wait(30)
        return super().run(inputs)
