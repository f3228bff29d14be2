"""Our own decode loop (model/decode/loop.py) against ``generate`` (model/stages/decoder.py ``TextDecoder``) on
the test checkpoint in fp32: the same tokens row for row (a difference only where the top two
logits nearly tie), the decoder's hidden states kept for t2u, rows that join mid-decode or leave
early changing no other row, every row's cap, forced prefix, forced length and terms honoured, and
a bounded pool.

The encoder outputs are the speech encoder's on real speech (../shared/audio). Random weights: no
assertion reads the words, only the tokens against the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.decode_rows import NEAR_TIE, encode_spans, load_stages, rows_of
from tests.support.near_ties import first_difference, next_logits, relative_gap
from translate_svc.model.decode.finished import Finished
from translate_svc.model.decode.loop import PROMPT, DecodeLoop, PoolFull
from translate_svc.model.stages.decoder import TextCap, TextDecoder
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.rows import DecodeRow, RowPlan, bare_rows
from translate_svc.types import Term

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return load_stages(test_model_dir)


@pytest.fixture(scope="module")
def encoded(stages: SeamlessStages, shared_audio: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return encode_spans(stages, shared_audio)


def cap_of(decoder: TextDecoder, row: DecodeRow) -> int:
    """A row's new-token bound as ``TextDecoder.generate`` sets it: forced length and EOS, its
    ``TextCap`` bound, or the generation config's ``max_new_tokens``."""
    if decoder.forced is not None:
        return decoder.forced.text_tokens(row.seconds) + 1
    if decoder.text_cap is not None:
        return decoder.max_new_tokens(row.seconds)
    return int(decoder.model.generation_config.max_new_tokens)


