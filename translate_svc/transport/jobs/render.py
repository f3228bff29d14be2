"""A job's results as documents, for both ports: its segments as JSON (made a page at a time: a job
of hours is never one object in memory), subtitles (SRT, WebVTT) per language, and a target's
dubbed track as WAV (made from its segments' speech as it is sent: ``jobs/dub.py``, a page of
segments and one segment's speech at a time), and a file made for the request (a dubbed video:
``jobs/video.py``), sent, then deleted. Files are read (and deleted) through ``reads``: the process's
file-read pool as the caller's tenant's calls (``session/work.py``), never the loop's default
executor, where one tenant's downloads would hold every tenant's result encoding. Event loop only."""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from translate_svc.audio.loudness import LoudnessTarget
from translate_svc.audio.wav import pcm16_header
from translate_svc.errors import InvalidInput
from translate_svc.jobs.credentials import JobCredentials
from translate_svc.jobs.dub import ChannelTrackReader, TrackReader, done_track_length, placements, segment_channels
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobState, JobStatus
from translate_svc.jobs.tracks import TRACK_WIDTH
from translate_svc.jobs.video import VideoMaker
from translate_svc.session.work import Offload
from translate_svc.settings.jobs import DubOverflow
from translate_svc.subtitles import Cue, srt_document, vtt_document
from translate_svc.types import MODEL_SAMPLE_RATE

#: segments read from the store per page
PAGE = 256
_FILE_CHUNK = 256 * 1024


async def json_chunks(store: JobKeeper, job: JobStatus) -> AsyncIterator[bytes]:
    """``{"job": {...}, "complete": bool, "segments": [...]}``, a page of segments at a time."""
    head = json.dumps({"job": job.to_json(), "complete": job.state is JobState.DONE})
    yield head[:-1].encode() + b', "segments": ['
    after, first = -1, True
    while page := await store.segments(job.job_id, after, PAGE):
        yield (b"" if first else b", ") + b", ".join(json.dumps(seg).encode() for seg in page)
        first = False
        after += len(page)
    yield b"]}"


def _text_of(seg: dict[str, Any], language: str, source: str) -> str | None:
    for t in seg["translations"]:
        if t["target_language"] == language:
            return str(t["text"])
    transcript = seg.get("transcript")
    if transcript is not None and language in (transcript["language"], source, "transcript"):
        return str(transcript["text"])
    return None


async def subtitles(store: JobKeeper, job: JobStatus, language: str, kind: str) -> str:
    """SRT (``kind`` ``srt``) or WebVTT of ``language``: a target's translations, or the transcript
    (its language, or ``transcript``), each segment one cue; a video's on its picture's timeline
    (shifted by where its sound starts: ``MediaInfo.audio_start_ms``)."""
    if not language:
        raise InvalidInput(f"{kind} needs a language (a target, or 'transcript')")
    known = {*job.spec.languages, "transcript"}
    if job.spec.source_language:
        known.add(job.spec.source_language)
    if language not in known:
        raise InvalidInput(
            f"language: one of the job's targets ({', '.join(job.spec.languages) or 'none'}) or "
            "'transcript' (the source's text)"
        )
    cues: list[Cue] = []
    after = -1
    shift = store.media_start_ms(job.job_id)  # a few bytes of the job's folder (media.json)
    while page := await store.segments(job.job_id, after, PAGE):
        for seg in page:
            text = _text_of(seg, language, job.spec.source_language)
            if text:
                cues.append((int(seg["start_ms"]) + shift, int(seg["end_ms"]) + shift, text))
        after += len(page)
    return srt_document(cues) if kind == "srt" else vtt_document(cues)


async def dubbed(
    store: JobKeeper,
    job: JobStatus,
    language: str,
    overflow: DubOverflow,
    reads: Offload,
    credentials: JobCredentials | None = None,
    *,
    loudness: LoudnessTarget | None = None,
    maker: VideoMaker | None = None,
) -> tuple[int, AsyncIterator[bytes]]:
    """The target's dubbed track as WAV (mono PCM16 at the job's track rate, a channel per party for
    a job of separate channels: ``jobs/dub.py``, each
    segment's speech at its segment's start, ``overflow`` saying what speech running past the next
    segment does): as long as the audio once the job is done (its exact length when the job read
    it to its end), else the audio done so far (``done_ms``). Its size in bytes and its chunks.
    With ``credentials`` the track is made into a file in the job's folder first, signed (a C2PA
    manifest covers the whole file), then sent and deleted. With ``loudness`` (a done job's only),
    ``maker`` makes the file in a media process, brought to it (``VideoMaker.make_track``), signed
    there too."""
    if loudness is not None:
        if maker is None:
            raise InvalidInput("this server makes no dubbed files on request: fetch the track without loudness")
        made = await maker.make_track(store, job, language, loudness, overflow)
        return made.size, _sent_then_removed(made.path, reads)
    size, chunks = await _dubbed(store, job, language, overflow, reads)
    if credentials is None:
        return size, chunks
    path = store.folder(job.job_id) / f"dubbed.{language[:16]}.{secrets.token_hex(6)}.wav"
    try:
        f = await reads(functools.partial(_create, path))
        try:
            async for chunk in chunks:
                await reads(functools.partial(f.write, chunk))
        finally:
            await reads(f.close)
        title = f"{job.job_id}-{language[:16]}.wav"
        size = await reads(functools.partial(credentials.sign, path, "audio/wav", job.job_id, title, (language,)))
    except BaseException:
        await remove(path, reads)
        raise
    return size, _sent_then_removed(path, reads)


