"""A done video job's dubbed video, made on request from what the job keeps: its upload
(``tracks.keep_video``), each target's dubbed track (``dub.TrackReader``: the WAV download's own)
and its segments' texts. ``audio/remux.py`` writes it: the upload's container again, its video
copied packet for packet, a dubbed track per target language asked (``VideoAsk.languages``; all by
default), the source's audio as a track too (``original``), the voice-over mix (``mix``: the dub
alone, or ``duck``: the source's audio under it, lowered to ``mix_gain_db`` while it speaks) and a
subtitle track per language (``subtitles``: the translations' texts, one cue per segment).

What it costs is bounded: at most ``jobs.max_remuxing`` videos are made at once on a process
(another request is refused with 429 until one is done), each in a media process of the tenant's
(``media.py``: the upload is opened there, never in the server's process; bounded in memory, in
CPU for its minutes and tracks, and in number per tenant), a second of output at a time (a few
seconds of audio in memory), to a file in the job's folder that the door streams and deletes. The
segments' places and texts are read from the store first, a page at a time, and held as small
tuples (tens of bytes a segment); the job's few small files on the maker's one thread. Event loop
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from translate_svc.audio.loudness import LoudnessTarget
from translate_svc.audio.media import MediaKind
from translate_svc.audio.remux import SubtitleInput
from translate_svc.errors import Conflict, InvalidInput, Overloaded, shown
from translate_svc.jobs.credentials import JobCredentials
from translate_svc.jobs.dub import PAGE, Place, done_track_length, placements, segment_channels
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.media import JobMedia
from translate_svc.jobs.model import JobState, JobStatus
from translate_svc.jobs.untrusted import DubOrder, VideoOrder, WavOrder
from translate_svc.settings.jobs import DubOverflow, JobSettings

#: the source's audio under the dub while it speaks, by default (a voice-over's usual duck)
DEFAULT_MIX_GAIN_DB = -18.0
MIN_MIX_GAIN_DB = -60.0
#: the model's individual languages whose ISO 639-2 code is their macrolanguage's (ISO 639-2 has
#: no code of their own); every other code of the model is its ISO 639-2/T code already
_ISO639_2 = {
    "cmn": "zho", "yue": "zho", "arb": "ara", "ary": "ara", "arz": "ara", "pes": "fas", "zsm": "msa",
    "zlm": "msa", "swh": "swa", "uzn": "uzb", "khk": "mon", "npi": "nep", "ory": "ori", "pbt": "pus",
    "gaz": "orm", "azj": "aze", "fuv": "ful", "lvs": "lav", "ckb": "kur",
}  # fmt: skip


def iso639_2(code: str) -> str:
    """A model language code (ISO 639-3, maybe with a script: ``cmn_Hant``) as ISO 639-2/T."""
    base = code.split("_", 1)[0]
    return _ISO639_2.get(base, base) if len(base) == 3 and base.isalpha() else "und"


class VoiceOver(str, Enum):
    """What plays on a dubbed track: the dub alone, or the source's audio under it (ducked)."""

    DUB = "dub"
    DUCK = "duck"


@dataclass(frozen=True)
class VideoAsk:
    """What a dubbed video holds (the doors parse it: ``?languages=&original=&mix=&...``)."""

    #: the targets whose dubbed tracks (and subtitles) it holds, in this order; empty: every target
    languages: tuple[str, ...] = ()
    #: the source's audio as a track of its own too (its packets copied)
    original: bool = False
    mix: VoiceOver = VoiceOver.DUB
    #: the source's gain under the dub while it speaks (``mix=duck``), in dB
    mix_gain_db: float = DEFAULT_MIX_GAIN_DB
    #: a subtitle track per language (the translations' texts)
    subtitles: bool = True
    #: each dubbed track (as it plays: the dub, or the mix) brought to this loudness under its
    #: true-peak ceiling (``audio/loudness.py``); None: as the vocoder made it
    loudness: LoudnessTarget | None = None


@dataclass(frozen=True)
class MadeVideo:
    """A dubbed video made to ``path`` (the caller streams and deletes it)."""

    path: Path
    kind: MediaKind
    size: int
    #: the time the remux took (seconds)
    seconds: float


@dataclass(frozen=True)
class MadeTrack:
    """A dubbed track made to ``path`` as a WAV (the caller streams and deletes it)."""

    path: Path
    size: int


@dataclass
class _Segments:
    """What the remux needs of each segment, per language: where its speech is, and its text."""

    places: dict[str, list[Place]] = field(default_factory=dict)
    cues: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)


