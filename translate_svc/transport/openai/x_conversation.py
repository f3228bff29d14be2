"""Our extension ``x_conversation`` on the OpenAI doors: two or more people, each speaking one
language, through one input (``TranslationTask.conversation``). Each segment's language is
identified among the conversation's languages and translated into the others.

- Realtime: ``session.update`` with ``"x_conversation": {"languages": ["en", "es"]}`` in place of
  ``audio.output.language(s)``, and optionally ``"stated_language": "en"`` (the coming audio's
  language as the client states it: no identification runs); a later update's ``x_conversation``
  changes the languages (and states or clears the language) as one of ``audio.output.languages``
  changes the targets.
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

#: where a ``session.update`` names it, and the REST form's field
PARAM = SESSION_PARAMS[FIELD]
FORM_PARAM = "x_conversation"
#: what an ``x_conversation`` object holds
_KEYS = frozenset({"languages", "stated_language"})
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


def wire(tags: list[str], stated: str | None) -> dict[str, Any]:
    """A conversation as a ``session`` object shows it."""
    return {"languages": tags, **({"stated_language": stated} if stated is not None else {})}


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
