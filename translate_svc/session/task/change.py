"""The one writer of a call's task (``TranslationTask``) after its request is checked: a running
stream's change (its client's Update, its room's retarget: both a ``TaskChange`` applied to the
task it runs with now), the tenant's defaults where the request left them unset, and the stored
glossaries' entries after its own terms. ``checks.resolve_task`` builds a task; only this package
rewrites one (a test holds that no other module of the service does), so a change never drops what
it does not name. Pure; any thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from translate_svc.errors import InvalidInput
from translate_svc.glossaries.compiled import StoredTerms, term_key
from translate_svc.session.task import checks
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings import LimitsSettings
from translate_svc.types import NO_PARTIES, ModelCard, PartySpeech, Term, TranslationTask


@dataclass(frozen=True)
class TaskChange:
    """One change to a running stream's task: what it names is set, what it leaves None is kept.
    A client's Update names targets (or a conversation's languages), voice and rate; a room's
    retarget names targets (a conversation's: the languages listened in beside its own) and
    renditions."""

    targets: tuple[str, ...] | None = None
    speaker_id: int | None = None
    speed: float | None = None
    #: (language, speaking rate) pairs a room speaker's speech is made again at
    renditions: tuple[tuple[str, float], ...] | None = None
    #: a conversation's languages, the whole new list (``TranslationTask.conversation``)
    conversation: tuple[str, ...] | None = None
    #: with ``conversation``: its stated language from now on (None: none; without
    #: ``conversation`` the task's is kept)
    stated_language: str | None = None
    #: with ``conversation``: its voices and rates per party from now on (without ``conversation``
    #: the task's are kept)
    parties: PartySpeech = NO_PARTIES
    #: a conversation's room's retarget: the languages its listeners hear beside the
    #: conversation's own (``TranslationTask.listened``; None: kept)
    listened: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        named = (self.targets, self.speaker_id, self.speed, self.renditions, self.conversation, self.listened)
        return all(x is None for x in named)


def change(card: ModelCard, limits: LimitsSettings, task: TranslationTask, what: TaskChange) -> TranslationTask:
    """``task`` with ``what`` applied, checked as a config is (``checks.resolve_task``: languages,
    ``max_target_languages``, the voice's and the rate's ranges, simultaneous mode); everything
    else stays as it is in ``task`` (a room speaker's Update keeps the rates its listeners chose;
    its room's retarget keeps the voice and rate its client set). The renditions kept are those of
    the targets it keeps. A conversation's languages change as targets do (each later segment
    is identified among the new ones); a stream keeps its kind (a conversation, or fixed
    targets). Raises ``InvalidInput``."""
    targets, speaker_id, speed, renditions = what.targets, what.speaker_id, what.speed, what.renditions
    if what.empty:
        raise InvalidInput(
            "the update sets nothing: set `targets` (the whole new list), `conversation`, `speaker_id` or `speed`, "
            "or several"
        )
    _check_kind(task, what)
    talk = task.conversation if what.conversation is None else what.conversation
    stated = task.stated_language if what.conversation is None else what.stated_language
    parties = task.parties if what.conversation is None else what.parties
    listened = task.listened if what.listened is None else what.listened
    with checks.options_at("output."):  # the options check their own values (a rate out of range)
        output = task.output if speaker_id is None else dataclasses.replace(task.output, speaker_id=speaker_id)
        output = output if speed is None else dataclasses.replace(output, speed=speed)
    own = task.terms[: len(task.terms) - task.stored_terms]
    new = checks.resolve_task(
        card,
        limits,
        "" if talk is not None else task.source_language or "",
        [] if talk is not None else list(task.target_languages if targets is None else targets),
        output,
        None if talk is not None or task.detect is None else list(task.detect),
        own,
        task.simultaneous,
        task.ear,
        talk,
        stated,
        parties,
        listened if talk is not None else (),
    )
    # the stored glossaries' entries (read as the stream started) for the targets it keeps: its
    # own terms are the ones they were matched against then, so none is dropped again
    keeps = set(new.target_languages)
    kept = tuple(t for t in task.terms[len(own) :] if t.target_language in keeps)
    rates = tuple(r for r in (task.renditions if renditions is None else renditions) if r[0] in keeps)
    return dataclasses.replace(new, terms=new.terms + kept, stored_terms=new.stored_terms + len(kept), renditions=rates)


def _check_kind(task: TranslationTask, what: TaskChange) -> None:
    """A conversation's update changes its languages, not targets; a stream of fixed targets does
    not become a conversation midway (its source or detection would change with it)."""
    if task.conversation is not None and what.targets is not None:
        raise InvalidInput(
            "this stream is a conversation: change its languages with `conversation` (the whole new list), "
            "not `targets`"
        )
    if task.conversation is None and what.conversation is not None:
        raise InvalidInput(
            "this stream has fixed targets, not a conversation: change them with `targets`, or open a new stream "
            "with `conversation`"
        )
    if task.conversation is None and what.listened is not None:
        raise InvalidInput("languages listened in beside a conversation's own: this stream is not a conversation")


def for_tenant(task: TranslationTask, tenant: Tenant) -> TranslationTask:
    """``task`` with ``tenant``'s defaults where the request left them unset (the profanity filter
    of the tokens file's ``profanity=``); the same task where it set them."""
    if task.output.profanity is not None:
        return task
    return dataclasses.replace(task, output=dataclasses.replace(task.output, profanity=tenant.profanity))


def with_stored(task: TranslationTask, stored: Sequence[Term]) -> TranslationTask:
    """``task`` with the entries of the stored glossaries its request named (``glossaries/``:
    already checked, and only those for its targets), after its own terms: an inline entry for the
    same phrase and target wins. Not counted in ``max_glossary_entries`` (stored entries have
    their own bounds, ``glossaries.max_entries`` and ``glossaries.max_entries_per_request``).
    ``stored`` as the book gives it (``StoredTerms``) carries each entry's key: only the
    request's own entries are keyed here (security finding J3: not thousands per request)."""
    if not stored:
        return task
    own = {term_key(t) for t in task.terms if t.glossary}
    if not own:
        added = tuple(stored)
    else:
        keys = stored.keys if isinstance(stored, StoredTerms) else tuple(term_key(t) for t in stored)
        added = tuple(t for t, k in zip(stored, keys, strict=True) if k not in own)
    return dataclasses.replace(task, terms=task.terms + added, stored_terms=task.stored_terms + len(added))


def keeping_spoken(task: TranslationTask) -> TranslationTask:
    """A job's ``task`` whose speakers each get a voice: every final segment keeps its spoken units,
    re-voiced once the file's labels are final (``jobs/revoice.py``)."""
    return dataclasses.replace(task, keep_spoken=True)
