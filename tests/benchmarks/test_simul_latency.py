"""SimulEval's latency metrics (benchmarks/tools/simul_latency.py) on small hand-worked instances.

The numbers were also checked against simuleval 1.1.4's own scorers (random instances, NCA; CA on
text with SimulEval's simulated elapsed turned into emission times) outside this suite: simuleval
is not a dependency (its pins would downgrade tqdm here).
"""

from __future__ import annotations

import pytest

from benchmarks.tools import simul_latency as sl  # the repo root is on pythonpath (pyproject's pytest section)

pytestmark = pytest.mark.unit

# Text instance: 2000 ms of source; four words, two emitted after 500 ms of source, one after 1500,
# one at the end; measured wall clock (elapsed) is later by the computation.
SRC = 2000.0
DELAYS = [500.0, 500.0, 1500.0, 2000.0]
ELAPSED = [700.0, 700.0, 1800.0, 2600.0]
# ATD's source tokens (300 ms, cut per read chunk): 0-500 -> 300, 200; 500-1500 -> 300 x3, 100;
# 1500-2000 -> 300, 200. End times [0 |] 300 500 | 800 1100 1400 1500 | 1800 2000.
# Output chunks (equal delays): {w1, w2}, {w3}, {w4}; token t of chunk c aligns to source token
# min(t - max(0, Y_{c-1} - X_{c-1}), X_c): w1 -> 1, w2 -> 2, w3 -> 3 (3 - max(0, 2 - 2)), w4 -> 4.


def test_text_nca() -> None:
    r = sl.text_latency(DELAYS, ELAPSED, SRC, reference_len=5, computation_aware=False)
    assert r is not None
    assert r.start_offset == 500
    assert r.end_offset == 0  # 2000 - 2000
    # |Y| = 5: 400 ms of source per word. 500-0, 500-400, 1500-800, 2000-1200 (d >= |X|: tau = 4)
    assert r.al == pytest.approx((500 + 100 + 700 + 800) / 4)  # 525
    assert r.laal == r.al  # max(4 outputs, 5 reference words) = 5 as well
    # ATD: output ends 500 500 1500 2000 minus source ends 300 500 800 1100
    assert r.atd == pytest.approx((200 + 0 + 700 + 900) / 4)  # 450
    assert r.named() == {"StartOffset": 500, "EndOffset": 0, "ATD": 450, "AL": 525, "LAAL": 525}


def test_text_ca() -> None:
    r = sl.text_latency(DELAYS, ELAPSED, SRC, reference_len=5, computation_aware=True)
    assert r is not None
    assert r.start_offset == 700
    assert r.end_offset == 600  # 2600 - 2000
    # 700-0, 700-400, 1800-800 (< 2000: go on), 2600-1200 (tau = 4)
    assert r.al == pytest.approx((700 + 300 + 1000 + 1400) / 4)  # 850
    assert r.laal == r.al
    # the same alignment (chunks come from the delays), output ends from elapsed
    assert r.atd == pytest.approx((700 - 300 + 700 - 500 + 1800 - 800 + 2600 - 1100) / 4)  # 775
    assert set(r.named()) == {"StartOffset_CA", "EndOffset_CA", "ATD_CA", "AL_CA", "LAAL_CA"}


def test_laal_does_not_reward_an_output_longer_than_the_reference() -> None:
    # reference of 2 words, 4 output words
    # AL: |Y| = 2 -> 1000 ms per word: 500, -500, -500, -1000
    assert sl.average_lagging(DELAYS, SRC, 2) == pytest.approx(-1500 / 4)
    # LAAL: |Y| = max(4, 2) = 4 -> 500 ms per word: 500, 0, 500, 500
    assert sl.length_adaptive_average_lagging(DELAYS, SRC, 2) == pytest.approx(1500 / 4)
    # no reference: |Y| = the outputs (4) for both
    assert sl.average_lagging(DELAYS, SRC) == sl.length_adaptive_average_lagging(DELAYS, SRC) == pytest.approx(375)


def test_al_stops_at_the_first_output_after_the_whole_source_and_starts_late() -> None:
    # |Y| = 4: 500 ms per word. 1000 - 0, then 2000 - 500 reaches |X|: tau = 2
    assert sl.average_lagging([1000, 2000, 2000, 2000], SRC) == pytest.approx((1000 + 1500) / 2)
    assert sl.average_lagging([2500, 2600], SRC) == 2500  # first output after the source: d_1


def test_one_output() -> None:
    r = sl.text_latency([800.0], [950.0], SRC, computation_aware=False)
    assert r is not None
    assert (r.start_offset, r.end_offset, r.al, r.laal) == (800, -1200, 800, 800)
    # source 0-800 -> tokens ending 300 600 800; the only output token aligns to the first
    assert r.atd == pytest.approx(800 - 300)
    ca = sl.text_latency([800.0], [950.0], SRC, computation_aware=True)
    assert ca is not None and (ca.start_offset, ca.atd) == (950, 650)


def test_no_output_has_no_latency() -> None:
    assert sl.text_latency([], [], SRC, computation_aware=False) is None
    assert sl.speech_latency([], [], [], SRC, computation_aware=True) is None
    for fn in (sl.start_offset, sl.average_token_delay):
        with pytest.raises(ValueError, match="no "):
            fn([])
    with pytest.raises(ValueError, match="no times"):
        sl.average_lagging([], SRC)


