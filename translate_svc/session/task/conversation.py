"""A conversation's checks: two or more people, each speaking one language, through one input.

Each segment's language is identified among the conversation's languages only, and it is
translated into the others (``ModelInput.conversation``, model_api/rows.py). A conversation
replaces fixed targets, a source language and language detection, so a request names it or them,
never both; it needs the spoken-language identifier. Called by ``checks.resolve_task`` (the one
builder of a task) for a request and for an Update; every refusal names the field and says what
to send instead. Pure; any thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from translate_svc.errors import InvalidInput, NotInstalled, ServiceError, shown
from translate_svc.session.task.counts import check_list, conversation_bound, examples
from translate_svc.settings import LimitsSettings
from translate_svc.types import (
    NO_PARTIES,
    ModelCard,
    OptionError,
    OutputOptions,
    PartySpeech,
    SimultaneousOptions,
    check_speed,
)

P = ParamSpec("P")
R = TypeVar("R")

#: the refusals' ``ServiceError.field``
FIELD = "conversation"
#: what a request without the identifier is told (``language_detection`` says the same)
HOW_TO_GET_IDENTIFIER = "install it with `translate-svc download-lid-model` (model_cache/mms-lid-126) and restart"


def needs_identifier(card: ModelCard, field: str, instead: str) -> None:
    """FAILED_PRECONDITION (``NotInstalled``) on a server without the spoken-language identifier:
    ``field`` needs it; ``instead``: what the caller may send meanwhile."""
    if card.identifier is None:
        raise NotInstalled(
            f"{field} needs the spoken-language identifier, and this server has none: "
            f"{HOW_TO_GET_IDENTIFIER}, or send {instead} instead"
        )


def _field_named(check: Callable[P, R]) -> Callable[P, R]:
    """``check`` whose refusals carry ``field`` = ``FIELD`` (a door names its own spelling of it)."""

    @functools.wraps(check)
    def tagged(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return check(*args, **kwargs)
        except ServiceError as e:
            e.field = FIELD
            raise

    return tagged


@_field_named
def check_conversation(
    card: ModelCard,
    limits: LimitsSettings,
    languages: Sequence[str],
    *,
    source: str,
    targets: Sequence[str],
    detect: Sequence[str] | None,
    output: OutputOptions,
    simultaneous: SimultaneousOptions | None,
    stated: str | None = None,
    parties: PartySpeech = NO_PARTIES,
) -> tuple[str, ...]:
    """The conversation's languages, checked: alone (no target_languages, source_language or
    language_detection beside it), 2..``conversation_bound`` distinct codes, each one the model
    translates into (and speaks, where speech is asked) and the identifier can pick, in segment
    mode, on a server with an identifier; ``stated`` (a language the client states for the coming
    audio), if any, one of them; ``parties``' voices and rates (``check_parties``). Each
    refusal's ``field`` is ``FIELD``."""
    beside = [
        name
        for name, given in (
            ("target_languages", bool(targets)),
            ("source_language", bool(source)),
            ("language_detection", detect is not None),
        )
        if given
    ]
    if beside:
        raise InvalidInput(
            f"conversation and {beside[0]} are both set: drop {' and '.join(beside)} (a conversation identifies "
            "each segment's language among conversation.languages and translates it into the others)"
        )
    langs = list(languages)
    most = conversation_bound(limits)
    check_list("conversation.languages", "conversation languages", langs, most)
    if len(langs) < 2:
        raise InvalidInput(
            f"conversation.languages has {len(langs)} language(s): name two to {most}, one per party "
            '(e.g. ["eng", "spa"]); for one language send target_languages instead'
        )
    if simultaneous is not None:
        raise InvalidInput("conversation is not available in simultaneous mode yet: leave `simultaneous` unset")
    needs_identifier(card, "conversation", "target_languages with source_language")
    detectable, speech = card.detectable_codes, card.speech_codes
    for lang in langs:
        if lang not in card.text_codes or lang not in detectable:
            raise InvalidInput(
                f"conversation.languages: {shown(lang)} is not a language this server translates and its identifier "
                f"can pick: use codes ListLanguages marks detectable ({len(detectable)}, e.g. {examples(detectable)})"
            )
        if output.speech and lang not in speech:
            raise InvalidInput(
                f"conversation.languages: {shown(lang)} has text output only: set output.speech=false or pick "
                f"languages with speech_output in ListLanguages (e.g. {examples(speech)})"
            )
    if stated is not None and stated not in langs:
        raise InvalidInput(
            f"conversation.stated_language is {shown(stated)}, not one of conversation.languages "
            f"({', '.join(langs)}): state one of those, or leave it empty to identify each segment's language"
        )
    check_parties(card, langs, parties, output)
    return tuple(langs)


def check_parties(card: ModelCard, languages: Sequence[str], parties: PartySpeech, output: OutputOptions) -> None:
    """A conversation's voice and rate per party (``PartySpeech``, keyed by the language the party
    hears): each key one of ``languages``, named once in each map; a voice one the model has; a
    rate in the speaking rates' range, and none while dubbing to the source's clock (``output.fit``
    chooses each segment's rate)."""
    for name, named in (
        ("voices", [lang for lang, _ in parties.voices]),
        ("speeds", [lang for lang, _ in parties.speeds]),
    ):
        for lang in named:
            if lang not in languages:
                raise InvalidInput(
                    f"conversation.{name} names {shown(lang)}, not one of conversation.languages "
                    f"({', '.join(languages)}): key each by the language its party hears"
                )
        if len(set(named)) != len(named):
            raise InvalidInput(f"conversation.{name} names a language twice: give each language one value")
    for lang, voice in parties.voices:
        if not 0 <= voice < card.num_speakers:
            raise InvalidInput(f"conversation.voices[{lang}] is {voice}: use 0..{card.num_speakers - 1}")
    for lang, rate in parties.speeds:
        try:
            check_speed(rate, f"speeds[{lang}]")
        except OptionError as e:
            raise InvalidInput(f"conversation.{e.field} {e.problem}") from None
    if parties.speeds and output.fit is not None:
        raise InvalidInput(
            "conversation.speeds and fit are both set: dubbing to the source's clock chooses each segment's rate; "
            "drop one"
        )
