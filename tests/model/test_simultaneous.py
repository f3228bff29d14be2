"""Simultaneous steps on the test checkpoint (model/simultaneous.py): forced prefixes, word starts,
speech for committed text, chunks.

Random weights say anything (often nothing readable): every prefix and commit point here is taken
from the model's own output, and the assertions are on structure and parity with transformers'
``generate`` (tests/model/test_runner.py's reference), never on words.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.reference import Reference, hf_generate, plain_reference
from tests.support.runner_inputs import commit_first, rows_of, step_input
from tests.support.speech import read_16k
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.simultaneous import Retranslator
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.agreement import AgreementConfig, LocalAgreement, words
from translate_svc.model_api.requests import (
    ModelInput,
    ModelOutput,
    SimulRequest,
    SimulRowOutput,
    SimulTarget,
    speak_now,
)
from translate_svc.types import Term

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

SPANS = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]  # seconds of jfk.flac
LANGS = ("spa", "deu", "ita", "fra")


@pytest.fixture(scope="module")
def own_runner(test_model_dir: Path) -> SeamlessRunner:
    """Its own runner: the duration hooks that steps install stay off the session's shared runner."""
    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def simul(own_runner: SeamlessRunner) -> Retranslator:
    """Steps on that runner's stages, apart from those its ``run`` makes (``SeamlessRunner.retranslator``)."""
    return Retranslator(own_runner.stages)


@pytest.fixture(scope="module")
def reference(test_model_dir: Path) -> Reference:
    return plain_reference(test_model_dir)


