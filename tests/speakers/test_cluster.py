"""Online speaker clustering (issue 72), pure: the bound on speakers, the floor for a new speaker,
majority labels, and the request checks that go with it."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.errors import InvalidInput, NotInstalled
from translate_svc.speakers.cluster import MAX_SPEAKERS, ClusterConfig, OnlineSpeakers
from translate_svc.speakers.encoder import Embedding
from translate_svc.types import EarOptions

pytestmark = pytest.mark.unit


def voice(k: int, partials: int = 3, noise: float = 0.0, seed: int = 0) -> Embedding:
    """A voice pointing along axis ``k`` of 256 (orthogonal voices: cosine 0)."""
    rng = np.random.default_rng(seed)
    p = np.zeros((partials, 256), np.float32)
    p[:, k] = 1.0
    p += noise * rng.standard_normal(p.shape).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    v = p.mean(axis=0)
    return Embedding(v / np.linalg.norm(v), p)


def test_voices_get_labels_in_order_of_first_appearance_and_keep_them() -> None:
    s = OnlineSpeakers(ClusterConfig(max_speakers=3))
    labels = [s.assign(voice(k, seed=n), 2000) for n, k in enumerate([5, 9, 5, 7, 9, 7, 5])]
    assert labels == [1, 2, 1, 3, 2, 3, 1]


def test_the_bound_holds_and_a_voice_past_it_joins_the_nearest() -> None:
    s = OnlineSpeakers(ClusterConfig(max_speakers=2))
    labels = [s.assign(voice(k), 2000) for k in (1, 2, 3, 4)]
    assert labels[:2] == [1, 2] and set(labels) == {1, 2} and s.count == 2


def test_a_short_segment_never_starts_a_speaker() -> None:
    s = OnlineSpeakers(ClusterConfig(max_speakers=4, min_new_ms=1000))
    assert s.assign(voice(1), 2000) == 1
    assert s.assign(voice(2), 400) == 1  # too short to trust its voice: the nearest known one
    assert s.assign(voice(2), 1500) == 2


def test_a_segment_of_two_voices_takes_its_majority() -> None:
    s = OnlineSpeakers(ClusterConfig(max_speakers=2))
    s.assign(voice(1), 2000)
    s.assign(voice(2), 2000)
    p = np.zeros((3, 256), np.float32)
    p[0, 1] = p[1, 2] = p[2, 2] = 1.0  # one partial of voice 1, two of voice 2
    v = p.mean(axis=0)
    assert s.assign(Embedding(v / np.linalg.norm(v), p), 4000) == 2


def test_the_bound_is_checked_and_a_server_without_the_encoder_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from translate_svc.session import task

    with pytest.raises(ValueError):
        ClusterConfig(max_speakers=MAX_SPEAKERS + 1)
    task.check_ear(EarOptions(speakers=MAX_SPEAKERS))
    with pytest.raises(InvalidInput) as e:
        task.check_ear(EarOptions(speakers=MAX_SPEAKERS + 1), "config.speakers")
    assert "config.speakers" in str(e.value)
    monkeypatch.setattr(task, "speakers_installed", lambda: False)
    task.check_ear(EarOptions(noise_suppression=True))  # nothing of the encoder's needed
    with pytest.raises(NotInstalled) as missing:
        task.check_ear(EarOptions(speakers=2))
    assert "Resemblyzer" in str(missing.value)
