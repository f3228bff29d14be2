"""The LocalAgreement-n commit policy with plain values: hand-worked hypothesis sequences, no model."""

from __future__ import annotations

import pytest

from translate_svc.model_api.agreement import AgreementConfig, LocalAgreement, PrefixMismatch, Word, step_commit
from translate_svc.model_api.agreement import words as split_words

pytestmark = pytest.mark.unit

# A toy vocabulary: one token per word unless a test builds a multi-token word itself.
_IDS = {w: (i,) for i, w in enumerate("I you we saw the a cat dog ran home . there".split(), start=1)}


def words(text: str) -> list[Word]:
    return [Word(_IDS[w], w) for w in text.split()]


def texts(ws: list[Word] | tuple[Word, ...]) -> str:
    return " ".join(w.text for w in ws)


def la(n: int = 2, *, hold_last_word: bool = True) -> LocalAgreement:
    return LocalAgreement(AgreementConfig(n=n, hold_last_word=hold_last_word))


def test_n2_commits_only_once_two_hypotheses_agree() -> None:
    a = la()
    assert a.update(words("I saw the cat")) == []  # one hypothesis: nothing to agree with
    assert texts(a.tentative) == "I saw the cat"
    # common prefix of the two = "I saw the cat"; "ran" (the newest's last word) is held back anyway
    assert texts(a.update(words("I saw the cat ran"))) == "I saw the cat"
    assert texts(a.committed) == "I saw the cat"
    assert texts(a.tentative) == "ran"


def test_a_changed_word_stops_the_commit_there() -> None:
    a = la()
    a.update(words("I saw a cat ran"))
    # agreement: "I saw"; "a" vs "the" differ, so nothing after it counts even though "cat ran" agree
    assert texts(a.update(words("I saw the cat ran home"))) == "I saw"
    # the last two now agree on "the cat ran"; "home" is the newest's last word: held back
    assert texts(a.update(words("I saw the cat ran home"))) == "the cat ran"
    assert texts(a.committed) == "I saw the cat ran"


def test_the_newest_last_word_is_held_back_until_a_word_follows_it() -> None:
    a = la()
    a.update(words("I saw the cat ."))
    # both end with "." (truncated input closes the sentence): the newest's last word is not committed
    assert texts(a.update(words("I saw the cat ."))) == "I saw the cat"
    assert a.update(words("I saw the cat ran")) == []  # "." was not repeated: it never was committed
    assert texts(a.committed) == "I saw the cat"


def test_hold_last_word_false_is_whisper_streamings_rule() -> None:
    a = la(hold_last_word=False)
    a.update(words("I saw the cat"))
    assert texts(a.update(words("I saw the cat"))) == "I saw the cat"  # the whole common prefix


def test_an_older_hypothesis_may_end_where_the_newest_goes_on() -> None:
    a = la()
    a.update(words("I saw"))
    # "saw" ended the older one but is followed by a word in the newest: both agree on it, committed
    assert texts(a.update(words("I saw the"))) == "I saw"


def test_a_shorter_newest_hypothesis_commits_at_most_all_but_its_last_word() -> None:
    a = la()
    a.update(words("I saw the cat"))
    assert texts(a.update(words("I saw"))) == "I"


def test_never_retracts_a_hypothesis_without_the_committed_prefix_raises() -> None:
    a = la()
    a.update(words("I saw the cat"))
    a.update(words("I saw the cat ran"))
    before = a.committed
    with pytest.raises(PrefixMismatch, match="word 2 is 'a'"):
        a.update(words("I saw a cat ran home"))
    with pytest.raises(PrefixMismatch, match="word 3 is nothing"):
        a.update(words("I saw the"))
    with pytest.raises(PrefixMismatch):
        a.finish(words("you saw the cat"))
    assert a.committed == before  # state untouched by the refused hypotheses
    assert texts(a.update(words("I saw the cat ran home"))) == "ran"  # the last two accepted agree


def test_agreement_compares_token_ids_not_text() -> None:
    a = la()
    the = Word((5,), "the")
    there = Word((5, 42), "there")  # the same word start, grown by a continuation piece
    a.update([*words("I saw"), the, Word((7,), "cat")])
    assert texts(a.update([*words("I saw"), there, Word((7,), "cat")])) == "I saw"  # "the" != "there"
    with pytest.raises(PrefixMismatch):
        a.update([Word((1,), "i"), Word((99,), "saw")])  # "saw" as text, but not its ids


def test_finish_commits_the_rest_of_the_final_hypothesis() -> None:
    a = la()
    a.update(words("I saw the cat"))
    a.update(words("I saw the dog ran"))
    assert texts(a.committed) == "I saw the"
    assert texts(a.finish(words("I saw the dog ran home ."))) == "dog ran home ."
    assert texts(a.committed) == "I saw the dog ran home ."
    assert a.finished and a.tentative == ()
    with pytest.raises(RuntimeError, match="finished"):
        a.update(words("I saw the dog ran home ."))
    with pytest.raises(RuntimeError, match="finished"):
        a.finish(words("I saw the dog ran home ."))


