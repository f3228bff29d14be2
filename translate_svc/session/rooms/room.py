"""A room and its speakers (``registry.py`` makes both): who is in the room, which languages it is
listened in (here and, through ``link.py``, on other processes), and each speaker's output cut per
language and handed to the listeners of each (``Room.publish``, ``Room.deliver``). A ``Speaker``
is a stream speaking into the room: its targets follow the languages listened in, and its own
client sees its own targets only.

Event loop only (no locks): publishing is synchronous and never awaits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from translate_svc.errors import NotReady, ServiceError
from translate_svc.session.rooms.backlog import RoomBacklog
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import LaterOutput, Listener, Rendering, RoomOutput
from translate_svc.session.tenants.counters import Held
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.types import MODEL_SAMPLE_RATE, InterimResult, SegmentResult, Translation

if TYPE_CHECKING:
    from translate_svc.session.rooms.link import RoomLink
    from translate_svc.session.rooms.outbox import Outbox

logger = logging.getLogger(__name__)

#: (language, speaking rate) pairs a speaker speaks again for its listeners (``TranslationTask.renditions``)
Renditions = tuple[tuple[str, float], ...]
#: a speaker's final result spoken again at the pairs its listeners chose: optional engine work
#: (``session/calls/renditions.py``), or None when none can be made for it now
Render = Callable[[SegmentResult, Renditions], Rendering | None]


class Speaker:
    """A stream speaking into a room (made by ``RoomRegistry.publish``). ``retarget(targets,
    renditions)`` applies the stream's new targets and the (target, rate) pairs its listeners chose
    (raises ``InvalidInput`` if it cannot) and returns the first segment id that uses them;
    ``render`` makes a final result's speech again at those rates, after the result is out (None:
    never). Call ``leave`` when the stream ends."""

    def __init__(
        self,
        room: Room,
        session_id: str,
        participant: str,
        own: tuple[str, ...],
        retarget: Callable[[tuple[str, ...], Renditions], int],
        held: Held,
        stream_id: str = "",
        *,
        clock: Callable[[], float],
        unpublish: Callable[[Speaker], None],
        render: Render | None = None,
    ) -> None:
        """``clock``: the registry's (when its output is published); ``unpublish``: the registry's
        side of ``leave`` (this module does not import the registry, which imports it)."""
        self.room = room
        self._clock = clock
        self._unpublish = unpublish
        self.session_id = session_id
        #: how listeners see it: its participant id, else its stream's id across calls (its resume
        #: token: a stream resumed on another server stays the same speaker), else its session id
        self.speaker_id = participant or stream_id or session_id
        self.participant = participant
        self.own = own
        self._retarget = retarget
        self._render = render
        self._held = held
        #: the targets the stream runs with now, and from which segment id each language is on
        self.targets: tuple[str, ...] = own
        self.since: dict[str, int] = dict.fromkeys(own, 0)
        #: the (language, rate) pairs its listeners chose that it speaks again
        self.renditions: Renditions = ()
        self._left = False
        #: the id after the last final result published (older captions are stale)
        self.finals = 0
        #: its store calls (``link.py``): None while not linked to other processes
        self.relay: Outbox | None = None

    def wanted(self, own: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """Its own targets, then every language listened in by someone else, in a stable order."""
        own = self.own if own is None else own
        others = sorted(lang for lang in self.room.languages_for(self.participant) if lang not in own)
        return (*own, *others)

    def wanted_rates(self, targets: tuple[str, ...]) -> Renditions:
        """The speaking rates chosen by listeners of ``targets`` other than itself, (language,
        rate) each in a stable order: its speech is made again at each (``SegmentResult.renditions``)."""
        return tuple(sorted((lang, rate) for lang, rate in self.room.rates_for(self.participant) if lang in targets))

    def apply(self, targets: tuple[str, ...], first_id: int, renditions: Renditions | None = None) -> None:
        """The stream now runs with ``targets`` (and ``renditions``; None: as they were) from
        segment ``first_id`` on."""
        if renditions is not None:
            self.renditions = renditions
        for lang in targets:
            if lang not in self.targets or lang not in self.since:
                self.since[lang] = first_id
        for lang in list(self.since):
            if lang not in targets:
                del self.since[lang]
        self.targets = targets
        if self.room.link is not None:
            self.room.link.announce(self)

    def resync(self) -> None:
        """Retarget the stream to what the room wants now (``InvalidInput`` if it cannot)."""
        wanted = self.wanted()
        rates = self.wanted_rates(wanted)
        if set(wanted) != set(self.targets) or rates != self.renditions:
            self.apply(wanted, self._retarget(wanted, rates), rates)

    def own_view(self, ev: object) -> object:
        """The speaker's own stream sees only its own targets (nobody is sent its own speech
        translated into languages it did not ask for)."""
        if isinstance(ev, SegmentResult) and (ev.renditions or ev.spoken or ev.heard_audio is not None):
            ev = dataclasses.replace(ev, renditions=(), spoken=(), heard_audio=None)
        if isinstance(ev, SegmentResult | InterimResult) and any(
            t.target_language not in self.own for t in ev.translations
        ):
            return dataclasses.replace(
                ev, translations=tuple(t for t in ev.translations if t.target_language in self.own)
            )
        return ev

    def output(self, ev: object) -> None:
        """A final result or a caption of the stream, as it goes out in order: to the listeners."""
        if self._left or not isinstance(ev, SegmentResult | InterimResult):
            return
        rendering = None
        if isinstance(ev, SegmentResult):
            self.finals = ev.segment_id + 1
            if ev.spoken and self.renditions and self._render is not None:
                rendering = self._render(ev, self.renditions)  # made after the result is out
        elif ev.segment_id < self.finals:
            return  # a caption its segment's final result already superseded
        self.room.publish(self, ev, self._clock(), rendering)

    def leave(self) -> None:
        if self._left:
            return
        self._left = True
        self._unpublish(self)


class Room:
    """One room of one tenant (made by ``RoomRegistry``): its speakers and listeners here, those of
    other processes as the cluster store last said, its backlog, and the fan-out of its speakers'
    output (``publish``, ``deliver``)."""

    def __init__(self, tenant: Tenant, name: str, config: RoomConfig, held: Held | None, backlog: RoomBacklog) -> None:
        self.tenant = tenant
        self.name = name
        self._config = config
        #: the room counters it holds while it has a party (none: empty, waiting with its backlog)
        self.held = held
        self.speakers: dict[str, Speaker] = {}
        self.listeners: dict[str, set[Listener]] = {}  # by language
        #: final results of the last ``backlog_s`` seconds, per language, text only, bounded
        self.backlog = backlog
        self.idle: asyncio.TimerHandle | None = None
        #: listeners on other processes (language, participant, speaking rate or None), and
        #: speakers there (id, participant, from which segment each language is on), as the
        #: cluster store last said
        self.remote_ears: list[tuple[str, str, float | None]] = []
        self.remote_speakers: list[tuple[str, str, dict[str, int]]] = []
        #: the registry's link to other processes (None: this process only)
        self.link: RoomLink | None = None
        #: each (language, rate) its listeners here chose, and the tenant's rendition count it holds
        #: (``rooms.max_renditions_per_tenant``): taken by its first listener, given back by its last
        self.rates_held: dict[tuple[str, float], Held] = {}

    @property
    def empty(self) -> bool:
        return not self.speakers and not any(self.listeners.values())

    def languages_for(self, participant: str) -> set[str]:
        """Languages listened in by listeners other than ``participant`` (empty: nobody in
        particular), on this process and on the others."""
        here = {
            lang
            for lang, group in self.listeners.items()
            if any(not participant or listener.participant != participant for listener in group)
        }
        return here | {lang for lang, p, _ in self.remote_ears if not participant or p != participant}

    def rates_for(self, participant: str) -> set[tuple[str, float]]:
        """The (language, speaking rate) pairs chosen by listeners other than ``participant``
        (those who chose none hear the speaker's own rate), here and on the other processes."""
        here = {
            (lang, listener.speed)
            for lang, group in self.listeners.items()
            for listener in group
            if listener.speed is not None and not (participant and listener.participant == participant)
        }
        there = {
            (lang, speed)
            for lang, p, speed in self.remote_ears
            if speed is not None and not (participant and p == participant)
        }
        return here | there

    def languages(self) -> set[str]:
        return {lang for lang, group in self.listeners.items() if group} | self.remote_languages()

    def remote_languages(self) -> set[str]:
        return {lang for lang, _, _ in self.remote_ears}

    def resync_speakers(self) -> None:
        """The languages listened in on other processes changed: every speaker here follows. One
        that cannot carry a language wanted there (too many targets, a language its model lacks)
        has that language's listeners refused with its error, as its own process refuses a listener
        (``link.py``): never an OK that delivers nothing."""
        for speaker in list(self.speakers.values()):
            try:
                speaker.resync()
            except ServiceError as e:
                missing = [lang for lang in speaker.wanted() if lang not in speaker.targets]
                logger.info(
                    "a room speaker cannot add %s for listeners on other servers: %s",
                    ", ".join(missing),
                    e.message,
                    extra={"session_id": speaker.session_id},
                )
                if self.link is not None:
                    self.link.refuse(speaker, missing, e)

    def deliver(
        self,
        language: str,
        out: RoomOutput,
        participant: str,
        *,
        final: bool,
        now: float,
        remote: bool = False,
        rendering: Rendering | None = None,
    ) -> None:
        """One language's cut of a speaker's output (``participant``: the speaker's; ``remote``: a
        speaker of another process) to this process's listeners of it, and (a final result) into
        the backlog. ``rendering``: its speech being made again at rates; a listener at one of
        them gets the result once it is made (``LaterOutput``), the others at once."""
        if final:
            self.backlog.keep(language, now, out, remote=remote)
        # one view per speaking rate its listeners chose, and (a conversation's turn heard in this
        # language) one for those who did not ask for the original
        views: dict[tuple[float | None, bool], RoomOutput | LaterOutput] = {}
        for listener in self.listeners.get(language) or ():
            if not (participant and listener.participant == participant):
                speed, said = listener.speed, out.original and not listener.original
                view = views.get((speed, said))
                if view is None:
                    if said:
                        view = out.as_said()
                    elif rendering is not None and speed is not None and (language, speed) in rendering.asked:
                        view = LaterOutput.of(out, language, speed, rendering)
                    else:
                        view = out.at(speed)
                    views[speed, said] = view
                listener.push(view)

    def store_lost(self, language: str, error: ServiceError) -> None:
        """The store failed under this process's reading of ``language``, whose output may come from
        another process (``link.py`` decides): its listeners here are told (ended UNAVAILABLE,
        saying why)."""
        lost = NotReady(
            "this room's speakers on other servers can no longer reach this listen (the cluster store is "
            "unreachable): listen again shortly",
            retry_after_ms=1000,
        )
        logger.warning("a room's listeners lost the cluster store: %s", error.message)
        for listener in list(self.listeners.get(language) or ()):
            listener.end(lost, at_once=False)

    def refused(self, language: str, members: Collection[str], error: ServiceError) -> None:
        """A speaker of another process cannot carry ``language`` for the listeners ``members``
        (their member ids): those of this process end at once with its error."""
        for listener in list(self.listeners.get(language) or ()):
            if listener.member in members:
                listener.end(error)

    def publish(
        self, speaker: Speaker, ev: SegmentResult | InterimResult, now: float, rendering: Rendering | None = None
    ) -> None:
        """A speaker's final result or caption, cut per language, to the listeners here and (linked)
        to the other processes; ``rendering``: its speech being made again at its listeners' rates.
        A conversation's segment is not translated into the language it was heard in: that
        language's listeners get it as said, its transcript without a translation (not re-spoken),
        and those who asked for the original its own audio too (``RoomOutput.original``)."""
        final = isinstance(ev, SegmentResult)
        by_lang = {t.target_language: t for t in ev.translations}
        heard = _heard(ev)
        if isinstance(ev, SegmentResult) and ev.error is not None:  # a failed segment: every language that waited
            langs = [lang for lang, first in speaker.since.items() if first <= ev.segment_id]
        else:
            langs = list(by_lang)
            if heard is not None and heard not in by_lang and heard in speaker.since:
                langs.append(heard)  # a conversation's turn in a language listened in: its words, as said
        remote = self.remote_languages() if self.link is not None else set()
        for lang in langs:
            if not final and not self.listeners.get(lang) and lang not in remote:
                continue
            t, original = by_lang.get(lang), False
            if t is None and isinstance(ev, SegmentResult) and lang == heard and ev.heard_audio is not None:
                t, original = _original(ev, lang), True  # its own words and voice, for who asks
            cut = dataclasses.replace(ev, translations=(t,) if t is not None else ())
            if isinstance(cut, SegmentResult) and (cut.renditions or cut.spoken):  # its speech at listeners' rates
                again = tuple(r for r in cut.renditions if r.target_language == lang)
                cut = dataclasses.replace(cut, renditions=again, spoken=())
            if isinstance(cut, SegmentResult) and cut.heard_audio is not None:
                cut = dataclasses.replace(cut, heard_audio=None)
            out = RoomOutput(speaker.speaker_id, cut, original=original)
            later = rendering if rendering is not None and any(lg == lang for lg, _ in rendering.asked) else None
            self.deliver(lang, out, speaker.participant, final=final, now=now, rendering=later)
            if self.link is not None:
                self.link.sent(speaker, lang, out, final, later)


def _heard(ev: SegmentResult | InterimResult) -> str | None:
    """The language a speaker's output was heard in: the one detected (a conversation's chosen
    language), else its transcript's; None: unknown."""
    detected = ev.detected if isinstance(ev, SegmentResult) else None
    if detected is not None:
        return detected.language
    return ev.transcript.language if ev.transcript is not None else None


def _original(ev: SegmentResult, language: str) -> Translation:
    """A conversation's turn heard in ``language`` as its listeners who asked for the original get
    it: the words as said (its transcript) in the speaker's own voice (``heard_audio``)."""
    said = ev.transcript
    return Translation(
        language,
        said.text if said is not None else "",
        ev.heard_audio,
        MODEL_SAMPLE_RATE,
        avg_logprob=said.avg_logprob if said is not None else None,
    )
