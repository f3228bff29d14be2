"""A conversation's choice of each segment's language: the identifier's scores, leaning on the
previous turn's language where they are weak.

A short turn ("yes", "sí", "d'accord") gives the identifier little to go on, and its answer on
a second of audio is often wrong; an unsure answer is no better. So a conversation's segment may
carry a ``TurnPrior``: the language of the stream's previous turn. The rule (``choose_language``),
applied where the model plans the segment's rows (``model_api/rows.py``), so the transcript and
the translations follow it:

- the identifier's top language is taken when it is the previous turn's language, or when there
  is no previous turn;
- otherwise the previous turn's language is kept when the top language beats it by less than
  ``TurnPrior.margin`` (in probability): ``limits.conversation_switch_margin`` for a segment of
  ``limits.conversation_short_turn_s`` or longer, the wider ``conversation_short_turn_margin`` for
  a shorter one (a lean, not a lock: a sure identifier still switches on a quick reply in the
  other party's language, which alternating turns often are);
- else the top language is taken (the speaker changed language).

A stated language (a client's push-to-talk, ``TranslationTask.stated_language``) skips the
identifier altogether. ``language_source`` says afterwards which of the three decided. Plain
values; pure; any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from translate_svc.types import LanguageSource


@dataclass(frozen=True)
class TurnPrior:
    """The previous turn's language, and how far a segment leans on it (``choose_language``)."""

    #: the language the stream's previous turn was heard in (one of the conversation's)
    language: str
    #: the probability by which the identifier's top language must beat the previous one to win
    #: (1: the previous language is always kept)
    margin: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"a turn prior's margin is a probability difference (0..1), got {self.margin}")


def top_language(scores: Mapping[str, float]) -> str:
    """The identifier's own choice: the highest score (the first such in ``scores``' order)."""
    if not scores:
        raise ValueError("a language chosen from no scores")
    return max(scores, key=scores.__getitem__)


def choose_language(scores: Mapping[str, float], prior: TurnPrior | None) -> str:
    """The segment's language from the identifier's ``scores`` (probability per candidate) and the
    previous turn (``prior``; None: none, or no leaning): see the module docstring."""
    best = top_language(scores)
    if prior is None or prior.language == best or prior.language not in scores:
        return best
    if scores[best] - scores[prior.language] < prior.margin:
        return prior.language
    return best


def language_source(language: str, scores: Mapping[str, float] | None) -> LanguageSource:
    """What decided ``language``: ``STATED`` without scores (no identification ran), the
    identifier where it is its top language, else the previous turn (``choose_language`` kept it)."""
    if not scores:
        return LanguageSource.STATED
    return LanguageSource.IDENTIFIED if language == top_language(scores) else LanguageSource.PREVIOUS_TURN


@dataclass(frozen=True)
class TurnRule:
    """The server's rule for leaning on the previous turn (``limits.conversation_short_turn_s``,
    ``conversation_switch_margin`` and ``conversation_short_turn_margin``)."""

    short_turn_s: float = 1.5
    switch_margin: float = 0.3
    short_turn_margin: float = 0.6

    def prior(self, previous: str, seconds: float) -> TurnPrior:
        """The prior of a segment of ``seconds`` after a turn heard in ``previous``: the wider
        margin when it is shorter than ``short_turn_s`` (0: none is)."""
        short = seconds < self.short_turn_s
        return TurnPrior(previous, max(self.switch_margin, self.short_turn_margin) if short else self.switch_margin)
