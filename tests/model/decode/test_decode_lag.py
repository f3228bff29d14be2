"""The decode loop's host reading the finished flags only every few steps (model/decode/loop.py
``read_every``, ``read_behind``; issue 70): rows that finish between two reads run masked steps
that change nothing, so every row's tokens, confidences and kept hidden states are those of a read
every step, cut at its EOS or cap, and rows leave only at reads.

Test checkpoint, fp32, CPU (``read_behind`` runs its copy-then-take path on CPU too); the encoder
outputs are the speech encoder's on real speech. No assertion reads the words.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.decode_rows import encode_spans, load_stages, rows_of
from translate_svc.model.decode.finished import Finished
from translate_svc.model.decode.loop import PROMPT, DecodeLoop
from translate_svc.model.stages.decoder import TextCap, TextDecoder
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return load_stages(test_model_dir)


@pytest.fixture(scope="module")
def encoded(stages: SeamlessStages, shared_audio: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return encode_spans(stages, shared_audio)


def stepped(
    loop: DecodeLoop, admit: dict[int, list[int]], plan, enc, mask, drop: tuple[int, int] | None = None
) -> dict[int, tuple[int, Finished]]:  # type: ignore[no-untyped-def]
    """Rows admitted at the steps of ``admit`` (plan indices), one dropped at ``drop`` (step, index),
    stepped until the pool is empty: each result with the step count it came back after."""
    out: dict[int, tuple[int, Finished]] = {}
    steps = 0
    admit = dict(admit)
    while admit or len(loop):
        if steps in admit:
            index = torch.tensor(admit.pop(steps))
            got = loop.admit([plan.rows[i] for i in index.tolist()], enc[index], mask[index])
            out.update((f.id, (steps, f)) for f in got)
        if drop is not None and steps == drop[0]:
            loop.drop(plan.rows[drop[1]].id)
        steps += 1
        out.update((f.id, (steps, f)) for f in loop.step())
    return out


def assert_same(ours: dict[int, tuple[int, Finished]], ref: dict[int, tuple[int, Finished]]) -> None:
    assert set(ours) == set(ref)
    for row_id, (_, f) in ours.items():
        want = ref[row_id][1]
        assert f.tokens == want.tokens, f"row {row_id}"
        assert f.logprobs == pytest.approx(want.logprobs, abs=1e-5)
        torch.testing.assert_close(f.hidden, want.hidden, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("every", "behind"), [(4, False), (3, True)])
def test_a_lagged_read_writes_the_tokens_of_a_read_every_step(stages: SeamlessStages, encoded, every, behind) -> None:  # type: ignore[no-untyped-def]
    """Benchmark mode's forced lengths end the 12 rows on EOS at different steps; read every
    ``every`` steps (or one step behind), the rows that finished between reads ran masked steps
    and still end at their EOS, with the tokens, confidences and hidden states of a read per step."""
    forced = ForcedLengths(text_tokens_per_s=3.0)
    decoder = TextDecoder(stages.model, stages.text_lang_ids, stages.terms, stages.processor, forced=forced)
    plan, enc, mask = rows_of(encoded)
    admit = {0: list(range(len(plan.rows)))}

    def loop(**kw) -> DecodeLoop:  # type: ignore[no-untyped-def]
        return DecodeLoop(decoder, slots=12, max_frames=enc.shape[1], max_tokens=40, **kw)

    ref = stepped(loop(), admit, plan, enc, mask)
    ours = stepped(loop(read_every=every, read_behind=behind), admit, plan, enc, mask)
    assert_same(ours, ref)
    masked = 0
    for row in plan.rows:
        after, f = ours[row.id]
        assert f.tokens[-1] == decoder.eos and decoder.eos not in f.tokens[PROMPT:-1]
        assert len(f.tokens) == PROMPT + forced.text_tokens(row.seconds) + 1
        chose = len(f.tokens) - PROMPT  # the steps the row needed
        assert ref[row.id][0] == chose
        assert after % every == behind % every  # rows leave only when a read is taken
        assert chose <= after < chose + every + behind
        masked += after - chose
    assert masked > 0  # rows did finish between reads


def test_a_read_behind_survives_rows_joining_and_leaving(stages: SeamlessStages, encoded) -> None:  # type: ignore[no-untyped-def]
    """Caps of a ``TextCap`` (rows end at different steps), rows joining in waves while a read is
    in flight and one dropped: every row as with a read each step, the dropped one absent."""
    decoder = TextDecoder(
        stages.model, stages.text_lang_ids, stages.terms, stages.processor, text_cap=TextCap(per_s=2.0, base=2)
    )
    plan, enc, mask = rows_of(encoded)
    admit = {0: [0, 5, 9], 2: [1, 2, 3, 4], 5: [6, 7, 8, 10, 11]}
    for static in (False, True):
        kw = {"slots": 12, "max_frames": enc.shape[1], "static": static, "buckets": (4, 8)}
        ref = stepped(DecodeLoop(decoder, **kw), admit, plan, enc, mask, drop=(4, 2))
        lagged = DecodeLoop(decoder, read_every=3, read_behind=True, **kw)
        ours = stepped(lagged, admit, plan, enc, mask, drop=(4, 2))
        assert plan.rows[2].id not in ours
        assert_same(ours, ref)


def test_the_chosen_tokens_log_probability_is_log_softmax_within_1e_5(stages: SeamlessStages) -> None:
    """``choose`` takes the log-probability from the argmax's own maximum and one in-place pass of
    ``exp`` (decode_step.py): on logits of the real vocabulary's size and spread it equals
    ``log_softmax(raw)[token]`` within 1e-5, with term processors (``raw`` apart) and with forced
    lengths (EOS barred before a row's length, then forced; the model's own EOS logit kept)."""
    from translate_svc.model.decode import step as decode_step

    loop = DecodeLoop(stages.decoder, slots=4, max_frames=8, max_tokens=12)
    buf, eos = loop.buffers, loop.eos
    gen = torch.Generator().manual_seed(7)
    for case in ("plain", "terms", "forced"):
        buf.length[:] = torch.tensor([3, 4, 5, 6])
        buf.done[:] = False
        buf.limit[:] = 12
        buf.force_len[:] = torch.tensor([0, 5, 1, 3])  # text written 1, 2, 3, 4: only row 1's EOS barred
        raw = torch.randn(4, 256_102, generator=gen) * 6
        raw[:, eos] = raw.max() + 1  # EOS the model's own choice in every row
        scores = raw.clone()
        if case == "terms":
            scores[:, 100] += 50.0  # a processor's bias: the choice is not the raw argmax
        at = buf.length - 1
        want = raw.double().log_softmax(-1).float()  # float32's own log_softmax is 1e-5 off at 256k
        token = decode_step.choose(
            buf, 4, scores, eos, at, raw.clone() if case == "terms" else None, forced=case == "forced"
        )
        if case == "forced":
            barred = raw[1].clone().index_fill_(0, torch.tensor([eos]), float("-inf"))
            assert token.tolist() == [eos, int(barred.argmax()), eos, eos]
        else:
            assert token.tolist() == ([100] * 4 if case == "terms" else [eos] * 4)
        got = buf.logprob[torch.arange(4), at + 1]
        torch.testing.assert_close(got, want[torch.arange(4), token], atol=1e-5, rtol=0)
        assert buf.tokens[torch.arange(4), at + 1].tolist() == token.tolist()
