"""A LiveKit agent that translates every participant of a room into the languages its listeners ask for.

Each participant says which language it wants to hear with its attribute ``language`` (BCP-47, e.g.
``"es"``) and, optionally, which one it speaks with ``speaks`` (otherwise ``$SPEAKS``, otherwise the
server detects it, which needs its language identifier). For every microphone track of every
participant, and every language some *other* participant wants to hear, the agent runs one
LiveKit ``TranslationSession`` that publishes the translated speech as an audio track named
``translation/<speaker identity>/<language>`` and the transcripts on LiveKit's transcription topic.
The sessions of one track share ONE translate_svc stream (``track=``): a speaker heard in three
languages costs one encoder pass on the server, not three. When listeners come, go or change their
``language``, sessions are started and closed to match.

    TRANSLATE_SVC_ADDRESS=translate.example:50051 LIVEKIT_URL=ws://localhost:7880 \\
    LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret python room_translator.py dev

See README.md beside this file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import AgentServer, JobContext, cli
from livekit.agents.beta.translation import TranslationRoomOptions, TranslationSession
from livekit.agents.voice.room_io import AudioOutputOptions
from livekit.plugins import translate_svc

logger = logging.getLogger("room-translator")

#: languages translated into even when no listener asks (comma-separated BCP-47), e.g. "es,fr"
DEFAULT_LANGUAGES = [x.strip() for x in os.environ.get("TRANSLATE_LANGUAGES", "").split(",") if x.strip()]
#: the language speakers are assumed to speak when they do not say (None: the server detects it)
DEFAULT_SOURCE = os.environ.get("SPEAKS") or None
#: simultaneous interpretation (speak while the speaker talks) instead of phrase by phrase
SIMULTANEOUS = os.environ.get("TRANSLATE_SIMULTANEOUS", "") not in ("", "0", "false")


@dataclass(frozen=True)
class Want:
    """One translation to run: a speaker's track into a language."""

    track_sid: str
    speaker: str
    source: str | None
    language: str


def _same_language(a: str | None, b: str) -> bool:
    return a is not None and a.split("-")[0].lower() == b.split("-")[0].lower()


def plan(participants: Iterable[rtc.RemoteParticipant], defaults: Iterable[str] = ()) -> set[Want]:
    """Every (microphone track, language) that some other participant wants to hear.

    A participant's ``language`` attribute is what it listens in; ``speaks`` what it talks in
    (default: its ``language``, then ``$SPEAKS``). A speaker is not translated into what it speaks.
    """
    people = list(participants)
    wanted = {p.identity: p.attributes.get("language") for p in people}
    out: set[Want] = set()
    for p in people:
        source = p.attributes.get("speaks") or p.attributes.get("language") or DEFAULT_SOURCE
        languages = {lang for who, lang in wanted.items() if lang and who != p.identity} | set(defaults)
        for pub in p.track_publications.values():
            if pub.kind != rtc.TrackKind.KIND_AUDIO or pub.source != rtc.TrackSource.SOURCE_MICROPHONE:
                continue
            for lang in languages:
                if not _same_language(source, lang):
                    out.add(Want(pub.sid, p.identity, source, lang))
    return out


class RoomTranslator:
    """Keeps one TranslationSession per wanted (track, language), as the room changes."""

    def __init__(self, ctx: JobContext, address: str) -> None:
        self._ctx = ctx
        self._room = ctx.room
        self._address = address
        self._sessions: dict[Want, TranslationSession[None]] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self) -> None:
        for event in (
            "participant_connected",
            "participant_disconnected",
            "participant_attributes_changed",
            "track_published",
            "track_unpublished",
        ):
            self._room.on(event, lambda *_: self.schedule())
        self.schedule()

    def schedule(self) -> None:
        task = asyncio.create_task(self.reconcile())
        self._tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def reconcile(self) -> None:
        async with self._lock:
            want = plan(self._room.remote_participants.values(), DEFAULT_LANGUAGES)
            for w in [w for w in self._sessions if w not in want]:
                logger.info("stopping %s -> %s", w.speaker, w.language)
                await self._sessions.pop(w).aclose()
            for w in sorted(want - self._sessions.keys(), key=lambda w: (w.track_sid, w.language)):
                logger.info("translating %s (%s) into %s", w.speaker, w.source or "detected", w.language)
                session: TranslationSession[None] = TranslationSession(
                    model=translate_svc.TranslationModel(
                        self._address,
                        target_language=w.language,
                        source_language=w.source,
                        track=w.track_sid,  # the languages of one track share one stream
                        simultaneous=SIMULTANEOUS,
                    )
                )
                session.on("error", lambda ev, w=w: logger.warning("%s -> %s: %s", w.speaker, w.language, ev.error))
                session.on("close", lambda _ev, w=w: self._closed(w))
                self._sessions[w] = session
                try:
                    await session.start(
                        room=self._room,
                        room_options=TranslationRoomOptions(
                            track=w.track_sid,
                            audio_output=AudioOutputOptions(track_name=f"translation/{w.speaker}/{w.language}"),
                        ),
                    )
                except Exception:
                    logger.exception("could not start %s -> %s", w.speaker, w.language)
                    self._sessions.pop(w, None)

    def _closed(self, w: Want) -> None:
        # a session that closed itself (its speaker left, an unrecoverable error) is started again
        # by the next change of the room if it is still wanted
        self._sessions.pop(w, None)

    async def aclose(self) -> None:
        async with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)


server = AgentServer()


@server.rtc_session(agent_name=os.environ.get("AGENT_NAME", ""))
async def entrypoint(ctx: JobContext) -> None:
    address = os.environ.get("TRANSLATE_SVC_ADDRESS")
    if not address:
        raise RuntimeError("set TRANSLATE_SVC_ADDRESS to the translate_svc server (host:port)")
    await ctx.connect()
    translator = RoomTranslator(ctx, address)
    ctx.add_shutdown_callback(translator.aclose)
    translator.watch()


if __name__ == "__main__":
    cli.run_app(server)
