"""An Opus stream's packets are decoded straight at the model's 16 kHz (``AudioFormat.heard_rate``,
issue 97 item 5) while its timeline stays on Opus's 48 kHz clock: through ``AudioIntake`` with gaps
that are concealed (lost packets), filled with silence (a mute, a gap that is no multiple of three
samples, one over a second), every packet's audio lands at its timestamp's third, nothing is lost
or doubled, and the recording gets what the VAD gets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from tests.support.speech import FRAME, opus_packets
from translate_svc.audio.opus import OpusStreamDecoder
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.session.stream.intake import AudioIntake
from translate_svc.session.stream.timeline import Timeline
from translate_svc.session.stream.vad_bridge import VadBridge
from translate_svc.session.tenants.recording import Recorder
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioEncoding, AudioFormat

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

OPUS = AudioFormat(AudioEncoding.OPUS, 48000, 1)


class Heard:
    """Stands in for the VAD bridge and the recording: keeps what each is given."""

    def __init__(self) -> None:
        self.vad: list[np.ndarray] = []
        self.recorded: list[np.ndarray] = []

    def score(self, samples16k: np.ndarray, *, last: bool = False, now: bool = False) -> None:
        self.vad.append(samples16k)

    def audio(self, samples: np.ndarray) -> None:
        self.recorded.append(samples)


async def _inline(call):  # type: ignore[no-untyped-def]
    return call()


async def test_packets_land_at_their_timestamps_third_through_concealed_and_silent_gaps(shared_audio: Path) -> None:
    packets = opus_packets(load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4], fec=True)[:150]
    room = asyncio.Event()
    room.set()
    heard = Heard()
    timeline = Timeline(OPUS, LimitsSettings())
    intake = AudioIntake(
        OPUS,
        LimitsSettings(),
        timeline,
        cast(VadBridge, heard),
        denoiser=None,
        lane=None,
        decode=_inline,
        room=room,
        failure=lambda: None,
    )
    intake.recorder = cast(Recorder, heard)
    # the sender's timeline: one packet lost (concealed), a mute of 1,001 samples (no multiple of
    # three: silence), then 1.5 s and seven samples (silence a second at a time), another loss
    skips = {20: FRAME, 40: 1001, 80: 72_007, 120: 2 * FRAME}
    reference = OpusStreamDecoder(1, rate=16_000)
    want: list[tuple[int, np.ndarray]] = []  # (16 kHz sample where it belongs, its audio)
    ts = 0
    for i, p in enumerate(packets):
        gap = skips.get(i, 0)
        if gap in (FRAME, 2 * FRAME):
            want.append(((ts) // 3, reference.conceal(gap, p)))
        ts += gap
        want.append((ts // 3, reference.decode(p)))
        await intake.feed(p, ts)
        ts += FRAME
    await intake.drain()
    got = np.concatenate(heard.vad)
    assert timeline.input_frames == ts and timeline.filled_frames == sum(skips.values())
    assert timeline.concealed_frames == 3 * FRAME
    assert len(got) == ts // 3  # every 48 kHz stretch's third, none lost or doubled
    for at, audio in want:
        assert np.array_equal(got[at : at + len(audio)], audio), at
    covered = np.zeros(len(got), bool)
    for at, audio in want:
        covered[at : at + len(audio)] = True
    assert not got[~covered].any()  # the rest is the silence filled in
    assert np.array_equal(np.concatenate(heard.recorded), got)
    assert timeline.audio_received_ms == round(ts / 48)
