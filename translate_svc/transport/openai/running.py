"""A running realtime session's ``session.update``, sans I/O: what it may change once the stream
runs (its output languages, or a conversation's languages, and the speaking rate), as the stream
core's ``Update``, or why it is refused. A refusal is answered (an ``error`` event into
``replies``) and is not fatal: the session goes on as it was. What cannot change (``x_room``, the
terms) is refused here too. ``protocol.py`` calls it; event loop only (one per session).
"""

from __future__ import annotations

from typing import Any, Protocol

from translate_svc.languages import guess_model_code
from translate_svc.session.events import RoomJoin, Update
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai import x_conversation, x_terms
from translate_svc.transport.openai.session_update import room_of, speed_of, text_only
from translate_svc.transport.openai.wire import ParamError, error_event, wire_event
from translate_svc.types import ModelCard


class Running(Protocol):
    """What an update reads of the running session (``protocol.RealtimeProtocol`` has it)."""

    room: RoomJoin | None
    terms: x_terms.SessionTerms
    limits: LimitsSettings
    languages: list[str]
    card: ModelCard | None
    speech: bool
    speed: float
    conversation: bool
    stated: str | None
    voices: dict[str, int]
    speeds: dict[str, float]

    def session(self) -> dict[str, Any]: ...


ROOM_FIXED = "x_room cannot change once the session runs (this update was not used): open another session"


def update(
    p: Running, session: dict[str, Any], languages: list[str], event_id: str | None, replies: list[str]
) -> tuple[Update, list[str]] | None:
    """``session`` (checked: ``session_update.checked``) of the running session ``p`` as an
    ``Update`` and the tags it asks for (the protocol keeps them until the core answers), or None:
    nothing to change (``session.updated`` at once) or refused (an ``error``), in ``replies``."""
    if "x_room" in session and room_of(session) != p.room:  # answered, not fatal
        replies.append(error_event(ROOM_FIXED, "invalid_request_error", "invalid_value", event_id=event_id))
        return None
    refused = x_terms.changed(session, p.terms, p.limits)
    targets: tuple[str, ...] | None = None
    talk: list[str] | None = None
    if refused is None and "x_conversation" in session:
        talk, refused = _talk_change(p, session)
    if refused is None and talk is None and languages and list(languages) != p.languages:
        targets = tuple(guess_model_code(x) for x in languages)
        problem = text_only(p.card, p.speech, languages, targets)
        refused = ParamError(problem, "") if problem else x_terms.dropped(p.terms, targets, languages)
    speed = p.speed
    if refused is None:
        try:
            speed = speed_of(session, p.speed)
        except ParamError as e:
            refused = e
    if refused is None and (targets is not None or talk is not None or speed != p.speed):
        asked = talk if talk is not None else languages if targets is not None else p.languages
        spoken = x_conversation.codes(talk) if talk is not None else None
        stated = x_conversation.stated_of(session, talk) if talk is not None else None
        said = guess_model_code(stated) if stated else None
        parties = x_conversation.parties(*x_conversation.parties_of(session, talk))
        return Update(
            targets,
            speed=speed if speed != p.speed else None,
            conversation=spoken,
            stated_language=said,
            parties=parties,
        ), list(asked)
    if refused is not None:  # answered, not fatal: the session goes on as it was
        kind, code = "invalid_request_error", "invalid_value"
        replies.append(error_event(refused.message, kind, code, event_id=event_id, param=refused.param or None))
        return None
    replies.append(wire_event("session.updated", session=p.session()))
    return None


def _talk_change(p: Running, session: dict[str, Any]) -> tuple[list[str] | None, ParamError | None]:
    """A running session's ``x_conversation``: its new languages (None: unchanged), or why the
    update is refused (a conversation stays one: null cannot end it midway; a session of fixed
    output languages asking for one is refused by the stream core, which keeps a stream's kind); its
    stated language set, changed or cleared, and its voices or speeds, are a change too."""
    try:
        tags = x_conversation.tags_of(session)
        stated = x_conversation.stated_of(session, tags)
        voices, speeds = x_conversation.parties_of(session, tags)
    except ParamError as e:
        return None, e
    if tags is None:
        if not p.conversation:
            return None, None
        return None, ParamError(
            "x_conversation cannot be dropped once the session runs (this update was not used): send its "
            "whole new list of languages, or open another session for fixed output languages",
            x_conversation.PARAM,
        )
    same = tags == p.languages and stated == p.stated and (voices, speeds) == (p.voices, p.speeds)
    return (None if same and p.conversation else tags), None
