"""LocalAgreement-n: which words of a re-translated open segment are safe to show for good.

Simultaneous mode re-translates the open speech every ``step_ms``; each decode is a *hypothesis*, a
sequence of :class:`Word` (a word = the token ids from one word start to the next, plus its text).
This policy decides which words to *commit*. It is pure and synchronous (no model, no clock);
one :class:`LocalAgreement` per segment and target language. Not thread-safe: owned by one stream.

Semantics (``n`` = :attr:`AgreementConfig.n`, words compared by their token ids, never by text):

- Every hypothesis must start with the committed words: later decodes are forced to begin with
  them. One that does not is a bug upstream and raises :class:`PrefixMismatch`; nothing is ever
  retracted, and the policy's state is left as it was.
- :meth:`LocalAgreement.update` adds a hypothesis. Once ``n`` hypotheses have been seen,
  committed := committed + the longest common word prefix, beyond committed, of the last ``n``
  hypotheses, without the newest hypothesis's last word (see below). It returns the words just
  committed (the newest hypothesis's copies), often none. ``n = 1`` commits each hypothesis at
  once (but its last word); ``n = 2`` is LocalAgreement-2 (Liu et al. 2020; used for simultaneous
  speech translation by Polák et al. 2022, and Whisper-Streaming's policy, Macháček et al. 2023,
  whose ``HypothesisBuffer.flush`` commits the common prefix of the last two hypotheses); a
  larger ``n`` waits for more agreement (more stable, later).
- :meth:`LocalAgreement.finish` ends the segment: the rest of the final hypothesis (the decode of
  the whole segment, forced to start with the committed words) is committed.

Its whole state is data (the committed words and the last ``n - 1`` hypotheses), so it can live
with the session and be applied inside the model's step, in another process:
:meth:`LocalAgreement.resume` rebuilds one from that state, and :func:`words` splits a
hypothesis's token ids into words at its word starts. The engine's ``SimulRequest`` carries it.

Why the newest hypothesis's last word is held back (Whisper-Streaming does not hold it back:
its words are whole words with timestamps from the recogniser): here a word is delimited by the
*next* word's start, and a hypothesis's last word is delimited only by the end of the decode, so
(a) it may still grow when more audio arrives ("interpret" -> "interpreter": the model may go on
with a continuation piece, and a committed word must stay a whole word, since commit points are
word starts); (b) a translation of truncated speech tends to close the sentence, so its last word
often carries a period or comma that a longer input takes away ("works." -> "works, and"). Both
are the same decode agreeing with itself, so n agreeing hypotheses do not rule them out; a
following word does. ``hold_last_word=False`` gives Whisper-Streaming's exact rule.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a hypothesis: its token ids (from a word start up to the next) and its text
    (for display; agreement compares ids only)."""

    ids: tuple[int, ...]
    text: str

    def __post_init__(self) -> None:
        if not self.ids:
            raise ValueError(f"a word has at least one token (text {self.text[:40]!r})")


@dataclass(frozen=True)
class AgreementConfig:
    """``n``: how many consecutive hypotheses must agree on a word (>= 1). ``hold_last_word``:
    never commit the newest hypothesis's last word before :meth:`LocalAgreement.finish`."""

    n: int = 2
    hold_last_word: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")


class PrefixMismatch(RuntimeError):
    """A hypothesis does not start with the committed words (decodes must be forced to): a bug
    upstream. Raised instead of retracting anything."""


def words(
    ids: Sequence[int], word_starts: Sequence[int], text: Callable[[tuple[int, ...]], str] | None = None
) -> tuple[Word, ...]:
    """The words of a hypothesis: its token ids cut before each word start (the first word starts
    at 0 whether or not token 0 is a word start). ``text`` writes a word's text (none: empty)."""
    cuts = sorted({0, *(i for i in word_starts if 0 < i < len(ids)), len(ids)}) if ids else [0]
    out = []
    for a, b in itertools.pairwise(cuts):
        span = tuple(ids[a:b])
        out.append(Word(span, text(span) if text is not None else ""))
    return tuple(out)