def generated(decoder: TextDecoder, plan: RowPlan, enc: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """``generate``'s sequence per row (``TextDecoder.decode``), each cut where the row ended (``generate``
    pads a row that stopped before the batch did): after its EOS, or at its own cap."""
    with torch.inference_mode():
        seqs = decoder.decode(enc, mask, plan).tolist()
    out = []
    for row, seq in zip(plan.rows, seqs, strict=True):
        body = seq[PROMPT : PROMPT + cap_of(decoder, row)]
        end = body.index(decoder.eos) + 1 if decoder.eos in body else len(body)
        out.append(seq[: PROMPT + end])
    return out


def explain(
    stages: SeamlessStages, enc: torch.Tensor, mask: torch.Tensor, ours: Sequence[int], theirs: Sequence[int]
) -> float:
    """Where two decodes of a row differ first, how far apart the two tokens' logits are (their
    gap relative to the larger): a near-tie explains the difference."""
    at = first_difference(ours, theirs)
    return relative_gap(
        next_logits(stages.model, enc.unsqueeze(0), mask.unsqueeze(0), theirs[:at]), ours[at], theirs[at]
    )


def assert_equal_or_near_tie(
    stages: SeamlessStages,
    plan: RowPlan,
    enc: torch.Tensor,
    mask: torch.Tensor,
    ours: dict[int, Finished],
    theirs: Sequence[Sequence[int]],
    least_share: float = 0.9,
) -> None:
    same = 0
    for r, (row, ref) in enumerate(zip(plan.rows, theirs, strict=True)):
        got = list(ours[row.id].tokens)
        if got == list(ref):
            same += 1
            continue
        gap = explain(stages, enc[r], mask[r], got, ref)
        assert gap < NEAR_TIE, f"row {row.id}: {got} against generate's {list(ref)}, not a near-tie (gap {gap:.2e})"
    assert same / len(plan.rows) >= least_share, f"{same} of {len(plan.rows)} rows identical"


def alone(decoder: TextDecoder, row: DecodeRow, enc: torch.Tensor, mask: torch.Tensor, frames: int) -> list[int]:
    """A row decoded by a loop of its own."""
    loop = DecodeLoop(decoder, slots=1, max_frames=frames)
    return list(loop.run([row], enc.unsqueeze(0), mask.unsqueeze(0))[row.id].tokens)


def test_the_loop_writes_generates_tokens_row_for_row(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """12 rows (6 segments x 2 languages) through a pool of 5 slots (rows queue and join as others
    finish) equal ``generate`` on the same rows, at the generation config's cap."""
    plan, enc, mask = rows_of(encoded)
    loop = DecodeLoop(stages.decoder, slots=5, max_frames=enc.shape[1])
    ours = loop.run(plan.rows, enc, mask)
    assert set(ours) == {row.id for row in plan.rows}
    assert_equal_or_near_tie(stages, plan, enc, mask, ours, generated(stages.decoder, plan, enc, mask))
    assert len(loop) == 0 and loop.free == 5


def test_each_rows_cap_and_prefix_are_honoured(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """A ``TextCap`` bounds each row by its own seconds (caps of 5 to 7 tokens here), and a forced
    prefix (a simultaneous step's committed tokens) starts a row; the rows still equal
    ``generate`` with ``RowTokenCap`` and ``ForcePrefix``. A prefix holding EOS, or longer than its
    row's cap, ends its row at admission, as ``generate`` stops there."""
    decoder = TextDecoder(
        stages.model, stages.text_lang_ids, stages.terms, stages.processor, text_cap=TextCap(per_s=2.0, base=2)
    )
    plain, enc, mask = rows_of(encoded)
    caps = {row.id: decoder.max_new_tokens(row.seconds) for row in plain.rows}
    assert len(set(caps.values())) > 2
    words = list(range(10, 20))
    prefixes = [(), tuple(words[:2]), (), (words[3],), tuple(words[:12]), (words[5], decoder.eos, words[6])] * 2
    plan, enc, mask = rows_of(encoded, prefixes=prefixes)
    loop = DecodeLoop(decoder, slots=12, max_frames=enc.shape[1])
    finished_at_admission = loop.admit(plan.rows, enc, mask)
    ours = {f.id: f for f in finished_at_admission}
    while len(loop):
        ours.update((f.id, f) for f in loop.step())
    assert {f.id for f in finished_at_admission} == {
        r.id for r in plan.rows if len(r.prefix) > 4 or decoder.eos in r.prefix
    }
    for row in plan.rows:
        tokens = ours[row.id].tokens
        assert len(tokens) - PROMPT <= caps[row.id]
        want = row.prefix[: caps[row.id]]
        if decoder.eos in want:
            want = want[: want.index(decoder.eos) + 1]
        assert tokens[PROMPT : PROMPT + len(want)] == want
    assert_equal_or_near_tie(stages, plan, enc, mask, ours, generated(decoder, plan, enc, mask))


def test_the_kept_hidden_states_are_the_decoders_on_the_rows_tokens(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """What t2u reads: ``text_decoder(input_ids=sequence[:-1]).last_hidden_state``, kept step by step."""
    plan, enc, mask = rows_of(encoded)
    ours = DecodeLoop(stages.decoder, slots=4, max_frames=enc.shape[1]).run(plan.rows[:4], enc[:4], mask[:4])
    model = stages.model
    for r, row in enumerate(plan.rows[:4]):
        got = ours[row.id]
        sub = model._compute_sub_sample_lengths_from_attention_mask(mask[r : r + 1])
        own = torch.arange(enc.shape[1]).unsqueeze(0) < sub.unsqueeze(1)
        with torch.inference_mode():
            ref = model.text_decoder(
                input_ids=torch.tensor([got.tokens[:-1]]),
                encoder_hidden_states=enc[r : r + 1],
                encoder_attention_mask=own.long(),
            ).last_hidden_state[0]
        assert got.hidden.shape == ref.shape
        torch.testing.assert_close(got.hidden, ref, rtol=1e-4, atol=1e-4)


def test_rows_that_join_mid_decode_write_what_they_write_alone(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """Rows admitted at steps 0, 2 and 5 into one pool, and the pool's rows moved as others leave,
    each write what a loop of their own writes."""
    plan, enc, mask = rows_of(encoded)
    waves = {0: [0, 5, 9], 2: [1, 2, 3, 4], 5: [6, 7, 8, 10, 11]}
    loop = DecodeLoop(stages.decoder, slots=12, max_frames=enc.shape[1])
    ours: dict[int, Finished] = {}
    steps = 0
    while waves or len(loop):
        if steps in waves:
            index = torch.tensor(waves.pop(steps))
            rows = [plan.rows[i] for i in index.tolist()]
            assert loop.admit(rows, enc.index_select(0, index), mask.index_select(0, index)) == []
        ours.update((f.id, f) for f in loop.step())
        steps += 1
    lone = [alone(stages.decoder, row, enc[r], mask[r], enc.shape[1]) for r, row in enumerate(plan.rows)]
    assert_equal_or_near_tie(stages, plan, enc, mask, ours, lone, least_share=1.0)
    assert_equal_or_near_tie(stages, plan, enc, mask, ours, generated(stages.decoder, plan, enc, mask))


def test_a_dropped_row_leaves_alone(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """A row dropped after two steps (from the middle of the pool: the last row moves into its
    slot) is never returned, and every other row writes what it writes alone."""
    plan, enc, mask = rows_of(encoded)
    loop = DecodeLoop(stages.decoder, slots=8, max_frames=enc.shape[1])
    loop.admit(plan.rows[:6], enc[:6], mask[:6])
    ours = {f.id: f for _ in range(2) for f in loop.step()}
    victim = loop.active[1]
    last = loop.active[-1]
    loop.drop(victim)
    assert victim not in loop.active and loop.active[1] == last
    with pytest.raises(KeyError, match="not in the decode pool"):
        loop.drop(victim)
    while len(loop):
        ours.update((f.id, f) for f in loop.step())
    assert victim not in ours and set(ours) == {row.id for row in plan.rows[:6]} - {victim}
    for r, row in enumerate(plan.rows[:6]):
        if row.id != victim:
            assert list(ours[row.id].tokens) == alone(stages.decoder, row, enc[r], mask[r], enc.shape[1])


def test_the_pool_is_bounded_and_refuses_what_it_cannot_hold(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """Rows beyond the free slots are refused whole (``PoolFull``; the caller's queue holds them),
    and so are a row longer than the pool's frames, an id already in the pool and a language the
    decoder has no token for."""
    plan, enc, mask = rows_of(encoded)
    loop = DecodeLoop(stages.decoder, slots=2, max_frames=enc.shape[1])
    with pytest.raises(PoolFull, match="3 rows asked to join a decode pool with 2 of 2 slots free"):
        loop.admit(plan.rows[:3], enc[:3], mask[:3])
    assert len(loop) == 0
    loop.admit(plan.rows[:1], enc[:1], mask[:1])
    with pytest.raises(ValueError, match="already in the decode pool"):
        loop.admit(plan.rows[:1], enc[:1], mask[:1])
    with pytest.raises(PoolFull, match="with 1 of 2 slots free"):
        loop.admit(plan.rows[1:3], enc[1:3], mask[1:3])
    foreign = DecodeRow(id=99, item=0, language="xxx", target=True, transcript=False, heard=False)
    with pytest.raises(ValueError, match="no language token for 'xxx'"):
        loop.admit([foreign], enc[:1], mask[:1])
    assert loop.active == (plan.rows[0].id,)
    small = DecodeLoop(stages.decoder, slots=2, max_frames=2)
    longest = int(stages.model._compute_sub_sample_lengths_from_attention_mask(mask).argmax())
    with pytest.raises(ValueError, match="the pool holds 2"):
        small.admit([plan.rows[longest]], enc[longest : longest + 1], mask[longest : longest + 1])


def test_forced_lengths_end_every_row_at_its_length(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """Benchmark mode (model/stages/forced.py): each row writes exactly its forced length, then EOS, as
    ``generate`` with ``ForceTextLength`` does."""
    forced = ForcedLengths(text_tokens_per_s=3.0)
    decoder = TextDecoder(stages.model, stages.text_lang_ids, stages.terms, stages.processor, forced=forced)
    plan, enc, mask = rows_of(encoded)
    ours = DecodeLoop(decoder, slots=12, max_frames=enc.shape[1], max_tokens=40).run(plan.rows, enc, mask)
    for row in plan.rows:
        tokens = ours[row.id].tokens
        assert len(tokens) == PROMPT + forced.text_tokens(row.seconds) + 1 and tokens[-1] == decoder.eos
        assert decoder.eos not in tokens[PROMPT:-1]
    assert_equal_or_near_tie(stages, plan, enc, mask, ours, generated(decoder, plan, enc, mask))


def test_terms_bias_the_rows_that_have_them_as_generate_does(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """A +10 BOOST term on half the rows (each row with terms runs its own host processors): the
    rows equal ``generate`` with ``RowSequenceBias``, and the boost changed some row (else this
    parity would not show the terms are applied)."""
    plain, enc, mask = rows_of(encoded)
    boosted, _, _ = rows_of(encoded, terms=(Term("kwq", weight=10.0),))
    plan = RowPlan(
        tuple(b if r % 2 else p for r, (p, b) in enumerate(zip(plain.rows, boosted.rows, strict=True))), plain.spoken
    )
    ours = DecodeLoop(stages.decoder, slots=6, max_frames=enc.shape[1]).run(plan.rows, enc, mask)
    theirs = generated(stages.decoder, plan, enc, mask)
    assert_equal_or_near_tie(stages, plan, enc, mask, ours, theirs)
    bare = generated(stages.decoder, plain, enc, mask)
    assert any(theirs[r] != bare[r] for r in range(1, len(plan.rows), 2)), "the boost changed no row"
    assert all(theirs[r] == bare[r] for r in range(0, len(plan.rows), 2))


def test_a_text_encoders_rows_decode_as_generate_does(stages: SeamlessStages) -> None:
    """Text in: the text encoder's own mask as it is (``text_input``), in the text modality."""
    from translate_svc.model_api.requests import SourceText

    text = stages.text_encoder
    ids, tmask = text.tokenize([SourceText("hello there my friend", "eng"), SourceText("bonjour", "fra")])
    plan = bare_rows(["fra", "eng"], [(), ()], [1.0, 1.0])
    with text.text_modality(), torch.inference_mode():
        enc = text.encode(ids, tmask)
        theirs = generated(stages.decoder, plan, enc, tmask)
        loop = DecodeLoop(stages.decoder, slots=2, max_frames=enc.shape[1])
        ours = loop.run(plan.rows, enc, tmask, text_input=True)
        for r, row in enumerate(plan.rows):
            got = list(ours[row.id].tokens)
            assert got == theirs[r] or explain(stages, enc[r], tmask[r], got, theirs[r]) < NEAR_TIE
    assert np.isfinite(ours[0].hidden.numpy()).all()


def test_the_static_path_writes_the_eager_paths_tokens(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """``static=True``: every step runs a row bucket over token and frame windows' buckets (the
    shapes a captured graph replays; the free slots of a bucket step too). Rows joining in waves and one
    dropped write what the eager loop writes, and free slots stepping far past the buffers'
    length (two long decodes one after the other, in a bucket of 4 with one row) stay in bounds."""
    plan, enc, mask = rows_of(encoded)
    static = DecodeLoop(stages.decoder, slots=12, max_frames=enc.shape[1], static=True, buckets=(2, 4, 8))
    assert static.buckets == (2, 4, 8, 12) and static.bucket(3) == 4 and static.bucket(9) == 12
    waves = {0: [0, 5, 9], 3: [1, 2, 3, 4], 6: [6, 7, 8, 10, 11]}
    ours: dict[int, Finished] = {}
    steps = 0
    while waves or len(static):
        if steps in waves:
            index = torch.tensor(waves.pop(steps))
            static.admit(
                [plan.rows[i] for i in index.tolist()], enc.index_select(0, index), mask.index_select(0, index)
            )
        if steps == 4:
            static.drop(plan.rows[2].id)
        ours.update((f.id, f) for f in static.step())
        steps += 1
    lone = [alone(stages.decoder, row, enc[r], mask[r], enc.shape[1]) for r, row in enumerate(plan.rows)]
    kept = RowPlan(tuple(row for row in plan.rows if row.id != plan.rows[2].id), plan.spoken)
    keep = torch.tensor([r for r in range(len(plan.rows)) if r != 2])
    assert_equal_or_near_tie(
        stages, kept, enc[keep], mask[keep], ours, [t for r, t in enumerate(lone) if r != 2], least_share=1.0
    )

    small = DecodeLoop(stages.decoder, slots=4, max_frames=enc.shape[1], static=True, buckets=(4,))
    taken = 0
    for r in (0, 1, 2):
        small.admit([plan.rows[r]], enc[r : r + 1], mask[r : r + 1])
        while len(small):
            (got,) = small.step() or [None]
            taken += 1
            if got is not None:
                assert list(got.tokens) == lone[r]
    assert taken > small.max_tokens


def test_graphs_are_captured_on_cuda_only(stages: SeamlessStages) -> None:
    """On CPU the static path runs eagerly; a capture is refused with the reason (tests/gpu/ captures)."""
    from translate_svc.model.decode.graphs import StepGraphs

    with pytest.raises(RuntimeError, match="need the decode pool on a CUDA device"):
        StepGraphs(DecodeLoop(stages.decoder, slots=2, max_frames=4, static=True))