class VideoMaker:
    """Makes a process's dubbed videos, ``jobs.max_remuxing`` at once (each in a media process).
    Event loop only; ``close`` when the process stops."""

    def __init__(self, settings: JobSettings, media: JobMedia, credentials: JobCredentials | None = None) -> None:
        self._slots = settings.max_remuxing
        self._media = media
        self._credentials = credentials
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="job-video")
        self._busy = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def make(self, store: JobKeeper, job: JobStatus, ask: VideoAsk, overflow: DubOverflow) -> MadeVideo:
        """The job's dubbed video as ``ask`` says (``InvalidInput`` naming what to change; the
        job not done: ``Conflict``; ``jobs.max_remuxing`` busy: ``Overloaded``)."""
        loop = asyncio.get_running_loop()
        kind, languages = await self._check(store, job, ask)
        if self._busy >= self._slots:
            raise Overloaded(
                f"this server makes {self._slots} dubbed videos at once (jobs.max_remuxing): ask again shortly",
                retry_after_ms=5000,
            )
        self._busy += 1
        out = store.folder(job.job_id) / f"video.out.{secrets.token_hex(6)}.{kind.suffix}"
        try:
            segments = await _segments(store, job, languages, ask.subtitles)
            src = store.video_path(job.job_id)
            source, size = await loop.run_in_executor(self._pool, _source, store, job.job_id, src)
            order = _order(store, job, kind, ask, overflow, segments, source, out)
            minutes = job.duration_ms / 60_000
            started = time.perf_counter()
            # in the tenant's media process (``media.py``); a caller that leaves ends it there
            made = await self._media.remux(
                job.tenant,
                order,
                size,
                minutes,
                len(order.dubs) + (order.original is not None),
                loudness=len(order.dubs) if order.loudness is not None else 0,
            )
            if self._credentials is not None and self._credentials.signs(kind.content_type):
                # the file FFmpeg's muxer wrote in the media process (its boxes ours, not the upload's)
                title = f"{job.job_id}.{kind.suffix}"
                credentials, kinds = self._credentials, kind.content_type
                sign = functools.partial(credentials.sign, out, kinds, job.job_id, title, tuple(languages))
                made = await loop.run_in_executor(self._pool, sign)
            return MadeVideo(out, kind, made, time.perf_counter() - started)
        except BaseException:
            await loop.run_in_executor(self._pool, _unlink, out)
            raise
        finally:
            self._busy -= 1

    async def make_track(
        self, store: JobKeeper, job: JobStatus, language: str, loudness: LoudnessTarget, overflow: DubOverflow
    ) -> MadeTrack:
        """A done job's dubbed track of ``language`` as a WAV brought to ``loudness`` (the WAV
        download's ``?loudness=``), made in a media process of the tenant's on one of the process's
        ``jobs.max_remuxing`` slots; the caller streams and deletes it. ``InvalidInput`` naming what
        to change; the job not done: ``Conflict`` (the loudness is the whole track's); busy:
        ``Overloaded``."""
        if job.state is not JobState.DONE:
            raise Conflict(
                f"the job is {job.state.value}: a dubbed track at a loudness is made once the job is done (its "
                "loudness is the whole track's); fetch it without loudness meanwhile"
            )
        if language not in job.spec.languages:
            raise InvalidInput(f"no dubbed track of {shown(language)}: ask for one of the job's targets")
        if not job.spec.speech:
            raise InvalidInput("this job was submitted with speech off: it has no dubbed track")
        if self._busy >= self._slots:
            raise Overloaded(
                f"this server makes {self._slots} dubbed videos and tracks at once (jobs.max_remuxing): ask again "
                "shortly",
                retry_after_ms=5000,
            )
        loop = asyncio.get_running_loop()
        self._busy += 1
        out = store.folder(job.job_id) / f"dubbed.out.{secrets.token_hex(6)}.wav"
        try:
            rate = job.spec.track_rate
            places = await placements(store, job.job_id, language, rate)
            source = await loop.run_in_executor(self._pool, store.source_length, job.job_id)
            length = done_track_length(source, job.duration_ms, rate)
            heard_on = await segment_channels(store, job.job_id) if job.spec.separate_channels else []
            order = WavOrder(
                store.track_path(job.job_id, language),
                tuple(places),
                length,
                rate,
                overflow,
                loudness,
                out,
                segment_channels=tuple(heard_on),
                channels=2 if job.spec.separate_channels else 1,
            )
            size = await self._media.dubbed_wav(job.tenant, order, job.duration_ms / 60_000)
            if self._credentials is not None and self._credentials.signs("audio/wav"):
                title = f"{job.job_id}-{language[:16]}.wav"
                sign = functools.partial(self._credentials.sign, out, "audio/wav", job.job_id, title, (language,))
                size = await loop.run_in_executor(self._pool, sign)
            return MadeTrack(out, size)
        except BaseException:
            await loop.run_in_executor(self._pool, _unlink, out)
            raise
        finally:
            self._busy -= 1

    async def _check(self, store: JobKeeper, job: JobStatus, ask: VideoAsk) -> tuple[MediaKind, list[str]]:
        if job.state is not JobState.DONE:
            raise Conflict(
                f"the job is {job.state.value}: its dubbed video is made once it is done (GET the job with ?wait=60)"
            )
        loop = asyncio.get_running_loop()
        kind = await loop.run_in_executor(self._pool, store.media_of, job.job_id)
        if kind is None:
            raise InvalidInput(
                "this job's upload holds no video stream (an audio file): fetch its dubbed tracks instead "
                "(GET /v1/jobs/<id>/dubbed/<language>, or GetJobResults with JOB_RESULTS_DUBBED_WAV)"
            )
        if not await loop.run_in_executor(self._pool, store.video_path(job.job_id).exists):
            raise InvalidInput("this job's video was not kept (the job ended before issue 90): submit it again")
        targets = job.spec.languages
        languages = list(dict.fromkeys(ask.languages)) or list(targets)
        for language in languages:
            if language not in targets:
                raise InvalidInput(
                    f"languages: {shown(language)} is not a target of this job ({', '.join(targets) or 'none'})"
                )
        if not MIN_MIX_GAIN_DB <= ask.mix_gain_db <= 0:
            raise InvalidInput(f"mix_gain_db: between {MIN_MIX_GAIN_DB:g} and 0 (dB), the source's level under the dub")
        if ask.mix is VoiceOver.DUCK and not job.spec.speech:
            raise InvalidInput("mix=duck mixes the dubbed tracks: this job was submitted with speech off and has none")
        return MediaKind(kind), languages