@pytest.fixture(scope="module")
def segments(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    return [x[int(a * 16000) : int(b * 16000)] for a, b in SPANS]


@pytest.fixture(scope="module")
def case(simul: Retranslator, segments: list[np.ndarray]) -> tuple[np.ndarray, str, SimulRowOutput]:
    """The first (segment, language) whose unforced decode has at least four word starts after
    its first token, so a commit can grow in steps: (audio, language, its unforced output)."""
    for audio in segments:
        for out in one(simul, audio, *[SimulTarget(x) for x in LANGS]):
            if len([i for i in out.word_starts if i > 0]) >= 4:
                return audio, out.language, out
    raise AssertionError("no decode of the shared speech has four words to commit one by one")


def one(simul: Retranslator, audio: np.ndarray, *targets: SimulTarget, **step: Any) -> tuple[SimulRowOutput, ...]:
    """One step batch of ``audio``, one input per target (targets may repeat a language): each
    target's row, in order."""
    outs = simul.retranslate([step_input(audio, t, **step) for t in targets])
    return tuple(row for out in outs for row in rows_of(out))


def generate_from(reference: Reference, audio: np.ndarray, lang_id: int, prefix: tuple[int, ...]) -> tuple[int, ...]:
    """transformers' generate with ``[start, language, *prefix]`` as decoder input ids (the prefix
    read in one pass), bounded to the model's own total of text tokens: the text after the
    language token, up to EOS."""
    m, p = reference
    feats = p(audio=audio, sampling_rate=16000, return_tensors="pt")
    gen = m.generation_config
    start = torch.tensor([[gen.decoder_start_token_id, lang_id, *prefix]])
    with torch.inference_mode():
        out: Any = m.generate(
            **feats,
            generate_speech=False,
            decoder_input_ids=start,
            text_max_new_tokens=int(gen.max_new_tokens) - len(prefix),
        )
    body = out.sequences[0, 2:].tolist()
    stop = [i for i, tok in enumerate(body) if tok in (gen.eos_token_id, gen.pad_token_id)]
    return tuple(body[: stop[0] if stop else len(body)])


def test_empty_prefix_is_the_runners_decode_and_generates(
    simul: Retranslator, own_runner: SeamlessRunner, reference: Reference, segments: list[np.ndarray]
) -> None:
    """One batched step of every segment into two languages: each row's text is the runner's and
    generate's, token for token with the runner's own decode."""
    inputs = [step_input(a, SimulTarget("spa"), SimulTarget("fra")) for a in segments]
    outs = [rows_of(out) for out in simul.retranslate(inputs)]
    runs = own_runner.run([ModelInput(a, ("spa", "fra"), None, speech=False) for a in segments])
    assert len({row.text for rows in outs for row in rows}) >= 3  # the inputs matter
    for audio, rows, run in zip(segments, outs, runs, strict=True):
        for row in rows:
            assert row.text == run.texts[row.language] == hf_generate(reference, audio, row.language, speech=False)[0]
            assert simul.text(row.token_ids) == row.text
            assert row.committed == () and row.chunk is None and row.spoken_tokens == 0
        alone = simul.decode(*encoded(simul, audio, 2), ["spa", "fra"], [(), ()], [len(audio) / 16000] * 2)
        assert [ids for ids, _, _ in alone] == [row.token_ids for row in rows]


def encoded(simul: Retranslator, audio: np.ndarray, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The runner's encoder output for ``audio``, repeated for ``rows`` rows."""
    with torch.inference_mode():
        batch = simul.stages.speech_encoder.features([simul.stages.extract_features(audio)])
        enc = simul.stages.speech_encoder.encode(batch)
    return enc.expand(rows, -1, -1), batch.mask.expand(rows, -1)


def test_a_prefix_of_the_unforced_output_changes_nothing(
    simul: Retranslator, case: tuple[np.ndarray, str, SimulRowOutput]
) -> None:
    """Every prefix of the unforced output, word start or not, up to all of it, forced in one
    batch (rows of every prefix length): each row is the unforced output again."""
    audio, lang, plain = case
    ids = plain.token_ids
    outs = one(simul, audio, *[SimulTarget(lang, ids[:k]) for k in range(len(ids) + 1)])
    for k, out in enumerate(outs):
        assert out.token_ids[:k] == ids[:k]
        assert out.token_ids == ids and out.text == plain.text
        assert out.committed == ids[:k]


def test_an_arbitrary_prefix_is_kept_and_continued_as_generate_continues_it(
    simul: Retranslator, reference: Reference, case: tuple[np.ndarray, str, SimulRowOutput]
) -> None:
    """Prefixes the model did not say: the output starts with each and continues exactly as
    generate continues it from the same decoder input ids."""
    audio, lang, plain = case
    tok = simul.tokenizer
    other = next(
        row.token_ids[:3]
        for row in one(simul, audio, *[SimulTarget(x) for x in LANGS])
        if row.token_ids[:3] != plain.token_ids[:3] and len(row.token_ids) >= 3
    )
    prefixes = [
        tuple(tok.convert_tokens_to_ids(["\u2581h", "e", "l", "l", "o"])),
        tuple(tok.convert_tokens_to_ids(["z"])),
        other,
    ]
    lang_id = simul.stages.text_lang_ids[lang]
    outs = one(simul, audio, *[SimulTarget(lang, p) for p in prefixes])
    for prefix, out in zip(prefixes, outs, strict=True):
        assert prefix != plain.token_ids[: len(prefix)]
        assert out.token_ids[: len(prefix)] == prefix
        assert out.token_ids == generate_from(reference, audio, lang_id, prefix)


def test_word_starts_are_where_the_text_splits_into_words(simul: Retranslator, segments: list[np.ndarray]) -> None:
    """Cut at a word start, the two halves' texts join with a space; cut anywhere else, they join
    without one (where both halves write something)."""
    checked = 0
    for audio in segments:
        for out in one(simul, audio, *[SimulTarget(x) for x in LANGS]):
            ids = out.token_ids
            assert all(0 <= i < len(ids) for i in out.word_starts)
            for k in range(1, len(ids)):
                head, tail = simul.text(ids[:k]), simul.text(ids[k:])
                if head and tail:
                    sep = " " if k in out.word_starts else ""
                    assert head + sep + tail == out.text, (k, head, tail)
                    checked += k in out.word_starts
    assert checked >= 4


def test_speech_for_a_committed_prefix_is_generates_speech_for_that_text(
    simul: Retranslator, reference: Reference, case: tuple[np.ndarray, str, SimulRowOutput]
) -> None:
    """A committed prefix of k tokens spoken in one chunk is what generate speaks when its text
    stops after those k tokens (``text_max_new_tokens=k+1``: generate never speaks its last
    token); the final step of a segment with nothing committed speaks its whole decode."""
    audio, lang, plain = case
    ids = plain.token_ids
    cuts = [*[k for k in plain.word_starts if k > 0][:3], len(ids)]
    outs = one(simul, audio, *[SimulTarget(lang, ids[:k]) for k in cuts], min_units=1)
    (final,) = one(simul, audio, SimulTarget(lang), final=True)
    assert final.committed == ids
    for k, out in [*zip(cuts, outs, strict=True), (len(ids), final)]:
        _, wave = hf_generate(reference, audio, lang, max_new_tokens=k + 1)
        assert out.chunk is not None and out.spoken_tokens == k
        assert len(out.chunk_units) == out.units_total > 0
        assert out.chunk.shape == wave.shape, f"{k} tokens"
        np.testing.assert_allclose(out.chunk, wave, atol=1e-4, err_msg=f"{k} tokens")
    assert final.chunk_units == outs[-1].chunk_units


@pytest.mark.parametrize("defer_first", [False, True])
def test_chunks_add_up_to_the_whole_texts_units_and_speak_none_twice(
    simul: Retranslator, case: tuple[np.ndarray, str, SimulRowOutput], defer_first: bool
) -> None:
    """A segment committed in three word-start steps (the commit policy in the step), then its
    final step: each chunk is the units of t2u over the committed text from the count already
    spoken, so the chunks' unit spans are contiguous, none is spoken twice, and joined they are
    exactly as many units as t2u gives the whole committed text; no chunk but the last is below
    ``min_units``. ``defer_first``: ``min_units`` one above the first commit's units, so that
    step speaks nothing and a later one speaks its words."""
    audio, lang, plain = case
    ids = plain.token_ids
    starts = [k for k in plain.word_starts if k > 0]
    commits = [starts[0], starts[len(starts) // 2], starts[-1]]
    seconds = [len(audio) / 16000]
    enc, mask = encoded(simul, audio, 1)

    def speech(k: int):  # type: ignore[no-untyped-def]
        return simul.committed_speech(enc, mask, [lang], [ids[:k]], seconds)[0]

    min_units = len(speech(commits[0]).units) + 1 if defer_first else 1
    target, spans, joined, deferred = SimulTarget(lang), [], [], 0
    for step, k in enumerate([*commits, len(ids)]):
        final = step == len(commits)
        (out,) = rows_of(
            simul.retranslate(
                [step_input(audio, target, final=final, min_units=min_units)],
                commit=commit_first(k),  # final steps commit all without asking
            )[0]
        )
        assert out.token_ids == ids and out.committed == ids[:k]
        assert k == len(ids) or k in out.word_starts  # a commit ends at a word start (or the end)
        ref = speech(k)
        assert out.units_total == len(ref.units) == ref.token_ends[-1]
        pieces = simul.tokenizer.convert_ids_to_tokens(list(ids[:k]))
        for j, piece in enumerate(pieces):  # t2u gives every character of a token at least one unit
            assert ref.token_ends[j + 1] - ref.token_ends[j] >= (1 if piece.startswith("<") else len(piece))
        if out.chunk is None:
            assert not final and len(ref.units) - target.spoken_units < min_units
            assert (out.spoken_tokens, out.spoken_units, out.chunk_units) == (
                target.spoken_tokens, target.spoken_units, ()
            )  # fmt: skip
            deferred += 1
        else:
            assert out.chunk_units == tuple(ref.units[target.spoken_units :].tolist())
            assert final or len(out.chunk_units) >= min_units
            assert out.chunk.dtype == np.float32 and out.chunk.size > 0
            assert (out.spoken_tokens, out.spoken_units) == (k, len(ref.units))
            spans.append((target.spoken_units, out.spoken_units))
            joined.extend(out.chunk_units)
        target = SimulTarget(lang, out.committed, out.spoken_tokens, out.spoken_units)
    whole = speech(len(ids))
    assert len(joined) == len(whole.units) == target.spoken_units  # the whole committed text's units
    assert [a for a, _ in spans] == [0, *(b for _, b in spans[:-1])]  # contiguous: none twice, none skipped
    assert all(a < b for a, b in spans) and target.spoken_tokens == len(ids)
    assert joined[spans[-1][0] :] == whole.units[spans[-1][0] :].tolist()  # the last chunk is the final run's tail
    if defer_first:
        assert deferred >= 1 and spans[0][1] > len(speech(commits[0]).units)
    else:
        assert (deferred, len(spans)) == (0, 4)


def test_batched_rows_equal_each_row_alone(
    simul: Retranslator, segments: list[np.ndarray], case: tuple[np.ndarray, str, SimulRowOutput]
) -> None:
    """Segments of different lengths, rows with and without prefixes, speech and text only, a
    final and an open segment in one step: each row as it is alone."""
    audio, lang, plain = case
    k = [i for i in plain.word_starts if i > 0][1]
    other = next(a for a in segments if len(a) != len(audio))
    inputs = [
        step_input(audio, SimulTarget(lang, plain.token_ids[:k], 0), min_units=1),
        step_input(audio, SimulTarget("fra"), speech=False, min_units=1),
        step_input(other, SimulTarget("ita"), speaker_id=1, final=True),
    ]
    batched = [rows_of(out) for out in simul.retranslate(inputs)]
    for item, outs in zip(inputs, batched, strict=True):
        assert item.simul is not None
        for target, row in zip(item.simul.targets, outs, strict=True):
            (alone,) = one(
                simul,
                item.audio,
                target,
                speech=item.speech,
                speaker_id=item.speaker_id,
                final=item.simul.final,
                min_units=item.simul.min_units,
            )
            assert (row.token_ids, row.committed, row.units_total, row.chunk_units, row.spoken_units) == (
                alone.token_ids, alone.committed, alone.units_total, alone.chunk_units, alone.spoken_units
            )  # fmt: skip
            if row.chunk is None:
                assert alone.chunk is None
            else:
                assert alone.chunk is not None and row.chunk.shape == alone.chunk.shape
                np.testing.assert_allclose(row.chunk, alone.chunk, atol=1e-4)
    assert batched[0][0].chunk is not None and batched[1][0].units_total == 0 and batched[1][0].chunk is None


def test_the_min_units_rule_and_commit_checks(
    simul: Retranslator, case: tuple[np.ndarray, str, SimulRowOutput]
) -> None:
    assert not speak_now(49, 50, final=False) and speak_now(50, 50, final=False)
    assert speak_now(1, 50, final=True) and not speak_now(0, 50, final=True)
    audio, lang, plain = case
    ids = plain.token_ids
    with pytest.raises(ValueError, match="spoken_tokens"):
        SimulTarget(lang, ids[:2], spoken_tokens=3)
    committed = SimulTarget(lang, ids[:4])
    for bad in (ids[:2], (*ids[:4], ids[4] + 1)):  # retracts; leaves the hypothesis
        with pytest.raises(ValueError, match="commit"):
            simul.retranslate([step_input(audio, committed)], commit=lambda *_, bad=bad: bad)


def test_steps_through_the_runners_run_with_local_agreement(
    own_runner: SeamlessRunner, segments: list[np.ndarray], case: tuple[np.ndarray, str, SimulRowOutput]
) -> None:
    """Steps as engine jobs (``SeamlessRunner.run`` with ``ModelInput.simul``), batched with a whole
    segment: results in input order, the segment's as alone. The policy's state is data: with the
    model's own previous hypotheses in ``recent``, a step commits what a LocalAgreement fed the same
    hypotheses in order commits (nothing before n hypotheses, never the newest's last word); the
    final step commits the rest, with the unforced transcript."""
    runner = own_runner
    audio, lang, plain = case
    other = next(a for a in segments if len(a) != len(audio))
    normal = ModelInput(other, ("spa",), "eng", speech=False)
    (alone,) = runner.run([normal])
    early = audio[: len(audio) * 2 // 3]

    def hypotheses(target: SimulTarget, clip: np.ndarray, **step: Any) -> tuple[ModelOutput, ModelOutput]:
        first, second = runner.run([step_input(clip, target, min_units=1, **step), normal])
        assert second.simul is None and second.texts == alone.texts and second.transcript == alone.transcript
        assert first.simul is not None and list(first.simul) == [lang]
        return first, second

    h1 = hypotheses(SimulTarget(lang), early)[0].simul[lang]  # type: ignore[index]
    assert h1.committed == () and h1.chunk is None  # one hypothesis: n = 2 commits nothing
    for n, hold in [(2, True), (2, False), (3, True)]:
        recent = (h1.token_ids,) * (n - 1)
        out = hypotheses(SimulTarget(lang, recent=recent), audio, agreement=n, hold_last_word=hold)[0]
        row = out.simul[lang]  # type: ignore[index]
        assert row.token_ids == plain.token_ids
        policy = LocalAgreement(AgreementConfig(n, hold))
        for ids, starts in [*[(h1.token_ids, h1.word_starts)] * (n - 1), (row.token_ids, row.word_starts)]:
            policy.update(words(ids, starts))
        expected = tuple(tok for w in policy.committed for tok in w.ids)
        assert row.committed == expected and out.texts == {lang: row.committed_text}
        assert row.spoken_tokens == (len(expected) if row.chunk is not None else 0)
        assert (row.chunk is not None) == bool(expected) and out.waveforms == {}
        too_few = hypotheses(SimulTarget(lang, recent=recent[1:]), audio, agreement=n, hold_last_word=hold)[0]
        assert too_few.simul[lang].committed == ()  # type: ignore[index]
    agreed = hypotheses(SimulTarget(lang, recent=(plain.token_ids,)), audio)[0].simul[lang]  # type: ignore[index]
    last = max(i for i in plain.word_starts if i > 0)
    assert agreed.committed == plain.token_ids[:last]  # two equal hypotheses: all but the last word

    final = SimulTarget(lang, agreed.committed, agreed.spoken_tokens, agreed.spoken_units, recent=(plain.token_ids,))
    (done,) = runner.run([ModelInput(audio, (lang,), "eng", simul=SimulRequest((final,), final=True))])
    (transcript,) = runner.run([ModelInput(audio, (), "eng", speech=False)])
    assert done.simul is not None and done.simul[lang].committed == plain.token_ids
    assert done.texts == {lang: plain.text} and done.transcript == transcript.transcript
    assert done.simul[lang].spoken_tokens == len(plain.token_ids) and done.simul[lang].chunk is not None


@pytest.mark.parametrize("keep", [False, True])
def test_terms_bias_a_step_as_they_bias_its_segment(
    simul: Retranslator,
    own_runner: SeamlessRunner,
    segments: list[np.ndarray],
    test_model_dir: Path,
    keep: bool,
) -> None:
    """A stream's terms (issue 21) reach its steps: a final step with nothing committed writes
    what the runner writes for the same segment with the same terms (a transcript and a
    translation row: a kept phrase is carried where that transcript holds it), which
    tests/service/test_language.py holds to generate. A +10 boost must change some
    segment's text, or the parity would not show the terms are applied."""
    from tests.support.term_reference import said_phrase

    phrase = said_phrase(test_model_dir, segments)[0] if keep else "kwq"
    terms = (Term(phrase, keep=True),) if keep else (Term(phrase, weight=10.0),)
    changed = False
    for audio in segments:
        plain = ModelInput(audio, ("spa",), "eng", speech=False)
        item = dataclasses.replace(plain, terms=terms)
        (run,) = own_runner.run([item])
        (out,) = simul.retranslate([dataclasses.replace(item, simul=SimulRequest((SimulTarget("spa"),), final=True))])
        assert (out.transcript, out.texts) == (run.transcript, run.texts)
        assert rows_of(out)[0].committed_text == run.texts["spa"]
        (bare,) = own_runner.run([plain])
        changed |= (bare.transcript, bare.texts) != (run.transcript, run.texts)
    assert changed, f"the terms {terms} changed no segment: this parity would not show they reach a step"
