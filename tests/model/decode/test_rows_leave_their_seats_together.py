"""Rows leaving the decode pool's seats (model/decode/seats.py ``Seats.hidden``, ``leave``,
``_pack``): the rows a step reads finished leave together, their hidden states copied out in one
copy, and on the static path (what CUDA graphs replay) a row's slot is freed where it is: no other
row moves unless the rows left fit a smaller row bucket, since a step runs a row bucket anyway and
a free slot in it steps masked.
Counted as the GPU's host pays it (tests/support/dispatch_count.py: eager launches outside the
step's capture region). Test checkpoint, fp32, CPU; forced lengths end each segment's two rows at
the same step. No assertion reads the words: the static path's tokens against the eager path's
are test_decode_loop.py's and test_decode_lag.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.decode_rows import encode_spans, load_stages, rows_of
from tests.support.dispatch_count import HostCosts
from translate_svc.model.decode.loop import DecodeLoop
from translate_svc.model.stages.decoder import TextDecoder
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return load_stages(test_model_dir)


def test_rows_leave_together_in_one_copy_and_move_only_past_their_row_bucket(
    stages: SeamlessStages, shared_audio: Path
) -> None:
    forced = ForcedLengths(text_tokens_per_s=3.0)
    decoder = TextDecoder(stages.model, stages.text_lang_ids, stages.terms, stages.processor, forced=forced)
    plan, enc, mask = rows_of(encode_spans(stages, shared_audio))
    assert len(plan.rows) == 12
    loop = DecodeLoop(
        decoder, slots=16, max_frames=enc.shape[1], max_tokens=40, static=True, buckets=(4, 8, 16), read_behind=True
    )
    moved = [0]  # rows moved to another slot
    move, move_rows = loop.buffers.move, loop.buffers.move_rows

    def one(*a: Any) -> None:
        moved[0] += 1
        move(*a)

    def many(src: torch.Tensor, *a: Any) -> None:
        moved[0] += len(src)
        move_rows(src, *a)

    loop.buffers.move, loop.buffers.move_rows = one, many  # type: ignore[method-assign]
    loop.admit(plan.rows, enc, mask)
    left: dict[int, Any] = {}
    leaves = []  # per step that rows left at: (rows, rows before, rows after, rows moved, eager launches)
    with torch.inference_mode():
        while len(loop):
            before, was = len(loop), moved[0]
            with HostCosts() as costs:
                got = loop.step()
            left.update((f.id, f) for f in got)
            if got:
                leaves.append((len(got), before, len(loop), moved[0] - was, costs.total().kernels))
                assert loop.seats.extent <= loop.bucket(max(1, len(loop)))  # a step reads the bucket
    assert sorted(left) == [r.id for r in plan.rows]
    assert all(f.hidden.shape[0] == len(f.tokens) - 1 for f in left.values())
    assert max(n for n, *_ in leaves) >= 2  # rows did leave together
    for n, before, after, rows_moved, launches in leaves:
        if loop.bucket(after or 1) == loop.bucket(before):
            # the rows left still need their bucket: nothing moves, one copy of the hidden states
            # (a block of neighbours, or an upload of the slots and one gather)
            assert rows_moved == 0, (n, before, after)
            assert launches <= 2, (n, before, after, launches)
        else:  # rows past the smaller bucket moved down together: an upload, then a gather and a
            # scatter a buffer (11), whatever the rows; the freed slots marked finished in one fill
            assert rows_moved <= after
            assert launches <= 2 + 1 + 2 * 11 + 1, (n, before, after, rows_moved, launches)
    assert any(m >= 2 for *_, m, _ in leaves)  # rows did move together


def test_rows_moved_together_are_moved_as_one_by_one() -> None:
    """``Slots.move_rows`` (a gather and a scatter a buffer) writes what ``Slots.move`` writes row
    by row: every per-row value, and the keys, values and hidden states up to the widths given."""
    from tests.support.fake_slots import fake_slots

    gen = torch.Generator().manual_seed(3)
    a = fake_slots(6, max_tokens=6, max_frames=5)
    for f in ("self_kv", "cross_kv", "frames_bias", "hidden", "logprob"):
        getattr(a, f).copy_(torch.randn(getattr(a, f).shape, generator=gen))
    for f in ("tokens", "length", "limit", "force_len", "known"):
        getattr(a, f).copy_(torch.randint(0, 50, getattr(a, f).shape, generator=gen))
    a.done.copy_(torch.tensor([True, False, True, False, False, True]))
    b = fake_slots(6, max_tokens=6, max_frames=5)
    for f in ("self_kv", "cross_kv", "frames_bias", "hidden", "logprob", "tokens", "length", "limit", "force_len"):
        getattr(b, f).copy_(getattr(a, f))
    b.known.copy_(a.known)
    b.done.copy_(a.done)
    for src, dst in ((4, 0), (5, 2)):
        a.move(src, dst, 4, 3)
    b.move_rows(torch.tensor([4, 5]), torch.tensor([0, 2]), 4, 3)
    for f in ("self_kv", "cross_kv", "frames_bias", "hidden", "logprob", "tokens", "length", "limit", "force_len"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert torch.equal(a.known, b.known) and torch.equal(a.done, b.done)
