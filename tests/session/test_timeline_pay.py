"""A stream's audio may not run ahead of what its bytes and the wall clock pay for
(``Timeline.pay``, issue 52 F5), with plain values and a fake clock: audio without the bytes to
carry it (Opus packets of a TOC byte alone) is refused past a slack; audio its bytes pay for runs
as fast as it comes."""

from __future__ import annotations

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.session.stream.timeline import AHEAD_SLACK_S, BYTES_PER_AUDIO_SECOND, Timeline
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioEncoding, AudioFormat

pytestmark = pytest.mark.unit

LIMITS = LimitsSettings()


class Clock:
    """A clock that stands still until the test moves ``now``."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


OPUS = AudioFormat(AudioEncoding.OPUS, 48000, 1)


def test_audio_without_bytes_may_not_run_ahead_of_the_wall_clock() -> None:
    clock = Clock()
    tl = Timeline(OPUS, LIMITS, clock=clock)
    for _ in range(int(AHEAD_SLACK_S / 0.12)):  # one-byte packets of 120 ms: the slack
        tl.pay(5760, 1)
    with pytest.raises(InvalidInput, match=r"runs ahead of what carries it: 2\.0 s of audio from 17 bytes in 0\.0 s"):
        tl.pay(5760, 1)
    clock.now += 60.0  # a minute later (a live sender in DTX): a minute more
    tl.pay(48000 * 59, 1)
    with pytest.raises(InvalidInput):
        tl.pay(48000 * 2, 1)


def test_audio_its_bytes_pay_for_runs_as_fast_as_it_comes() -> None:
    tl = Timeline(OPUS, LIMITS, clock=Clock())
    for _ in range(30_000):  # 10 minutes of 20 ms packets at Opus's lowest bitrate, at once
        tl.pay(960, BYTES_PER_AUDIO_SECOND // 50)
    pcm = Timeline(AudioFormat(AudioEncoding.MULAW, 8000, 1), LIMITS, clock=Clock())
    pcm.pay(8000 * 3600, 8000 * 3600)  # an hour of 8 kHz mu-law: its bytes pay for it (and 10 more)
    with pytest.raises(InvalidInput):  # but not for skipping the next 10 at once
        pcm.pay(8000 * 3600 * 10, 0)
