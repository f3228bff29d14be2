"""What one ``session.update`` may hold, checked before anything in it is converted (a tag mapped, a
value echoed; security finding N2): its shape, counts and lengths, our extensions' values, and whether speech
can be had in the languages it names. Pure; ``InvalidInput`` messages name no client value. The
protocol (``protocol.py``) turns what passes into the stream's config."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from translate_svc.errors import InvalidInput, shown
from translate_svc.languages import guess_model_code
from translate_svc.session.events import MAX_LEAD_IN_MS, RoomJoin
from translate_svc.transport.openai.wire import ParamError
from translate_svc.types import SPEED_MAX, SPEED_MIN, ModelCard, OptionError, Profanity, check_speed

#: the targets where the door is given no limit (``limits.max_target_languages``' ceiling), a
#: language tag's characters (BCP-47 tags in use are far shorter), the source language's
#: (``"auto:"`` and a few tags), and ``audio.input.transcription``'s JSON (it is echoed back)
MAX_LANGUAGES = 32
MAX_TAG_CHARS = 35
MAX_SOURCE_CHARS = 200
MAX_TRANSCRIPTION_CHARS = 1024
#: the longest ``x_resume`` taken (a session's settings and a stream position: URL-safe base64 of
#: JSON, zlib-compressed when that is shorter), and the most bytes it may inflate to
MAX_RESUME_CHARS = 8192
MAX_RESUME_JSON_BYTES = 256 * 1024


def checked(session: Any, max_languages: int) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``session``, ``audio.input`` and the output languages of a ``session.update``, their
    shapes, counts and lengths checked before anything is converted (``InvalidInput``)."""
    session = _object(session, "session")
    audio = _object(session.get("audio"), "session.audio")
    out = _object(audio.get("output"), "session.audio.output")
    inp = _object(audio.get("input"), "session.audio.input")
    languages = out.get("languages") or ([out["language"]] if out.get("language") else [])
    if not isinstance(languages, list):
        raise InvalidInput('audio.output.languages must be a list of language tags such as ["es", "fr"]')
    if len(languages) > max_languages:
        raise InvalidInput(
            f"{len(languages)} output languages requested; this server allows at most "
            f"{max_languages} per session (ServerLimits.max_target_languages)"
        )
    for n, tag in enumerate(languages):
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_CHARS:
            raise InvalidInput(
                f'audio.output language {n} must be a language tag such as "es" (at most {MAX_TAG_CHARS} characters)'
            )
    source = inp.get("language")
    if source and (not isinstance(source, str) or len(source) > MAX_SOURCE_CHARS):
        raise InvalidInput(
            f'audio.input.language must be a language tag such as "en", or "auto" (at most {MAX_SOURCE_CHARS} '
            "characters)"
        )
    transcription = inp.get("transcription")
    if transcription is not None and (
        not isinstance(transcription, dict)
        or len(transcription) > 16
        or len(json.dumps(transcription)) > MAX_TRANSCRIPTION_CHARS
    ):
        raise InvalidInput(
            'audio.input.transcription must be an object such as {} or {"model": "whisper-1"} '
            f"(at most {MAX_TRANSCRIPTION_CHARS} characters of JSON), or null for no transcript"
        )
    return session, inp, languages


def extensions(session: dict[str, Any], captions_ms: int, step_ms: int, speech: bool) -> tuple[int, int, bool]:
    """Our extensions of a ``session.update`` (each absent one as it was): ``x_captions_interval_ms``,
    ``x_simultaneous_step_ms`` and ``x_speech``."""
    captions = session.get("x_captions_interval_ms", captions_ms)
    if not isinstance(captions, int) or isinstance(captions, bool) or captions < 0:
        raise InvalidInput("x_captions_interval_ms must be a whole number of milliseconds (0: no live captions)")
    step = session.get("x_simultaneous_step_ms", step_ms)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise InvalidInput(
            "x_simultaneous_step_ms must be a whole number of milliseconds (0: off, a segment's "
            "translation once a pause ends it)"
        )
    spoken = session.get("x_speech", speech)
    if not isinstance(spoken, bool):
        raise InvalidInput("x_speech must be true or false (false: translated text only, no speech)")
    return captions, step, spoken