async def _segments(store: JobKeeper, job: JobStatus, languages: list[str], subtitles: bool) -> _Segments:
    """Each language's speech places (at the track's rate) and cues, read a page at a time."""
    got = _Segments()
    rate = job.spec.track_rate
    if job.spec.speech:
        for language in languages:
            got.places[language] = await placements(store, job.job_id, language, rate)
    if subtitles and job.spec.text:
        got.cues = {language: [] for language in languages}
        after = -1
        while page := await store.segments(job.job_id, after, PAGE):
            after += len(page)
            for seg in page:
                for t in seg["translations"]:
                    if t["target_language"] in got.cues and t["text"]:
                        got.cues[t["target_language"]].append((int(seg["start_ms"]), int(seg["end_ms"]), t["text"]))
    return got


def _source(store: JobKeeper, job_id: str, src: Path) -> tuple[tuple[int, int] | None, int]:
    """The audio's kept (frames, rate) (None: not read to its end) and the upload's size."""
    return store.source_length(job_id), src.stat().st_size


def _order(
    store: JobKeeper,
    job: JobStatus,
    kind: MediaKind,
    ask: VideoAsk,
    overflow: DubOverflow,
    segments: _Segments,
    source: tuple[int, int] | None,
    out: Path,
) -> VideoOrder:
    """What the media process makes (``untrusted.make_video``): plain paths and values."""
    dubs = tuple(
        DubOrder(iso639_2(language), store.track_path(job.job_id, language), tuple(places), f"{language} (dubbed)")
        for language, places in segments.places.items()
    )
    subtitles = tuple(
        SubtitleInput(iso639_2(language), tuple(cues), language) for language, cues in segments.cues.items()
    )
    original = None
    if ask.original or not dubs:  # a video keeps its sound: with no dubbed track, the source's
        original = iso639_2(job.spec.source_language) if job.spec.source_language else "und"
    return VideoOrder(
        store.video_path(job.job_id),
        out,
        kind,
        source,
        job.duration_ms,
        job.spec.track_rate,
        overflow,
        dubs,
        subtitles,
        original,
        ask.mix_gain_db if ask.mix is VoiceOver.DUCK else None,
        ask.loudness,
    )


def _unlink(path: Path, *_: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
