"""The client's background-job calls (the server's ``Jobs`` service; the token needs the
``translate`` permission): a mixin of ``AsyncTranslateClient``. A job lives on the server that
took it: every call of one job goes to the same address (the one ``submit_job`` used, or the
client's first). Event loop only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client._convert import vad_pb
from translate_svc.client.job_types import EditedTranslation, Job, JobList, JobState, SegmentEdit, SegmentEdited
from translate_svc.client.types import VadOptions

#: the ``Jobs`` service's stub, for ``_unary``
SERVICE = "Jobs"
#: an upload's part (well within a gRPC port's 4 MiB receive limit)
PART_BYTES = 1024 * 1024
_STATES = {pb.JobState.Value(f"JOB_{s.name}"): s for s in JobState}
_FORMATS = {
    "json": pb.JOB_RESULTS_JSON,
    "srt": pb.JOB_RESULTS_SRT,
    "vtt": pb.JOB_RESULTS_VTT,
    "wav": pb.JOB_RESULTS_DUBBED_WAV,
    "video": pb.JOB_RESULTS_VIDEO,
}
_MIXES = {"dub": pb.VOICE_OVER_DUB, "duck": pb.VOICE_OVER_DUCK}


def job_of(msg: pb.Job) -> Job:
    return Job(
        id=msg.job_id,
        state=_STATES.get(msg.state, JobState.FAILED),
        received_bytes=msg.received_bytes,
        duration_ms=msg.duration_ms,
        done_ms=msg.done_ms,
        progress=msg.progress,
        segments=msg.segments,
        error=msg.error,
        created_at=msg.created_at,
        expires_at=msg.expires_at,
        source_language=msg.source_language,
        targets=tuple(msg.target_languages),
        conversation=tuple(msg.conversation.languages),
        separate_channels=msg.channel_mode == pb.CHANNEL_MODE_SEPARATE,
        speaker_voices=dict(msg.speaker_voices.voices) if msg.HasField("speaker_voices") else None,
    )


def _edited(msg: pb.SegmentEdited) -> SegmentEdited:
    def translation(t: pb.EditedTranslation) -> EditedTranslation:
        return EditedTranslation(t.text, t.voice, round(t.speech_rate, 4), t.audio_ms)

    return SegmentEdited(
        msg.segment_id, msg.target_language, tuple(msg.changed), translation(msg.before), translation(msg.after)
    )


def _parts(
    job_id: str, path: Path, start: int, on_sent: Callable[[int], None] | None
) -> Iterator[pb.UploadJobAudioRequest]:
    """The file from ``start`` in parts (one in memory at a time), the last one completing the upload."""
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        first = True
        while True:
            data = f.read(PART_BYTES)
            yield pb.UploadJobAudioRequest(job_id=job_id if first else "", offset=offset, data=data, complete=not data)
            if not data:
                return
            offset += len(data)
            first = False
            if on_sent is not None:
                on_sent(offset)


class JobCalls:
    """``submit_job``, ``get_job``, ``cancel_job``, ``list_jobs``, ``job_results``,
    ``save_job_results`` and ``save_job_video``.
    Another tenant's job is NOT_FOUND (``TranslateError``)."""

    if TYPE_CHECKING:  # AsyncTranslateClient's
        addresses: tuple[str, ...]

        def _stub(self, address: str, service: str = "Translator") -> Any: ...

        def _metadata_for(self, request_id: str) -> tuple[tuple[str, str], ...]: ...

        def _error(
            self, e: grpc.aio.AioRpcError, address: str, attempts: int, request_id: str | None = None
        ) -> Any: ...

        timeout_s: float

    async def _job_call(self, method: str, request: Any, timeout_s: float | None) -> Any:
        """One call of the Jobs service on the jobs' address (not retried elsewhere: the job is there)."""
        address = self.addresses[0]
        request_id = uuid.uuid4().hex
        try:
            return await getattr(self._stub(address, SERVICE), method)(
                request, timeout=timeout_s or self.timeout_s, metadata=self._metadata_for(request_id)
            )
        except grpc.aio.AioRpcError as e:
            raise self._error(e, address, 1, request_id) from e

    async def submit_job(
        self,
        audio: Path | str | None = None,
        *,
        url: str | None = None,
        targets: Sequence[str] = (),
        source: str = "",
        speech: bool = True,
        transcript: bool = True,
        word_timings: bool = True,
        glossaries: Sequence[str] = (),
        on_sent: Callable[[int], None] | None = None,
        timeout_s: float | None = None,
        speed: float = 1.0,
        fit: bool | tuple[float, float] = False,
        on_created: Callable[[Job], None] | None = None,
        conversation: str | Sequence[str] | None = None,
        vad: VadOptions | None = None,
        separate_channels: bool = False,
        speakers: int = 0,
        speaker_voices: str | Mapping[int, int] | None = None,
        subtitles: Path | str | None = None,
    ) -> Job:
        """A new job of an audio file (WAV, FLAC, OGG, MP3) or a video (MP4, MOV, WebM, MKV: its
        first audio stream is translated, and once done its dubbed video is ``save_job_video``'s),
        uploaded in parts, or of an https ``url`` the server fetches; returns it queued (or, by
        URL, fetching). ``on_sent``: each part's end, in bytes sent. ``speed``: the dubbed tracks'
        speaking rate, 0.5..2.0 (``OutputOptions.speed``). ``fit``: dubbing to the source's clock
        (docs/api.md "Speech fitted to the source"): each segment's speech at the rate that fits it
        before the next segment, within the server's bound (True) or ``(slowest, fastest)``; not
        with ``speed``. ``on_created``: the job as soon as it exists, before its upload (its id,
        to cancel it should the upload be refused or given up: ``cancel_job``). ``conversation``:
        its languages (``["eng", "spa"]`` or ``"eng,spa"``) in place of ``targets`` and ``source``:
        each segment is identified among them and translated into the others (docs/api.md
        "Conversations"); each result's ``detected_language`` is its source. ``vad``: the VAD's
        options over the server's, as a stream's (``VadOptions(eagerness="medium")``: a semantic
        end of turn, docs/api.md "Turns that end on meaning"). ``separate_channels``: a stereo
        recording whose channels are parties (an agent and a caller), each translated on its own,
        each segment labelled with its ``channel``, the dubbed WAV a channel per party (docs/api.md
        "Channels as parties"). ``speakers``: label each segment with its speaker, telling apart at
        most this many; with 2 or more each speaker is dubbed in a voice of its own, the same for
        the whole file (``speaker_voices``: ``"one"`` for every speaker in one voice, or
        ``{label: voice}`` for the labels to set; docs/api.md "A voice per speaker").
        ``subtitles``: an SRT or WebVTT file (``.srt``, ``.vtt``), a studio's translation into the
        one language of ``targets``, voiced at its timings over ``audio`` instead of the audio
        translated: each cue a segment said as written (docs/api.md "Subtitles voiced")."""
        if (audio is None) == (url is None):
            raise ValueError("give an audio file or url=, one of them")
        if subtitles is not None and len(targets) != 1:
            raise ValueError("subtitles: give targets=[their language] (one)")
        request = pb.CreateJobRequest(
            format=pb.AudioFormat(encoding=pb.CONTAINER),
            source_language=source,
            target_languages=list(targets),
            output=pb.OutputOptions(speech=speech, transcript=transcript, word_timings=word_timings),
            glossaries=list(glossaries),
            url=url or "",
            channel_mode=pb.CHANNEL_MODE_SEPARATE if separate_channels else pb.CHANNEL_MODE_MIXED,
        )
        request.speakers = speakers
        if subtitles is not None:
            file = Path(subtitles)
            request.subtitles.language = targets[0]
            request.subtitles.format = {".vtt": "vtt", ".srt": "srt"}.get(file.suffix.lower(), "")
            request.subtitles.text = await asyncio.to_thread(file.read_text, encoding="utf-8-sig")
        if speaker_voices == "one":
            request.speaker_voices.one_voice = True
        elif isinstance(speaker_voices, Mapping):
            request.speaker_voices.voices.update({int(k): int(v) for k, v in speaker_voices.items()})
        elif speaker_voices is not None:
            raise ValueError(f'speaker_voices: "one" or {{label: voice}}, got {speaker_voices!r}')
        if speed != 1.0:  # unset: the model's own rate
            request.output.speed = speed
        vad_msg = vad_pb(vad)
        if vad_msg is not None:
            request.vad.CopyFrom(vad_msg)
        if conversation is not None:
            langs = conversation.split(",") if isinstance(conversation, str) else conversation
            request.conversation.SetInParent()  # present even empty: the server says what is missing
            request.conversation.languages.extend(langs)
        if fit is not False:
            request.fit.SetInParent()  # present with the server's bound, unless one is given
            if fit is not True:
                request.fit.slowest, request.fit.fastest = fit
        job = job_of(await self._job_call("CreateJob", request, timeout_s))
        if on_created is not None:
            on_created(job)
        if audio is None:
            return job
        path = Path(audio)
        call = self._stub(self.addresses[0], SERVICE).UploadJobAudio
        request_id = uuid.uuid4().hex
        try:
            done = await call(_parts(job.id, path, 0, on_sent), timeout=None, metadata=self._metadata_for(request_id))
        except grpc.aio.AioRpcError as e:
            raise self._error(e, self.addresses[0], 1, request_id) from e
        return job_of(done)

    async def get_job(self, job_id: str, *, wait_s: float = 0.0, timeout_s: float | None = None) -> Job:
        """The job; with ``wait_s`` (at most 60), once it changes (a segment finishes, it ends)."""
        request = pb.GetJobRequest(job_id=job_id, wait_ms=int(wait_s * 1000))
        return job_of(await self._job_call("GetJob", request, (timeout_s or self.timeout_s) + wait_s))

    async def wait_job(self, job_id: str, *, on_progress: Callable[[Job], None] | None = None) -> Job:
        """Until the job ends; ``on_progress`` with each change."""
        while True:
            job = await self.get_job(job_id, wait_s=30)
            if on_progress is not None:
                on_progress(job)
            if job.state.finished:
                return job

    async def cancel_job(self, job_id: str, *, timeout_s: float | None = None) -> Job:
        return job_of(await self._job_call("CancelJob", pb.CancelJobRequest(job_id=job_id), timeout_s))

    async def list_jobs(self, *, page_size: int = 0, page_token: str = "", timeout_s: float | None = None) -> JobList:
        """A page of the caller's tenant's jobs, newest first: ``page_size`` of them (0: the
        server's default, 50; at most 200), after the page whose ``next_page_token`` is
        ``page_token`` (empty: the newest)."""
        request = pb.ListJobsRequest(page_size=page_size, page_token=page_token)
        got = await self._job_call("ListJobs", request, timeout_s)
        return JobList(tuple(job_of(j) for j in got.jobs), got.next_page_token)

    async def edit_job(
        self, job_id: str, edits: Sequence[SegmentEdit], *, timeout_s: float | None = None
    ) -> tuple[SegmentEdited, ...]:
        """A done job's segments said again, only those (each ``SegmentEdit``: a segment's
        translation with a new text, voice or speed); all the edits or none. What each changed,
        in order; the job's results and dubbed tracks hold the new speech from then on."""
        request = pb.EditJobRequest(job_id=job_id)
        for e in edits:
            msg = request.edits.add(segment_id=e.segment_id, target_language=e.language)
            if e.text is not None:
                msg.text = e.text
            if e.voice is not None:
                msg.voice = e.voice
            if e.speed is not None:
                msg.speed = e.speed
        got = await self._job_call("EditJob", request, timeout_s)
        return tuple(_edited(e) for e in got.edited)

    async def job_result_chunks(
        self,
        job_id: str,
        format: str = "json",
        language: str = "",
        *,
        video: pb.VideoOptions | None = None,
        loudness: str | float | None = None,
        true_peak_dbtp: float | None = None,
    ) -> AsyncIterator[bytes]:
        """The results as a document (``json``, ``srt``, ``vtt`` of ``language``: a target or
        ``transcript``), a target's dubbed track (``wav``; of a done job brought to ``loudness``,
        as ``save_job_video``'s) or a video job's dubbed video (``video``, holding what ``video``
        says: ``save_job_video``), chunk by chunk."""
        if format not in _FORMATS:
            raise ValueError(f"format: one of {', '.join(_FORMATS)}")
        if (loudness is not None or true_peak_dbtp is not None) and format != "wav":
            raise ValueError("loudness and true_peak_dbtp are a dubbed track's (format='wav'); a video's: video=")
        request = pb.GetJobResultsRequest(job_id=job_id, format=_FORMATS[format], language=language, video=video)
        if loudness is not None or true_peak_dbtp is not None:
            request.loudness.CopyFrom(_loudness_pb(loudness, true_peak_dbtp))
        request_id = uuid.uuid4().hex
        address = self.addresses[0]
        call = self._stub(address, SERVICE).GetJobResults(request, metadata=self._metadata_for(request_id))
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as e:
            raise self._error(e, address, 1, request_id) from e

    async def job_results(self, job_id: str, format: str = "json", language: str = "") -> bytes:
        """``job_result_chunks`` joined (a JSON document or subtitles; a long dubbed track: save it)."""
        return b"".join([c async for c in self.job_result_chunks(job_id, format, language)])

    async def save_job_video(
        self,
        job_id: str,
        path: Path | str,
        *,
        languages: Sequence[str] = (),
        original: bool = False,
        mix: str = "dub",
        mix_gain_db: float | None = None,
        subtitles: bool = True,
        loudness: str | float | None = None,
        true_peak_dbtp: float | None = None,
        on_received: Callable[[int], None] | None = None,
    ) -> int:
        """A done video job's dubbed video (issue 90: the upload's container, its video untouched)
        written to ``path``; the bytes written. It holds a dubbed track per target in ``languages``
        (default: every target, the first the default track), the source's audio as a track too
        with ``original``, each dubbed track the dub alone (``mix="dub"``) or over the source's
        audio lowered to ``mix_gain_db`` while the dub speaks (``mix="duck"``; default -18 dB),
        and a subtitle track per language (``subtitles``). ``loudness``: each dubbed track (as it
        plays) brought to a preset's loudness (``"ebu_r128"`` -23 LUFS, ``"atsc_a85"`` -24 LKFS,
        ``"streaming"`` -14 LUFS) or to a number of LUFS, its true peak under ``true_peak_dbtp``
        (default: the preset's, else -1 dBTP). ``on_received``: bytes so far."""
        if mix not in _MIXES:
            raise ValueError(f"mix: one of {', '.join(_MIXES)}")
        options = pb.VideoOptions(
            languages=list(languages), original=original, mix=_MIXES[mix], no_subtitles=not subtitles
        )
        if mix_gain_db is not None:
            options.mix_gain_db = mix_gain_db
        if loudness is not None or true_peak_dbtp is not None:
            options.loudness.CopyFrom(_loudness_pb(loudness, true_peak_dbtp))
        size = 0
        with open(path, "wb") as f:  # noqa: ASYNC230 (a chunk at a time, written as it comes)
            async for chunk in self.job_result_chunks(job_id, "video", video=options):
                f.write(chunk)
                size += len(chunk)
                if on_received is not None:
                    on_received(size)
        return size

    async def save_job_results(
        self,
        job_id: str,
        path: Path | str,
        format: str = "json",
        language: str = "",
        *,
        loudness: str | float | None = None,
        true_peak_dbtp: float | None = None,
    ) -> int:
        """``job_result_chunks`` written to ``path`` as they come (a dubbed track, ``wav``, at
        ``loudness`` where given); returns the bytes written."""
        size = 0
        with open(path, "wb") as f:  # noqa: ASYNC230 (a chunk at a time, written as it comes)
            chunks = self.job_result_chunks(job_id, format, language, loudness=loudness, true_peak_dbtp=true_peak_dbtp)
            async for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
        return size


def _loudness_pb(loudness: str | float | None, true_peak_dbtp: float | None) -> pb.Loudness:
    """A dubbed track's loudness: a preset's name or a number of LUFS, and its true-peak ceiling."""
    msg = pb.Loudness()
    if isinstance(loudness, str):
        msg.preset = loudness
    elif loudness is not None:
        msg.integrated_lufs = float(loudness)
    if true_peak_dbtp is not None:
        msg.true_peak_dbtp = true_peak_dbtp
    return msg