# Speech instance: 2000 ms of source; chunks of 400 and 200 ms emitted after 1000 ms of source,
# 500 ms after 2000. NCA timeline: 1000-1400, 1400-1600 (waits for the first), 2000-2500.
S_DELAYS = [1000.0, 1000.0, 2000.0]
S_ELAPSED = [1200.0, 1500.0, 2100.0]  # CA timeline: 1200-1600, 1600-1800, 2100-2600
S_DURS = [400.0, 200.0, 500.0]
# ATD: output chunk {400 + 200} -> tokens 300 300; {500} -> 300 200. Source 0-1000 -> 300 x3, 100;
# 1000-2000 -> the same: ends 300 600 900 1000 | 1300 1600 1900 2000. Alignment: tokens 1, 2 -> 1, 2;
# token 3 -> 3 - max(0, 2 - 4) = 3; token 4 -> 4.


def test_speech_timeline() -> None:
    assert sl.playback_intervals(S_DELAYS, S_DURS) == [(1000, 400), (1400, 200), (2000, 500)]
    assert sl.playback_intervals(S_ELAPSED, S_DURS) == [(1200, 400), (1600, 200), (2100, 500)]
    assert sl.speech_end_offset(S_DELAYS, S_DURS, SRC) == 500


def test_speech_nca() -> None:
    r = sl.speech_latency(S_DELAYS, S_ELAPSED, S_DURS, SRC, computation_aware=False)
    assert r is not None
    assert r.start_offset == 1000
    assert r.end_offset == 500  # the last chunk plays 2000-2500
    # token ends: 1000+300, 1300+300, 2000+300, 2300+200 minus source ends 300 600 900 1000
    assert r.atd == pytest.approx((1000 + 1000 + 1400 + 1500) / 4)  # 1225
    assert r.al is None and r.laal is None  # no word times: AL is defined on aligned words only
    assert r.named() == {"StartOffset": 1000, "EndOffset": 500, "ATD": 1225}


def test_speech_ca() -> None:
    r = sl.speech_latency(S_DELAYS, S_ELAPSED, S_DURS, SRC, computation_aware=True)
    assert r is not None
    assert r.start_offset == 1200
    assert r.end_offset == 600  # the last chunk plays 2100-2600
    # both tokens of the first chunk start in its 400 ms unit (ready 1200): ends 1500, 1800;
    # then 2100+300, 2400+200
    assert r.atd == pytest.approx((1500 - 300 + 1800 - 600 + 2400 - 900 + 2600 - 1000) / 4)  # 1375


def test_speech_ca_token_ready_when_its_unit_is() -> None:
    # one source chunk (1000 ms), two output units 200 + 400 ms emitted at 1100 and 1900 (wall)
    # merged into tokens 300 (starts in unit 1: ready 1100) and 300 (starts at 300, in unit 2: 1900)
    atd = sl.average_token_delay([1000.0, 1000.0], [1100.0, 1900.0], [200.0, 400.0])
    assert atd == pytest.approx((1100 + 300 - 300 + 1900 + 300 - 600) / 2)  # 1350
    r = sl.speech_latency([1000.0, 1000.0], [1100.0, 1900.0], [200.0, 400.0], 1000.0, computation_aware=True)
    assert r is not None and r.end_offset == 1300  # 1100-1300, then 1900-2300


def test_speech_zero_duration_chunk_has_no_tokens() -> None:
    # (simuleval 1.1.4 divides by zero here.) Only the 300 ms chunk at 2000 counts: one token,
    # ending 2300, aligned to source token 1 - max(0, 0 - 4) = 1 (ends at 300)
    assert sl.average_token_delay([1000.0, 2000.0], None, [0.0, 300.0]) == pytest.approx(2000)
    with pytest.raises(ValueError, match="no duration"):
        sl.average_token_delay([1000.0], None, [0.0])


def test_speech_al_on_aligned_words() -> None:
    iv = sl.playback_intervals(S_DELAYS, S_DURS)
    # words start at 0 and 250 ms into the first chunk and 100 ms into the third
    positions = [(0, 0.0), (0, 250.0), (2, 100.0)]
    assert sl.aligned_word_delays(iv, positions) == [1000, 1250, 2100]
    r = sl.speech_latency(
        S_DELAYS, S_ELAPSED, S_DURS, SRC, computation_aware=False, word_positions=positions, reference_len=2
    )
    assert r is not None
    # AL: |Y| = 2 -> 1000 ms per word: 1000, 250, 100 (2100 >= 2000: tau = 3)
    assert r.al == pytest.approx(1350 / 3)
    # LAAL: |Y| = max(3, 2) = 3 -> 2000/3 ms per word
    assert r.laal == pytest.approx((1000 + (1250 - 2000 / 3) + (2100 - 4000 / 3)) / 3)
    ca = sl.speech_latency(S_DELAYS, S_ELAPSED, S_DURS, SRC, computation_aware=True, word_positions=positions)
    # CA timeline: words at 1200, 1450, 2200; |Y| = 3 outputs
    assert ca is not None and ca.al == pytest.approx((1200 + (1450 - 2000 / 3) + (2200 - 4000 / 3)) / 3)
    with pytest.raises(ValueError, match="outside"):
        sl.aligned_word_delays(iv, [(1, 250.0)])  # the second chunk is 200 ms long
    with pytest.raises(ValueError, match="outside"):
        sl.aligned_word_delays(iv, [(3, 0.0)])


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="must not decrease"):
        sl.start_offset([500, 400])
    with pytest.raises(ValueError, match="must not decrease"):
        sl.average_token_delay([500, 400])
    with pytest.raises(ValueError, match="durations for"):
        sl.playback_intervals([1, 2], [100])
    with pytest.raises(ValueError, match=">= 0"):
        sl.playback_intervals([1], [-1])
    with pytest.raises(ValueError, match="elapsed for"):
        sl.text_latency([1, 2], [1], SRC, computation_aware=True)
    with pytest.raises(ValueError, match="> 0"):
        sl.average_lagging([1], 0)
