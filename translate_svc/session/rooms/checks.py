"""What a room asks of its parties before anything is held (``registry.py``, the drivers, the
doors): a room's name, a participant's id, a speaking stream's config and a listener's speaking
rate. Pure: no state.
"""

from __future__ import annotations

import re

from translate_svc.errors import InvalidInput, shown
from translate_svc.session.events import StreamConfig
from translate_svc.session.rooms.listener import snap_rate
from translate_svc.types import OptionError, check_speed

#: a room's name: part of a URL (``/listen/<room>``) and of a metrics-free log line
ROOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: a participant's id: a short plain word
PARTICIPANT = re.compile(r"[A-Za-z0-9._:@-]{0,64}")


def check_speaker(config: StreamConfig) -> None:
    """What a room speaker's config needs: a source language (or detection, or a conversation's
    languages), so that it runs as ASR only while nobody listens; segment mode (simultaneous
    commits are not carried into rooms). A conversation speaks into a room too: each segment is
    identified among its languages and translated into the others and every language listened in."""
    if not config.source_language and config.detect is None and config.conversation is None:
        raise InvalidInput(
            "a stream that speaks into a room needs source_language (or language_detection): it runs with no "
            "target while nobody listens"
        )
    if config.simultaneous is not None:
        raise InvalidInput(
            "simultaneous mode is not available in a room yet: leave `simultaneous` unset for a stream with `room`"
        )


def check_room_name(name: str) -> None:
    if not ROOM_NAME.fullmatch(name):
        raise InvalidInput(
            f"room name {shown(name)} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )


def check_participant(participant: str) -> None:
    if not PARTICIPANT.fullmatch(participant):
        raise InvalidInput(
            "participant is not valid: use at most 64 letters, digits, '.', '_', ':', '@' or '-' (or none)"
        )


def rate_of(speed: float | None) -> float | None:
    """A listener's speaking rate: none, or one in ``SPEED_MIN``..``SPEED_MAX`` (INVALID_ARGUMENT)
    snapped to the rate grid (``listener.snap_rate``: steps of 0.25), so that listeners at nearly
    one rate (0.5, 0.500001, ...) share its rendition, whichever door they came through; each
    result's ``speech_rate`` tells the listener the rate it got."""
    if speed is None:
        return None
    try:
        return snap_rate(check_speed(speed, "speed"))
    except OptionError as e:
        raise InvalidInput(str(e)) from None
