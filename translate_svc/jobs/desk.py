"""The jobs service: what the jobs API does, once for both ports and whatever their wire. The jobs door
(``transport/jobs/``: ``routes.py`` on HTTP, ``grpc_door.py`` on gRPC) only parses its wire into a
``JobRequest`` (``request.py``) and renders what the desk answers; every rule is here: a job's spec
checked against the model and the limits, its creation under the tenant's caps (``jobs=``,
``job_hours=``, else the server's defaults, and the bytes its jobs keep: ``intake.py``'s
``job_caps``), each checked by the store with the change it counts (so two requests racing cannot
both pass a cap), its audio received in parts (each a file, received whole before it is appended)
and queued once whole and checked, or, with an https URL the fetch rules take, queued at once with
its URL (the worker's fetch stage fetches it: ``intake.py``), its status, cancel, deletion and
results, and the tenant's jobs a page at a time. Every refusal is a ``ServiceError`` naming what to
change. An upload is probed in a media process (``media.py``), once: a ``complete`` refused for its
file or for its tenant's caps after the probe fails the job saying why (its slot freed), one refused
before (the media processes busy, the server stopping) leaves it uploading. Event loop only."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from translate_svc.errors import Conflict, InvalidInput, ServiceError
from translate_svc.jobs import cues, speaker_voices
from translate_svc.jobs.cues import Imported
from translate_svc.jobs.edits import EditedSegment, SegmentEdit
from translate_svc.jobs.intake import check_probed, check_url, hours_left_s, job_caps, note_probed, over_cap
from translate_svc.jobs.listing import JobCursor, JobPage, page_size, paged
from translate_svc.jobs.model import JobSpec, JobState, JobStatus
from translate_svc.jobs.request import JobRequest
from translate_svc.jobs.store import TenantFull
from translate_svc.jobs.tracks import TRACK_WIDTH
from translate_svc.jobs.worker import JobWorker
from translate_svc.session.calls.channels import SPEAKERS_BESIDE_CHANNELS
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream import ear as ears
from translate_svc.session.task import checks
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.types import AudioEncoding, SpeechEncoding

OFF = "jobs are off on this server: its operator sets jobs.dir (TRANSLATE_SVC_JOBS__DIR) to keep them"
#: the longest wait of a status request
MAX_WAIT_S = 60.0


class JobDesk:
    """The jobs of one process, as both ports serve them."""

    def __init__(self, sessions: SessionManager, worker: JobWorker | None) -> None:
        self._m = sessions
        self._worker = worker
        #: the jobs whose ``complete`` is probing their upload now (one at a time, no part meanwhile)
        self._probing: set[str] = set()
        #: subtitles to voice parsed and kept (``cues.py``): one file at a time, off the event loop
        self._parsing = ThreadPoolExecutor(1, thread_name_prefix="job-subtitles")

    @property
    def on(self) -> bool:
        return self._worker is not None

    @property
    def jobs(self) -> JobWorker:
        if self._worker is None:
            raise InvalidInput(OFF)
        return self._worker

    @property
    def fetch_checks(self) -> dict[str, object]:
        """A test's fetch checks (``allowed=``, ``ssl_context=``), the worker's: it fetches URL jobs."""
        return self.jobs.fetch_checks

    @fetch_checks.setter
    def fetch_checks(self, checks: dict[str, object]) -> None:
        self.jobs.fetch_checks = checks

    async def stop(self) -> None:
        """The desk's subtitles thread (a URL job's fetch is the worker's, stopped with it)."""
        self._parsing.shutdown(wait=False, cancel_futures=True)

    def spec(self, request: JobRequest) -> JobSpec:
        """A job's spec, its languages and every option checked now, against the model and the
        limits: not hours later. Each option is kept and passed to the job's session, never dropped
        silently; one a job cannot honour is refused saying so."""
        if request.subtitles is not None:
            request = _voicing(request)
        encoding = request.encoding
        if encoding is AudioEncoding.OPUS:
            raise InvalidInput(
                "format.encoding: container, linear16, float32, mulaw or alaw (a job takes no Opus packets)"
            )
        raw = encoding is not AudioEncoding.CONTAINER
        rate, channels = request.sample_rate_hz, request.channels
        if raw and not (8000 <= rate <= 48000 and channels in (1, 2)):
            raise InvalidInput("raw samples need format.sample_rate_hz (8000..48000) and channels (1 or 2)")
        targets, glossaries = request.target_languages, request.glossaries
        if len(targets) > 64 or len(glossaries) > 64:
            raise InvalidInput("target_languages and glossaries: at most 64 each")
        output = request.output
        if output.speech_encoding is not SpeechEncoding.LINEAR16:
            raise InvalidInput(
                "output.speech_encoding: a job's dubbed track is a WAV of PCM16 samples: leave it LINEAR16 (or unset)"
            )
        if request.separate_channels:
            _check_separable(request, raw)
        JobSpec(vad=request.vad).vad_config(self._m.vad_defaults)  # a bad option refused now, naming it
        checks.resolve_task(
            self._m.card,
            self._m.limits,
            request.source_language,
            list(targets),
            output,
            ear=request.ear,
            conversation=request.conversation,
        )
        return JobSpec(
            encoding,
            rate if raw else 0,
            channels if raw else 1,
            request.source_language,
            tuple(targets),
            speech=output.speech,
            transcript=output.transcript,
            word_timings=output.word_timings,
            text=output.text,
            speech_sample_rate_hz=output.speech_sample_rate_hz,
            speaker_id=output.speaker_id,
            profanity=output.profanity,
            speed=output.speed,
            fit=output.fit,
            ear=request.ear,
            glossaries=tuple(glossaries),
            conversation=request.conversation or (),
            vad=request.vad,
            separate_channels=request.separate_channels,
            subtitles_language=request.subtitles.language if request.subtitles is not None else "",
            speaker_voices=speaker_voices.planned(
                request.speaker_voices,
                speakers=request.ear.speakers,
                speech=output.speech,
                conversation=bool(request.conversation),
                separate_channels=request.separate_channels,
                num_speakers=self._m.card.num_speakers,
            ),
        )

    async def create(
        self, tenant: Tenant, spec: JobSpec, url: str | None, subtitles: Imported | None = None
    ) -> JobStatus:
        """A new job, uploading (its parts next), or queued with ``url`` (checked now by the fetch
        rules: a URL they refuse makes no job), which the worker that claims it fetches first. A
        job with noise suppression or speaker labels of a tenant allowed no ear is refused now
        (PERMISSION_DENIED), as its live streams are. ``subtitles``: those a job voices, parsed on
        the desk's own thread (one file at a time) and kept in its folder before its upload begins."""
        jobs = self.jobs
        if ears.uses_ear(spec.ear) and ears.ear_cap(tenant, self._m.limits) == 0:
            raise ears.ear_refused(tenant)
        loop = asyncio.get_running_loop()
        said = [] if subtitles is None else await loop.run_in_executor(self._parsing, subtitles.cues)
        if url is not None:
            check_url(jobs.settings, url, jobs.fetch_checks)
        caps = job_caps(jobs.settings, tenant)
        # stored queued with its URL: whichever process claims it fetches it, so a stop or a
        # death mid-fetch leaves it to the next claim (never an upload left to expire)
        state = JobState.UPLOADING if url is None else JobState.QUEUED
        spec = spec if url is None else dataclasses.replace(spec, url=url)
        try:
            job = await jobs.store.create(tenant.name, spec, state, max_jobs=caps.jobs, max_bytes=caps.bytes)
        except TenantFull as e:
            raise over_cap(e, caps) from None
        if said:
            await loop.run_in_executor(self._parsing, cues.keep, jobs.store.folder(job.job_id), said)
        if url is not None:
            jobs.enqueue(job.job_id)
            return job
        expires = time.time() + jobs.settings.upload_timeout_s
        await jobs.store.set_state(job.job_id, JobState.UPLOADING, expires=expires)
        return await jobs.store.get(job.job_id)

    async def get(self, tenant: Tenant, job_id: str, wait_s: float = 0.0) -> JobStatus:
        """The job (another tenant's is NotFound); with ``wait_s``, once it ends or after that long."""
        job = await self.jobs.store.get(job_id, tenant.name)
        if wait_s > 0:
            job = await self.jobs.wait(job.job_id, min(MAX_WAIT_S, wait_s))
        return job

    async def list(self, tenant: Tenant, limit: int | None, page_token: str) -> JobPage:
        """A page of the tenant's jobs, newest first (``listing.py``): ``limit`` of them
        (None or 0: the default), after the page ``page_token`` ended (empty: the newest)."""
        size, after = page_size(limit), JobCursor.parse(page_token)
        return paged(await self.jobs.store.list_jobs(tenant.name, size + 1, after), size)

    async def uploading(self, tenant: Tenant, job_id: str, offset: int) -> JobStatus:
        """The job a part at ``offset`` is for, before the part is received: still uploading, and
        the part starts where the upload ends (else Conflict: nothing is read)."""
        job = await self.get(tenant, job_id)
        if job.state is not JobState.UPLOADING:
            raise Conflict(f"the job is {job.state.value}: parts go to a job still uploading")
        if job.job_id in self._probing:
            raise Conflict("the job's upload is being checked (its complete is in progress): parts come before it")
        if offset != job.received_bytes:
            raise Conflict(
                f"this part starts at byte {offset}, the upload has {job.received_bytes}: send the part that "
                f"starts at {job.received_bytes}"
            )
        return job

    def part_path(self, job: JobStatus) -> Path:
        """Where a part of ``job``'s upload is received (the caller removes it)."""
        return self.jobs.store.part_path(job.job_id)

    async def part(self, tenant: Tenant, job: JobStatus, offset: int, part: Path) -> int:
        """One part of an upload (the file ``part``, received whole) at ``offset``: appended where
        the upload ends (else Conflict, nothing written), within the tenant's bytes. A part that
        takes the upload over ``jobs.max_upload_bytes`` or the tenant's jobs over their bytes
        fails the job as it is refused: it can never be completed, and it frees its slot now."""
        jobs = self.jobs
        caps = job_caps(jobs.settings, tenant)
        expires = time.time() + jobs.settings.upload_timeout_s
        try:
            return await jobs.store.append_part(
                job, offset, part, jobs.settings.max_upload_bytes, expires, max_bytes=caps.bytes
            )
        except TenantFull as e:
            refused = over_cap(e, caps)
            await jobs.fail_upload(job.job_id, refused)
            raise refused from None
        except InvalidInput as e:  # over the upload's limit (check_part)
            await jobs.fail_upload(job.job_id, e)
            raise
        except FileNotFoundError:  # the job ended while its part came: what it kept was deleted
            raise Conflict("the job is no longer uploading (cancelled?): its part was not kept") from None

    async def complete(self, tenant: Tenant, job_id: str) -> JobStatus:
        job = await self.get(tenant, job_id)
        if job.state is not JobState.UPLOADING:
            raise Conflict(f"the job is {job.state.value}: only an upload is completed")
        if not job.received_bytes:
            raise InvalidInput("nothing was uploaded: send the audio's parts first")
        return await self._queue(job, tenant)

    async def _queue(self, job: JobStatus, tenant: Tenant) -> JobStatus:
        """Check the whole audio (readable, within ``jobs.max_audio_s``, in a media process: never
        this one) and the tenant's hours, then queue it; a video's kind noted (its upload is kept
        once the job is done, to dub the video from: ``video.py``). A refusal of the probed upload
        fails the job."""
        if job.job_id in self._probing:
            raise Conflict("the job's complete is in progress: wait for its answer (GET the job)")
        self._probing.add(job.job_id)
        try:
            return await self._probed(job, tenant)
        finally:
            self._probing.discard(job.job_id)

    async def _probed(self, job: JobStatus, tenant: Tenant) -> JobStatus:
        jobs = self.jobs
        caps = job_caps(jobs.settings, tenant)
        left_s = await hours_left_s(jobs.store, caps, tenant)
        path = jobs.store.audio_path(job.job_id)
        try:
            probed = await jobs.media.probe(
                tenant.name, path, job.spec.fmt, job.received_bytes, jobs.settings.max_audio_s, left_s
            )
            await note_probed(jobs.store, job.job_id, probed)
            # its dubbed tracks will be kept too: they must fit what the tenant's jobs may keep
            per_s = job.spec.track_rate * TRACK_WIDTH
            tracks = probed.duration_ms * per_s // 1000 * (len(job.spec.languages) if job.spec.speech else 0)
            await check_probed(jobs.store, job, probed, caps, left_s, tracks=tracks)
        except ServiceError as e:
            if isinstance(e, InvalidInput) or e.reason == "over_cap":  # the file's, or its caps': never again
                await jobs.fail_upload(job.job_id, e)
            raise
        if not await jobs.store.set_state(job.job_id, JobState.QUEUED, only_from=(JobState.UPLOADING,)):
            raise Conflict("the job is no longer uploading (cancelled?)")
        jobs.enqueue(job.job_id)
        return await jobs.store.get(job.job_id)

    async def cancel(self, tenant: Tenant, job_id: str) -> JobStatus:
        return await self.jobs.cancel(await self.get(tenant, job_id))

    async def edit(self, tenant: Tenant, job_id: str, edits: Sequence[SegmentEdit]) -> Sequence[EditedSegment]:
        """A done job's segments said again as ``edits`` ask (``edits.py``): all of them, or none."""
        return await self.jobs.editor.edit(await self.get(tenant, job_id), tenant, edits)

    async def delete(self, tenant: Tenant, job_id: str) -> None:
        """The job and everything it keeps: at once when it had ended; cancelled, then deleted by
        the retention sweep (within ``worker.SWEEP_S``), when it had not (its run may be another
        process's, which stops within a third of its lease)."""
        jobs = self.jobs
        job = await self.get(tenant, job_id)
        if job.state.finished:
            await jobs.store.delete(job.job_id)
            return
        await jobs.cancel(job)
        await jobs.store.set_state(
            job.job_id,
            JobState.CANCELLED,
            error="deleted by its owner",
            expires=time.time(),
            only_from=(JobState.CANCELLED,),
        )


