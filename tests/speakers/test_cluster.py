"""Speaker clustering, pure (issue 72; issue 91, "Speaker labels that hold"): the bound on
speakers, a short segment never opening a speaker, majority labels, "at most N" finding the count,
the whole file labelled at once, a stream's early guesses revised while later labels stay, and the
request checks that go with it."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.errors import InvalidInput, NotInstalled
from translate_svc.speakers.cluster import ClusterConfig, OnlineSpeakers, label_all
from translate_svc.speakers.encoder import Embedding
from translate_svc.types import MAX_SPEAKERS, EarOptions, OptionError

pytestmark = pytest.mark.unit


def voice(
    k: int, partials: int = 3, noise: float = 0.0, seed: int = 0, blur: tuple[tuple[int, float], ...] = ()
) -> Embedding:
    """A voice pointing along axis ``k`` of 256 (orthogonal voices: cosine 0); ``blur``: partly
    along other axes too (a short segment's unreliable embedding)."""
    rng = np.random.default_rng(seed)
    p = np.zeros((partials, 256), np.float32)
    p[:, k] = 1.0
    for axis, weight in blur:
        p[:, axis] = weight
    p += noise * rng.standard_normal(p.shape).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    v = p.mean(axis=0)
    return Embedding(v / np.linalg.norm(v), p)


def online(config: ClusterConfig, segments: list[tuple[Embedding, int]]) -> tuple[list[int], list[int]]:
    """The labels as told when each segment went out, and each segment's label after every revision."""
    s = OnlineSpeakers(config)
    told, now = [], {}
    for n, (emb, ms) in enumerate(segments):
        label, revised = s.assign(n, emb, ms)
        told.append(label)
        now[n] = label
        for sid, new in revised:
            assert sid < n and now[sid] != new
            now[sid] = new
    return told, [now[n] for n in range(len(segments))]


def test_voices_get_labels_in_order_of_first_appearance_and_keep_them() -> None:
    segments = [(voice(k, seed=n), 2000) for n, k in enumerate([5, 9, 5, 7, 9, 7, 5])]
    told, final = online(ClusterConfig(max_speakers=3), segments)
    assert told == final == [1, 2, 1, 3, 2, 3, 1]
    assert label_all([e for e, _ in segments], [ms for _, ms in segments], ClusterConfig(max_speakers=3)) == told


def test_the_bound_holds_and_a_voice_past_it_joins_the_nearest() -> None:
    segments = [(voice(k), 2000) for k in (1, 2, 3, 4)]
    told, final = online(ClusterConfig(max_speakers=2), segments)
    assert set(told) <= {1, 2} and set(final) <= {1, 2} and told[:2] == [1, 2]
    assert set(label_all([e for e, _ in segments], [2000] * 4, ClusterConfig(max_speakers=2))) == {1, 2}


def test_a_short_segment_never_starts_a_speaker() -> None:
    s = OnlineSpeakers(ClusterConfig(max_speakers=4, min_segment_ms=1500))
    assert s.assign(0, voice(1), 2000) == (1, ())
    assert s.assign(1, voice(2), 1200) == (1, ())  # too short to trust its voice: the nearest known one
    assert s.count == 1
    label, revised = s.assign(2, voice(2, seed=1), 2000)  # the voice again, long: a speaker, and the
    assert (label, revised) == (2, ((1, 2),))  # short segment's guess is revised


def test_the_issue_case_a_short_early_segment_does_not_use_up_the_bound() -> None:
    """Issue 91: AABBBAABB with speakers=2, the second segment a short phrase of voice A whose
    embedding sits between the voices: before, it opened speaker 2 and every later segment of
    both voices joined speaker 1 (ABAAAAAAA)."""
    a, b = 3, 8
    truth = "AABBBAABB"
    short_a = voice(a, blur=((b, 0.6), (20, 0.9)))  # cosine 0.68 to voice A, 0.41 to B
    segments = [
        (short_a, 1150) if n == 1 else (voice(a if v == "A" else b, noise=0.04, seed=n), 2200)
        for n, v in enumerate(truth)
    ]
    want = [1 if v == "A" else 2 for v in truth]
    for bound in (2, 4):  # at the true count, and "at most 4"
        told, final = online(ClusterConfig(max_speakers=bound), segments)
        assert told == final == want, (bound, told, final)
        embeddings, lengths = [e for e, _ in segments], [ms for _, ms in segments]
        assert label_all(embeddings, lengths, ClusterConfig(max_speakers=bound)) == want


def test_at_most_n_finds_the_count() -> None:
    """A bound is "at most N": two voices with speakers=4 (or 8) are two labels, not more."""
    segments = [(voice(k, noise=0.04, seed=n), 2500) for n, k in enumerate([1, 1, 2, 2, 1, 2, 1, 2])]
    for bound in (2, 4, MAX_SPEAKERS):
        labels = label_all([e for e, _ in segments], [ms for _, ms in segments], ClusterConfig(max_speakers=bound))
        assert labels == [1, 1, 2, 2, 1, 2, 1, 2], bound
        assert online(ClusterConfig(max_speakers=bound), segments)[1] == labels


def test_a_segment_of_two_voices_takes_its_majority() -> None:
    p = np.zeros((3, 256), np.float32)
    p[0, 1] = p[1, 2] = p[2, 2] = 1.0  # one partial of voice 1, two of voice 2
    v = p.mean(axis=0)
    mixed = Embedding(v / np.linalg.norm(v), p)
    s = OnlineSpeakers(ClusterConfig(max_speakers=2))
    s.assign(0, voice(1), 2000)
    s.assign(1, voice(2), 2000)
    assert s.assign(2, mixed, 1000)[0] == 2
    assert label_all([voice(1), voice(2), mixed], [2000, 2000, 1000], ClusterConfig(max_speakers=2)) == [1, 2, 2]


def test_labels_past_the_window_are_settled_and_its_speakers_stay() -> None:
    """A stream longer than its window: the settled segments' speakers stay (anchors), a voice
    heard again after many segments gets its old label, and nothing outside the window is revised."""
    s = OnlineSpeakers(ClusterConfig(max_speakers=3), window=4)
    order = [1, 2, 1, 2] + [3] * 8 + [1, 2]
    labels = []
    for n, k in enumerate(order):
        label, revised = s.assign(n, voice(k, noise=0.04, seed=n), 2000)
        assert all(sid > n - 4 for sid, _ in revised)
        labels.append(label)
    assert labels == [1, 2, 1, 2] + [3] * 8 + [1, 2]


def test_the_bound_is_checked_and_a_server_without_the_encoder_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from translate_svc.session.task import checks as task

    with pytest.raises(ValueError):
        ClusterConfig(max_speakers=MAX_SPEAKERS + 1)
    task.check_ear(EarOptions(speakers=MAX_SPEAKERS))
    with pytest.raises(OptionError) as bound:  # the options check their own bound as they are made
        EarOptions(speakers=MAX_SPEAKERS + 1)
    assert bound.value.field == "speakers" and str(bound.value).startswith("speakers is 9: use 0")
    with pytest.raises(InvalidInput) as e, task.options_at("config."):  # a door names its own field
        EarOptions(speakers=MAX_SPEAKERS + 1)
    assert str(e.value).startswith("config.speakers is 9")
    monkeypatch.setattr(task, "speakers_installed", lambda: False)
    task.check_ear(EarOptions(noise_suppression=True))  # nothing of the encoder's needed
    with pytest.raises(NotInstalled) as missing:
        task.check_ear(EarOptions(speakers=2))
    assert "Resemblyzer" in str(missing.value)


def test_nearest_guesses_a_told_speaker_without_assigning_and_none_for_a_new_voice() -> None:
    """``nearest`` (a conversation's guess before a segment is labelled): the told speaker a voice
    is most alike, settled ones (past the window) too; None for a voice not heard yet or before
    any is told; the labels ``assign`` then gives are unchanged by the guesses."""
    s = OnlineSpeakers(ClusterConfig(max_speakers=3), window=2)
    assert s.nearest(voice(1)) is None
    told = [s.assign(n, voice(k, noise=0.04, seed=n), 2000)[0] for n, k in enumerate([1, 2, 1, 2])]
    assert told == [1, 2, 1, 2]
    assert s.nearest(voice(1, noise=0.04, seed=9)) == 1  # settled (out of the window of 2) and told
    assert s.nearest(voice(2, noise=0.04, seed=9)) == 2
    assert s.nearest(voice(7)) is None  # a third voice: not heard yet
    assert s.nearest(voice(1, blur=((2, 1.0),))) in (1, 2)  # halfway: still above the line to both
    assert s.assign(4, voice(7), 2000)[0] == 3 and s.nearest(voice(7, noise=0.04, seed=3)) == 3
