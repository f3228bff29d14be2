"""Pipecat's own ``TwilioFrameSerializer`` against translate_svc's phone door (issue 44): an encoder
and a decoder of Twilio Media Streams that nobody here wrote.

A real ``translate-svc serve --phone --test-translator stable`` (the project's virtualenv) is
called as Twilio calls a ``<Connect><Stream>`` URL: ``connected`` and ``start`` as Twilio's
"Media Streams - WebSocket Messages" page gives them, then the caller's speech (silero_test.wav,
16 kHz) turned into ``media`` messages by pipecat's serializer (its resampler to 8 kHz and its
µ-law encoder), one 20 ms message every 20 ms. What comes back is decoded by the same serializer
(``deserialize``: base64 µ-law -> PCM), and the ``mark`` after each segment's speech is echoed
once that speech has played at real time, as Twilio does. ``auto_hang_up`` is off: the serializer
would otherwise call Twilio's REST API (network and credentials) at the end of a pipeline.
"""

from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from conftest import translate_server
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.serializers.twilio import TwilioFrameSerializer
from websockets.asyncio.client import connect

STREAM_SID = "MZ00000000000000000000000000000042"
PHONE_RATE = 8000
FRAME_S = 0.02
#: the stable test translator speaks 200 ms of tone per word: this many µ-law bytes at 8 kHz
WORD_BYTES = int(0.2 * PHONE_RATE)


async def test_pipecat_twilio_serializer_encodes_the_callers_audio_and_decodes_the_translation(
    speech16k: np.ndarray,
) -> None:
    serializer = TwilioFrameSerializer(
        STREAM_SID, params=TwilioFrameSerializer.InputParams(sample_rate=PHONE_RATE, auto_hang_up=False)
    )
    await serializer.setup(cast(FrameProcessorSetup, SimpleNamespace(audio_in_sample_rate=PHONE_RATE)))
    speech = speech16k[: 16000 * 12]
    frames = [speech[i : i + 320].tobytes() for i in range(0, len(speech), 320)]  # 20 ms at 16 kHz

    items: list[bytes | str] = []  # µ-law bytes from each media message, and the marks between them
    decoded: list[np.ndarray] = []  # the same speech, decoded by pipecat
    echoed: dict[str, float] = {}
    other: list[str] = []
    with translate_server("--test-translator", "stable", "--phone", "--http-port", "0") as live:
        assert live.http_port is not None
        url = f"ws://127.0.0.1:{live.http_port}/v1/phone/twilio?source=eng&target=spa"
        async with connect(url) as ws:
            loop = asyncio.get_running_loop()
            played_until = last_message = loop.time()

            async def echo(name: str) -> None:
                await ws.send(json.dumps({"event": "mark", "streamSid": STREAM_SID, "mark": {"name": name}}))
                echoed[name] = loop.time()

            async def read() -> None:
                nonlocal played_until
                nonlocal last_message
                async for message in ws:
                    last_message = loop.time()
                    msg: dict[str, Any] = json.loads(message)
                    assert msg["streamSid"] == STREAM_SID
                    if msg["event"] == "media":
                        items.append(base64.b64decode(msg["media"]["payload"]))
                        frame = await serializer.deserialize(message)
                        assert isinstance(frame, InputAudioRawFrame) and frame.sample_rate == PHONE_RATE
                        decoded.append(np.frombuffer(frame.audio, "<i2"))
                        played_until = max(played_until, loop.time()) + len(items[-1]) / PHONE_RATE
                    elif msg["event"] == "mark":
                        name = msg["mark"]["name"]
                        items.append(name)
                        loop.call_at(played_until, lambda n=name: loop.create_task(echo(n)))
                    else:
                        other.append(msg["event"])

            reader = asyncio.create_task(read())
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            start = {
                "streamSid": STREAM_SID,
                "accountSid": "AC00000000000000000000000000000042",
                "callSid": "CA00000000000000000000000000000042",
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": PHONE_RATE, "channels": 1},
            }
            started = {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM_SID}
            await ws.send(json.dumps(started))
            t0 = loop.time()
            silence = bytes(640)
            n = 0

            async def say(pcm16k: bytes) -> None:
                nonlocal n
                frame = OutputAudioRawFrame(audio=pcm16k, sample_rate=16000, num_channels=1)
                message = await serializer.serialize(frame)
                n += 1
                await asyncio.sleep(max(0.0, t0 + n * FRAME_S - loop.time()))
                if message is not None:  # (pipecat's resampler may hold a first frame back)
                    await ws.send(message)

            for pcm in frames:
                await say(pcm)
            # the caller listens (a phone line sends silence) until every mark has been echoed and
            # nothing has come for 2 s
            end_by = loop.time() + 20
            while loop.time() < end_by:
                if set(echoed) == {i for i in items if isinstance(i, str)} and loop.time() - last_message > 2:
                    break
                await say(silence)
            await ws.send(json.dumps({"event": "stop", "streamSid": STREAM_SID, "stop": {"callSid": start["callSid"]}}))
            await asyncio.wait_for(reader, 30)
            close_code = ws.close_code

    marks = [i for i in items if isinstance(i, str)]
    assert marks, "no segment's speech was followed by a mark"
    assert not other, f"messages Twilio does not take: {other}"
    # each mark follows its segment's speech: whole words of the stable translator's tone
    run = 0
    for item in items:
        if isinstance(item, str):
            assert run > 0 and run % WORD_BYTES == 0, f"mark {item} after {run} bytes of speech"
            run = 0
        else:
            run += len(item)
    # pipecat decoded every byte we sent as one sample, and the samples are speech, not silence
    audio = np.concatenate(decoded).astype(np.float32) / 32768
    assert len(audio) == sum(len(i) for i in items if isinstance(i, bytes))
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    assert set(echoed) == set(marks)
    assert close_code == 1000