def profanity_of(session: dict[str, Any], current: Profanity | None) -> Profanity | None:
    """Our extension ``x_profanity`` (``"off"``, ``"mask"`` or ``"remove"``; null: the tenant's
    default): the profanity filter (docs/api.md); absent: as it was."""
    value = session.get("x_profanity", current.value if current else None)
    if value is not None and value not in {p.value for p in Profanity}:
        raise InvalidInput('x_profanity must be "off", "mask" or "remove" (or null: the tenant\'s default)')
    return Profanity(value) if value is not None else None


#: where a ``session.update`` sets the speaking rate: OpenAI's GA realtime sessions name it
#: ``audio.output.speed`` (the shape this door speaks), its beta sessions ``speed`` at the top
SPEED_PARAM = "session.audio.output.speed"
BETA_SPEED_PARAM = "session.speed"


def speed_of(session: dict[str, Any], current: float) -> float:
    """The speaking rate a ``session.update`` asks for: ``audio.output.speed``, or the
    beta sessions' top-level ``speed`` (both: they must agree); absent: as it was, null: 1 (the
    model's own). ``ParamError`` naming the field as the client wrote it and our range, which is
    not OpenAI's 0.25..1.5 (docs/openai-compat.md)."""
    out = (session.get("audio") or {}).get("output") or {}  # shapes checked by ``checked``
    given = [
        (param, where[key])
        for param, where, key in ((SPEED_PARAM, out, "speed"), (BETA_SPEED_PARAM, session, "speed"))
        if key in where
    ]
    if not given:
        return current
    if len(given) == 2 and given[0][1] != given[1][1]:
        raise ParamError(
            "audio.output.speed and speed (the beta sessions' name) say different rates: send one of them",
            BETA_SPEED_PARAM,
        )
    param, value = given[0]
    if value is None:
        return 1.0
    field = param.removeprefix("session.")
    try:
        return check_speed(value, field)
    except OptionError as e:  # its message shows the value: a number's own (bounded), never a client's text
        number = isinstance(value, int | float) and not isinstance(value, bool) and len(repr(value)) <= 24
        message = str(e) if number else f"{field} must be a number from {SPEED_MIN} to {SPEED_MAX}"
        raise ParamError(message, param) from None


def room_of(session: dict[str, Any]) -> RoomJoin | None:
    """Our extension ``x_room`` (docs/rooms.md): ``{"name": "town-hall", "participant": "mayor"}``
    (participant optional) speaks into that room; absent or null: no room. Only its shape is checked
    here: the room's own rules (name, rights, caps) are the stream core's."""
    room = session.get("x_room")
    if room is None:
        return None
    if (
        not isinstance(room, dict)
        or not isinstance(room.get("name"), str)
        or not isinstance(room.get("participant", ""), str)
        or set(room) - {"name", "participant"}
        or len(room["name"]) > 64
        or len(room.get("participant", "")) > 64
    ):
        raise InvalidInput(
            'x_room must be an object such as {"name": "town-hall", "participant": "mayor"} (participant '
            "optional; at most 64 characters each), or null for no room"
        )
    return RoomJoin(room["name"], room.get("participant", ""))


def text_only(card: ModelCard | None, speech: bool, tags: list[str], targets: tuple[str, ...]) -> str | None:
    """Why speech cannot be had for these output languages (None: it can, speech is off, or the
    model is not known yet)."""
    if not speech or card is None:
        return None
    for tag, code in zip(tags, targets, strict=True):
        if code in card.text_codes and code not in card.speech_codes:
            return (
                f'output language {tag[:MAX_TAG_CHARS]!r} has text output only: set "x_speech": false in '
                "session.update for translated text without speech (this server's extension), or pick a "
                "language with speech output"
            )
    return None