def test_finish_without_any_update_commits_everything() -> None:
    a = la()
    assert texts(a.finish(words("we ran home"))) == "we ran home"


def test_n1_commits_each_hypothesis_at_once_but_its_last_word() -> None:
    a = la(1)
    assert texts(a.update(words("I saw the"))) == "I saw"
    assert texts(a.update(words("I saw a cat"))) == "a"  # "the" was never committed: free to change
    assert texts(a.committed) == "I saw a"
    b = la(1, hold_last_word=False)
    assert texts(b.update(words("I saw the"))) == "I saw the"


def test_n3_needs_three_agreeing_hypotheses() -> None:
    a = la(3)
    assert a.update(words("I saw the cat")) == []
    assert a.update(words("I saw the cat ran")) == []  # two agree: not enough
    assert texts(a.update(words("I saw a cat ran home"))) == "I saw"  # the three agree on "I saw"
    assert a.update(words("I saw a cat ran home")) == []  # "the" in the oldest of the three: no more
    assert texts(a.update(words("I saw a cat ran home"))) == "a cat ran"  # three agree; "home" held back


def test_empty_hypotheses() -> None:
    a = la()
    assert a.update([]) == []
    assert a.update([]) == []  # two agreeing empty hypotheses commit nothing
    assert a.update(words("I saw")) == []  # the empty one before it agrees on nothing
    assert texts(a.update(words("I saw the"))) == "I saw"
    with pytest.raises(PrefixMismatch, match="word 0 is nothing"):
        a.update([])  # words are committed: an empty hypothesis would retract them
    b = la()
    assert b.finish([]) == [] and b.committed == ()


def test_config_validation() -> None:
    assert AgreementConfig().n == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n must be"):
            AgreementConfig(n=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one token"):
        Word((), "")
    assert LocalAgreement().config == AgreementConfig()


# -- the state as data: what a step in another process rebuilds ----------------------------------------


def test_words_cut_token_ids_at_word_starts() -> None:
    assert [w.ids for w in split_words((7, 8, 9, 10, 11), (1, 3))] == [(7,), (8, 9), (10, 11)]
    assert [w.ids for w in split_words((7, 8, 9), (0, 2, 3, 9))] == [(7, 8), (9,)]  # 0 and out of range ignored
    assert split_words((), (0,)) == () and [w.text for w in split_words((1, 2), (1,), text=str)] == ["(1,)", "(2,)"]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("hold", [True, False])
def test_resume_continues_where_the_policy_stood(n: int, hold: bool) -> None:
    """Fed a sequence step by step, a policy rebuilt each step from the committed words and the
    hypotheses so far commits exactly what the one kept policy commits."""
    seq = ["I saw", "I saw the", "I saw the cat", "I saw a cat", "I saw a cat ran", "we saw a dog ran home ."]
    config = AgreementConfig(n, hold)
    kept, seen = LocalAgreement(config), []
    for text in seq:
        hyp = [*kept.committed, *words(text)[len(kept.committed) :]]  # forced to the committed words
        resumed = LocalAgreement.resume(kept.committed, seen, config)
        assert resumed.update(hyp) == kept.update(hyp)
        assert resumed.committed == kept.committed
        seen.append(tuple(hyp))
    assert kept.committed


def test_step_commit_from_token_ids() -> None:
    """The policy on plain token ids (every id a word here), committed tokens as one block: the
    commit after each step equals the kept policy's; a stale previous hypothesis agrees with
    nothing; a hypothesis without the committed prefix raises."""
    every = lambda ids: range(len(ids))  # noqa: E731
    config = AgreementConfig(2)
    hyps = [(1, 2), (1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 5, 6), (1, 2, 3, 5, 6, 7)]
    kept, committed, recent = LocalAgreement(config), (), []
    for ids in hyps:
        kept.update([Word((i,), str(i)) for i in ids])
        committed = step_commit(committed, recent, ids, every, config)
        assert committed == tuple(i for w in kept.committed for i in w.ids)
        recent.append(ids)
    assert committed == (1, 2, 3, 5, 6)
    assert step_commit((1, 2), [(9, 9, 3)], (1, 2, 3, 4), every, config) == (1, 2)  # stale: no agreement
    assert step_commit((1, 2), [(1, 2, 3, 4)], (1, 2, 3, 4), every, config) == (1, 2, 3)
    assert step_commit((1, 2), [(1, 2, 3, 4)], (1, 2, 3, 4), lambda ids: (), config) == (1, 2)  # one word: held
    with pytest.raises(PrefixMismatch):
        step_commit((1, 2), [], (1, 3), every, config)