def _voicing(request: JobRequest) -> JobRequest:
    """A job that voices subtitles (``cues.py``): what it cannot take refused, its one target their
    language, no transcript (no audio is translated)."""
    assert request.subtitles is not None
    language = request.subtitles.language
    if not request.output.speech:
        raise InvalidInput("subtitles are voiced: leave speech on (they are the translation's text already)")
    if request.target_languages not in ([], [language]):
        raise InvalidInput(
            f"target_languages: the subtitles' language alone ({language}), or leave it out: the subtitles are "
            "the translation"
        )
    if request.conversation or request.separate_channels or request.ear.speakers or request.url is not None:
        raise InvalidInput(
            "subtitles are voiced as they are: no conversation, channel_mode separate, speakers or url "
            "(upload the audio or video they dub)"
        )
    output = dataclasses.replace(request.output, transcript=False)
    return dataclasses.replace(request, target_languages=[language], output=output, glossaries=[])


def _check_separable(request: JobRequest, raw: bool) -> None:
    """What a job of separate channels cannot take, refused now: raw samples of other than 2
    channels, speaker labels beside the channels (a container's channels are counted by its probe:
    ``intake.py``)."""
    if raw and request.channels != 2:
        raise InvalidInput(
            f"channel_mode separate needs 2 interleaved channels; format.channels is {request.channels}: set it to "
            "2, or leave channel_mode mixed"
        )
    if request.ear.speakers:
        raise InvalidInput(SPEAKERS_BESIDE_CHANNELS)