class LocalAgreement:
    """The commit policy of one segment and one target (see the module docstring)."""

    def __init__(self, config: AgreementConfig | None = None) -> None:
        self.config = config or AgreementConfig()
        self._committed: list[Word] = []
        self._recent: deque[tuple[Word, ...]] = deque(maxlen=self.config.n)
        self._finished = False

    @classmethod
    def resume(
        cls,
        committed: Sequence[Word],
        recent: Sequence[Sequence[Word]],
        config: AgreementConfig | None = None,
    ) -> LocalAgreement:
        """The policy as it stood after the hypotheses ``recent`` (oldest first; only the last
        ``n - 1`` matter) with ``committed`` committed: its state is those values alone, so a step
        elsewhere (the model's process) continues exactly where the session's policy stood.
        ``update`` on the result is what it would have returned on the original."""
        agreement = cls(config)
        agreement._committed = list(committed)
        keep = agreement.config.n - 1
        for hyp in list(recent)[-keep:] if keep else ():
            agreement._recent.append(tuple(hyp))
        return agreement

    @property
    def committed(self) -> tuple[Word, ...]:
        """Every word committed so far, in order."""
        return tuple(self._committed)

    @property
    def tentative(self) -> tuple[Word, ...]:
        """The newest hypothesis's words beyond the committed ones (may still change)."""
        if not self._recent:
            return ()
        return self._recent[-1][len(self._committed) :]

    @property
    def finished(self) -> bool:
        return self._finished

    def update(self, hypothesis: Sequence[Word]) -> list[Word]:
        """Add a hypothesis of the open segment; return the words it lets us commit (maybe none)."""
        hyp = self._checked(hypothesis)
        self._recent.append(hyp)
        if len(self._recent) < self.config.n:
            return []
        limit = min(len(h) for h in self._recent)
        if self.config.hold_last_word:
            limit = min(limit, len(hyp) - 1)
        start = end = len(self._committed)
        while end < limit and all(h[end].ids == hyp[end].ids for h in self._recent):
            end += 1
        new = list(hyp[start:end])
        self._committed += new
        return new

    def finish(self, final: Sequence[Word]) -> list[Word]:
        """End the segment: commit the rest of the ``final`` hypothesis and return it."""
        hyp = self._checked(final)
        new = list(hyp[len(self._committed) :])
        self._committed += new
        self._recent.clear()
        self._finished = True
        return new

    def _checked(self, hypothesis: Sequence[Word]) -> tuple[Word, ...]:
        if self._finished:
            raise RuntimeError("this segment is finished: start a new LocalAgreement")
        hyp = tuple(hypothesis)
        for i, word in enumerate(self._committed):
            if i >= len(hyp) or hyp[i].ids != word.ids:
                got = "nothing" if i >= len(hyp) else f"{hyp[i].text[:40]!r} {hyp[i].ids[:8]}"
                raise PrefixMismatch(
                    f"hypothesis does not start with the {len(self._committed)} committed words: word {i} "
                    f"is {got}, committed {word.text[:40]!r} {word.ids[:8]} (decodes must be forced to the "
                    "committed prefix)"
                )
        return hyp


def step_commit(
    committed: tuple[int, ...],
    recent: Sequence[tuple[int, ...]],
    hypothesis: tuple[int, ...],
    word_starts: Callable[[tuple[int, ...]], Sequence[int]],
    config: AgreementConfig,
) -> tuple[int, ...]:
    """One step of the policy from its state as data: the committed token ids after
    ``hypothesis`` (which starts with ``committed``: the decode was forced to), given the
    segment's previous hypotheses ``recent`` (token ids, oldest first; the last ``n - 1`` count).

    ``word_starts(ids)``: where a word starts in ``ids`` (the tokenizer's rule). The committed
    tokens count as one word (they need not end where the tokenizer would end a word); each
    hypothesis's words beyond them are cut at its own word starts. A previous hypothesis that does
    not start with the committed tokens cannot agree with anything (the caller kept a stale one).
    Raises :class:`PrefixMismatch` if ``hypothesis`` does not start with ``committed``."""
    head = (Word(committed, ""),) if committed else ()

    def split(ids: tuple[int, ...]) -> tuple[Word, ...] | None:
        if ids[: len(committed)] != committed:
            return None
        rest = [i - len(committed) for i in word_starts(ids) if i > len(committed)]
        return head + words(ids[len(committed) :], rest)

    hyp = split(hypothesis)
    if hyp is None:
        raise PrefixMismatch(
            f"a hypothesis of {len(hypothesis)} tokens does not start with the {len(committed)} committed"
        )
    keep = config.n - 1
    prior = [w for h in (list(recent)[-keep:] if keep else []) if (w := split(tuple(h))) is not None]
    agreement = LocalAgreement.resume(head, prior, config)
    agreement.update(hyp)
    return tuple(tok for word in agreement.committed for tok in word.ids)
