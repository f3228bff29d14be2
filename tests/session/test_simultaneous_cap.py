"""``segment_cap``: a simultaneous stream's segmentation (issue 46)."""

from __future__ import annotations

import pytest

from translate_svc.session.stream.simultaneous import segment_cap
from translate_svc.vad.segmenter import SegmenterConfig, VadConfigError

pytestmark = pytest.mark.unit


def test_a_longer_cap_is_lowered_and_nothing_else_changes() -> None:
    vad = SegmenterConfig(min_silence_ms=300, max_segment_ms=15_000)
    capped = segment_cap(vad, 6_000)
    assert capped.max_segment_ms == 6_000
    assert (capped.threshold, capped.min_silence_ms, capped.speech_pad_ms) == (0.5, 300, 30)


def test_a_shorter_cap_is_kept() -> None:
    vad = SegmenterConfig(max_segment_ms=4_000)
    assert segment_cap(vad, 6_000) is vad


def test_a_long_pad_keeps_the_least_cap_it_allows() -> None:
    vad = SegmenterConfig(speech_pad_ms=2_000, max_segment_ms=20_000)
    with pytest.raises(VadConfigError):  # the cap alone would be refused for this pad
        SegmenterConfig(speech_pad_ms=2_000, max_segment_ms=1_000)
    assert segment_cap(vad, 1_000).max_segment_ms == 3 * (2_000 + 64)
