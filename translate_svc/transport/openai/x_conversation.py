"""Our extension ``x_conversation`` on the OpenAI doors: two or more people, each speaking one
language, through one input (``TranslationTask.conversation``). Each segment's language is
identified among the conversation's languages and translated into the others.

- Realtime: ``session.update`` with ``"x_conversation": {"languages": ["en", "es"]}`` in place of
  ``audio.output.language(s)``, and optionally ``"stated_language": "en"`` (the coming audio's
  language as the client states it: no identification runs), ``"voices": {"es": 2}`` and
  ``"speeds": {"es": 0.85}`` (the voice, a speaker id, and the speaking rate of the speech made in
  a language: the speech its party hears); a later update's ``x_conversation`` changes the
  languages (states or clears the language, sets the voices and speeds anew) as one of
  ``audio.output.languages`` changes the targets.
- REST audio: the form field ``x_conversation``, a comma list (``en,es``).

Only the value's shape is checked here (a list of bounded tags, mapped as the door maps any tag);
what a conversation may be (how many languages, which, beside what) is the stream and clip cores'
one check (``session/task/conversation.py``), whose refusals carry ``field`` = ``"conversation"``:
``param_of`` names this door's field for them. Pure; any thread.
"""

from __future__ import annotations

from typing import Any

from translate_svc.errors import ServiceError
from translate_svc.languages import guess_model_code
from translate_svc.session.task.conversation import FIELD
from translate_svc.transport.openai.wire import SESSION_PARAMS, ParamError
from translate_svc.types import PartySpeech

#: where a ``session.update`` names it, and the REST form's field
PARAM = SESSION_PARAMS[FIELD]
FORM_PARAM = "x_conversation"
#: what an ``x_conversation`` object holds
_KEYS = frozenset({"languages", "stated_language", "voices", "speeds"})
#: the most tags read (the core's bound is lower: it says how many it takes), and a tag's length
MAX_TAGS = 16
MAX_TAG_CHARS = 35


def tags_of(session: dict[str, Any]) -> list[str] | None:
    """The language tags of a ``session.update``'s ``x_conversation`` as the client named them;
    None where absent or null (not a conversation)."""
    value = session.get("x_conversation")
    if value is None:
        return None
    languages = value.get("languages") if isinstance(value, dict) and set(value) <= _KEYS else None
    if (
        not isinstance(languages, list)
        or len(languages) > MAX_TAGS
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_CHARS for t in languages)
    ):
        raise ParamError(
            'x_conversation must be an object such as {"languages": ["en", "es"]} (one language tag per '
            f'party, at most {MAX_TAG_CHARS} characters each; optionally its "stated_language"), or null '
            "for fixed output languages",
            PARAM,
        )
    return list(languages)


def stated_of(session: dict[str, Any], tags: list[str] | None) -> str | None:
    """``x_conversation.stated_language`` (a push-to-talk party's language: no identification runs
    while it is set), as the client named it: one of ``tags``; None where absent or null."""
    value = session.get("x_conversation")
    stated = value.get("stated_language") if isinstance(value, dict) else None
    if stated is None or tags is None:
        return None
    if not isinstance(stated, str) or stated not in tags:
        raise ParamError(
            f"x_conversation.stated_language must be one of its languages ({', '.join(tags)}) as written "
            "there, or null to identify each turn's language",
            PARAM,
        )
    return stated


def parties_of(session: dict[str, Any], tags: list[str] | None) -> tuple[dict[str, int], dict[str, float]]:
    """``x_conversation.voices`` and ``speeds`` as the client named them: objects keyed by its
    languages' tags, a speaker id (an integer) and a speaking rate (a number) each; empty where
    absent or null. Their ranges are the core's (``task/conversation.py check_parties``)."""
    value = session.get("x_conversation")
    if tags is None or not isinstance(value, dict):
        return {}, {}
    named: list[dict[str, Any]] = []
    for key, kinds, example in (("voices", (int,), '{"es": 2}'), ("speeds", (int, float), '{"es": 0.85}')):
        given = value.get(key)
        if given is None:
            named.append({})
            continue
        if not (
            isinstance(given, dict)
            and all(t in tags for t in given)
            and all(isinstance(v, kinds) and not isinstance(v, bool) for v in given.values())
        ):
            raise ParamError(
                f"x_conversation.{key} must be an object keyed by its languages' tags as written there "
                f"({', '.join(tags)}), such as {example}, or null",
                PARAM,
            )
        named.append(dict(given))
    return named[0], named[1]


def parties(voices: dict[str, int], speeds: dict[str, float]) -> PartySpeech:
    """The voices and speeds keyed by tags as the core's ``PartySpeech`` (model codes)."""
    return PartySpeech(
        tuple((guess_model_code(t), v) for t, v in voices.items()),
        tuple((guess_model_code(t), r) for t, r in speeds.items()),
    )


def wire(tags: list[str], stated: str | None, voices: dict[str, int], speeds: dict[str, float]) -> dict[str, Any]:
    """A conversation as a ``session`` object shows it."""
    return {
        "languages": tags,
        **({"stated_language": stated} if stated is not None else {}),
        **({"voices": voices} if voices else {}),
        **({"speeds": speeds} if speeds else {}),
    }


def form_tags(value: str | None) -> list[str] | None:
    """The REST form's ``x_conversation`` (``en,es``) as tags; None where absent."""
    if value is None:
        return None
    tags = [t.strip() for t in value.split(",")]
    if len(tags) > MAX_TAGS or not all(0 < len(t) <= MAX_TAG_CHARS for t in tags):
        raise ParamError(
            "x_conversation must be a comma list of language tags, one per party, such as en,es "
            f"(at most {MAX_TAG_CHARS} characters each)",
            FORM_PARAM,
        )
    return tags


def codes(tags: list[str]) -> tuple[str, ...]:
    """The model codes of ``tags`` (``"es"`` and ``"spa"`` are both Spanish)."""
    return tuple(guess_model_code(t) for t in tags)


def param_of(e: ServiceError, param: str) -> str | None:
    """``param`` for a refusal of the conversation's one check, else None."""
    return param if e.field == FIELD else None