async def _sent_then_removed(path: Path, reads: Offload) -> AsyncIterator[bytes]:
    try:
        async for chunk in file_chunks(path, reads):
            yield chunk
    finally:
        await remove(path, reads)


async def _dubbed(
    store: JobKeeper, job: JobStatus, language: str, overflow: DubOverflow, reads: Offload
) -> tuple[int, AsyncIterator[bytes]]:
    if language not in job.spec.languages:
        raise InvalidInput(f"no dubbed track of {language[:16]!r}: ask for one of the job's targets")
    if not job.spec.speech:
        raise InvalidInput("this job was submitted with speech off: it has no dubbed track")
    rate = job.spec.track_rate
    path = store.track_path(job.job_id, language)
    first = await store.segments(job.job_id, -1, 1)
    if first and not _placed_by_samples(first[0]):  # stored by an older version: the file is the track
        size = (await store.resume_point(job.job_id)).tracks.get(language, 0)
        return 44 + size, _file_chunks(path, size, rate, reads)
    length = job.done_ms * rate // 1000
    if job.state is JobState.DONE:
        source = await reads(functools.partial(store.source_length, job.job_id))
        length = done_track_length(source, job.duration_ms, rate)
    channels = _track_channels(job)
    return 44 + length * TRACK_WIDTH * channels, _dub_chunks(store, job, language, path, length, overflow, reads)


def _track_channels(job: JobStatus) -> int:
    """A dubbed track's channels: a channel per party for a job of separate channels, else one."""
    return 2 if job.spec.separate_channels else 1


def _placed_by_samples(seg: dict[str, Any]) -> bool:
    return all("audio_samples" in t for t in seg["translations"])


async def _dub_chunks(
    store: JobKeeper, job: JobStatus, language: str, path: Any, length: int, overflow: DubOverflow, reads: Offload
) -> AsyncIterator[bytes]:
    """The WAV: its header, then the track ``DubTrack`` makes from the segments (``TrackReader``:
    the segments' places read a page at a time, then each one's speech from the target's speech
    file in turn), read through ``reads`` a chunk at a time."""
    rate, channels = job.spec.track_rate, _track_channels(job)
    yield pcm16_header(length * TRACK_WIDTH * channels, rate, channels)
    places = await placements(store, job.job_id, language, rate)
    reader: TrackReader | ChannelTrackReader
    if channels > 1:  # a channel per party: each channel's segments placed on its own
        heard_on = await segment_channels(store, job.job_id)
        reader = await reads(functools.partial(ChannelTrackReader, path, places, heard_on, channels, length, overflow))
    else:
        reader = await reads(functools.partial(TrackReader, path, places, length, overflow))
    try:
        while chunk := await reads(functools.partial(reader.read_bytes, 4 * _FILE_CHUNK)):
            yield chunk
    finally:
        await reads(reader.close)


async def _file_chunks(path: Any, size: int, rate: int, reads: Offload) -> AsyncIterator[bytes]:
    yield wav_header(size, rate)
    if not size:
        return
    f = await reads(functools.partial(_open, path))
    try:
        left = size
        while left > 0:
            chunk = await reads(functools.partial(f.read, min(_FILE_CHUNK, left)))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        f.close()


async def file_chunks(path: Path, reads: Offload) -> AsyncIterator[bytes]:
    """A file's bytes, a chunk at a time."""
    f = await reads(functools.partial(_open, path))
    try:
        while chunk := await reads(functools.partial(f.read, 4 * _FILE_CHUNK)):
            yield chunk
    finally:
        f.close()


async def remove(path: Path, reads: Offload) -> None:
    """A file made for a request (a dubbed video), deleted once sent or once the send stopped."""
    await reads(functools.partial(_unlink, path))


def _open(path: Path) -> BinaryIO:
    return open(path, "rb")


def _create(path: Path) -> BinaryIO:
    return open(path, "wb")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def wav_header(data_bytes: int, rate: int = MODEL_SAMPLE_RATE) -> bytes:
    """A canonical 44-byte RIFF header of mono PCM16."""
    return pcm16_header(data_bytes, rate)