def _object(value: Any, field: str) -> dict[str, Any]:
    """``value`` as a JSON object (null or absent: an empty one), or ``InvalidInput``."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object")
    return value


def source_or_detection(value: str | None) -> tuple[str, tuple[str, ...] | None]:
    """The source language extension as our config: a tag (``"en"``) is the source; ``"auto"``
    detects it among every language the identifier picks, ``"auto:en,es"`` among those."""
    if not value:
        return "", None
    head, _, rest = value.partition(":")
    if head.strip().lower() != "auto":
        return guess_model_code(value), None
    return "", tuple(guess_model_code(t) for t in rest.split(",") if t.strip())


def noise_reduction(value: Any) -> str | None:
    """``audio.input.noise_reduction``: ``{type: "near_field" | "far_field"}`` (no type:
    near_field) runs RNNoise before the VAD (either type: one suppressor); null: off."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"type"}:
        raise InvalidInput('audio.input.noise_reduction must be null or {"type": "near_field" or "far_field"}')
    kind = value.get("type", "near_field")
    if kind not in ("near_field", "far_field"):
        raise InvalidInput('audio.input.noise_reduction.type must be "near_field" or "far_field"')
    return str(kind)


def resume_value(session: dict[str, Any], token: str, next_id: int, offset_ms: int) -> str | None:
    """A drained session's ``x_resume``: its settings (as a ``session.update`` holds them) and where
    its stream was translated to, as URL-safe base64 of JSON, compressed when that is shorter
    (terms make it long); None when even that is over ``MAX_RESUME_CHARS`` (it rides in a URL)."""
    text = json.dumps({"session": session, "resume": [token, next_id, offset_ms]}, separators=(",", ":")).encode()
    packed = zlib.compress(text, 9)
    value = base64.urlsafe_b64encode(packed if len(packed) < len(text) else text).decode()
    return value if len(value) <= MAX_RESUME_CHARS else None


def resume_lead_in(raw: str | None, offset_ms: int) -> int:
    """The ``x_resume_lead_in_ms`` query parameter: how many ms before ``x_resume_offset_ms`` the
    resumed session's audio starts (they were translated; only listened to, so that the VAD enters
    the offset in speech as the drained session's did: gRPC's ``ResumeFrom.lead_in_ms``)."""
    if raw is None:
        return 0
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and int(raw) <= min(MAX_LEAD_IN_MS, offset_ms)):
        raise InvalidInput(
            f"x_resume_lead_in_ms {shown(raw)} is not a whole number of ms from 0 to {min(MAX_LEAD_IN_MS, offset_ms)} "
            "(at most 10000, and not before the stream's start): send the audio from x_resume_offset_ms less it"
        )
    return int(raw)


def resumed(value: str) -> tuple[Any, str, int, int]:
    """The settings and stream position of an ``x_resume`` (``resume_value``'s; also an older
    server's, uncompressed), or ``ValueError``. Nothing in it is trusted: the settings are checked
    as a ``session.update``'s."""
    try:
        if len(value) > MAX_RESUME_CHARS:
            raise ValueError
        data = base64.urlsafe_b64decode(value.encode("ascii"))
        if data[:1] != b"{":  # compressed: inflated within its bound
            inflate = zlib.decompressobj()
            data = inflate.decompress(data, MAX_RESUME_JSON_BYTES)
            if inflate.unconsumed_tail or not inflate.eof:
                raise ValueError
        state = json.loads(data)
        token, next_id, offset_ms = state["resume"]
        if not (isinstance(token, str) and type(next_id) is int and type(offset_ms) is int):
            raise ValueError
        return state["session"], token, next_id, offset_ms
    except (KeyError, TypeError, UnicodeError, binascii.Error, zlib.error, RecursionError) as e:
        raise ValueError("not an x_resume") from e
