"""What a room speaker's client is told of the task its stream runs: its own targets, not the
languages its room's listeners added (the stream runs with both). Apart from ``change.py`` so that
the rooms' core, which imports no request check, can say it. Pure; any thread."""

from __future__ import annotations

import dataclasses

from translate_svc.types import TranslationTask


def as_told(task: TranslationTask, own_targets: tuple[str, ...]) -> TranslationTask:
    """``task`` as its client is told it (``StreamStarted``): its own targets (a conversation's:
    its own languages, not those its room's listeners add)."""
    return dataclasses.replace(task, target_languages=own_targets, listened=())
