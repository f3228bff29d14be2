"""What the jobs API does, once for both ports (``routes.py`` on HTTP, ``grpc_door.py`` on gRPC):
a job's spec checked against the model and the limits, its creation under the tenant's caps
(``jobs=``, ``job_hours=``), its audio received in parts and queued once whole and checked, or,
with an https URL the fetch rules take, queued at once with its URL (the runner that claims it
fetches it: ``jobs/intake.py``), its status, cancel and results. Every refusal is a
``ServiceError`` naming what to change. Event loop only."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from translate_svc.errors import Conflict, InvalidInput, Overloaded
from translate_svc.jobs.intake import check_url
from translate_svc.jobs.model import JobSpec, JobState, JobStatus
from translate_svc.jobs.reader import probe
from translate_svc.jobs.runner import JobRunner
from translate_svc.session import task as checks
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.types import AudioEncoding, OutputOptions

OFF = "jobs are off on this server: its operator sets jobs.dir (TRANSLATE_SVC_JOBS__DIR) to keep them"
#: the longest wait of a status request
MAX_WAIT_S = 60.0


class JobDesk:
    """The jobs of one process, as both ports serve them."""

    def __init__(self, sessions: SessionManager, runner: JobRunner | None) -> None:
        self._m = sessions
        self._runner = runner

    @property
    def on(self) -> bool:
        return self._runner is not None

    @property
    def jobs(self) -> JobRunner:
        if self._runner is None:
            raise InvalidInput(OFF)
        return self._runner

    @property
    def fetch_checks(self) -> dict[str, object]:
        """A test's fetch checks (``allowed=``, ``ssl_context=``), the runner's: it fetches URL jobs."""
        return self.jobs.fetch_checks

    @fetch_checks.setter
    def fetch_checks(self, checks: dict[str, object]) -> None:
        self.jobs.fetch_checks = checks

    async def stop(self) -> None:
        """Nothing of the desk's own runs: a URL job's fetch is the runner's (stopped with it)."""

    def spec(
        self,
        *,
        encoding: AudioEncoding,
        sample_rate_hz: int,
        channels: int,
        source_language: str,
        target_languages: list[str],
        speech: bool,
        transcript: bool,
        word_timings: bool,
        glossaries: list[str],
    ) -> JobSpec:
        """A job's spec, its languages and options checked now, against the model and the limits:
        not hours later."""
        if encoding is AudioEncoding.OPUS:
            raise InvalidInput(
                "format.encoding: container, linear16, float32, mulaw or alaw (a job takes no Opus packets)"
            )
        raw = encoding is not AudioEncoding.CONTAINER
        if raw and not (8000 <= sample_rate_hz <= 48000 and channels in (1, 2)):
            raise InvalidInput("raw samples need format.sample_rate_hz (8000..48000) and channels (1 or 2)")
        if len(target_languages) > 64 or len(glossaries) > 64:
            raise InvalidInput("target_languages and glossaries: at most 64 each")
        output = OutputOptions(speech=speech, transcript=transcript, word_timings=word_timings)
        checks.resolve_task(self._m.card, self._m.limits, source_language, list(target_languages), output)
        return JobSpec(
            encoding,
            sample_rate_hz if raw else 0,
            channels if raw else 1,
            source_language,
            tuple(target_languages),
            speech=speech,
            transcript=transcript,
            word_timings=word_timings,
            glossaries=tuple(glossaries),
        )

    async def create(self, tenant: Tenant, spec: JobSpec, url: str | None) -> JobStatus:
        """A new job, uploading (its parts next), or queued with ``url`` (checked now by the fetch
        rules: a URL they refuse makes no job), which the runner that claims it fetches first."""
        jobs = self.jobs
        if url is not None:
            check_url(jobs.settings, url, jobs.fetch_checks)
        count, _ = await jobs.store.tenant_load(tenant.name)
        cap = tenant.caps.jobs
        if cap is not None and count >= cap:
            raise Overloaded(
                f"this tenant has {count} jobs not finished, its cap (jobs={cap} in the tokens file): wait for "
                "one to finish, or cancel one"
            )
        if url is not None:
            # stored queued with its URL: whichever process claims it fetches it, so a stop or a
            # death mid-fetch leaves it to the next claim (never an upload left to expire)
            job = await jobs.store.create(tenant.name, dataclasses.replace(spec, url=url), JobState.QUEUED)
            jobs.enqueue(job.job_id)
            return job
        job = await jobs.store.create(tenant.name, spec, JobState.UPLOADING)
        expires = time.time() + jobs.settings.upload_timeout_s
        await jobs.store.set_state(job.job_id, JobState.UPLOADING, expires=expires)
        return await jobs.store.get(job.job_id)

    async def get(self, tenant: Tenant, job_id: str, wait_s: float = 0.0) -> JobStatus:
        """The job (another tenant's is NotFound); with ``wait_s``, once it ends or after that long."""
        job = await self.jobs.store.get(job_id, tenant.name)
        if wait_s > 0:
            job = await self.jobs.wait(job.job_id, min(MAX_WAIT_S, wait_s))
        return job

    async def part(self, tenant: Tenant, job_id: str, offset: int, data: bytes) -> int:
        """One part of an upload at ``offset`` (where the upload ends: else Conflict, nothing written)."""
        jobs = self.jobs
        job = await self.get(tenant, job_id)
        if job.state is not JobState.UPLOADING:
            raise Conflict(f"the job is {job.state.value}: parts go to a job still uploading")
        if offset != job.received_bytes:
            raise Conflict(
                f"this part starts at byte {offset}, the upload has {job.received_bytes}: send the part that "
                f"starts at {job.received_bytes}"
            )
        expires = time.time() + jobs.settings.upload_timeout_s
        return await jobs.store.append_part(job, offset, data, jobs.settings.max_upload_bytes, expires)

    async def complete(self, tenant: Tenant, job_id: str) -> JobStatus:
        job = await self.get(tenant, job_id)
        if job.state is not JobState.UPLOADING:
            raise Conflict(f"the job is {job.state.value}: only an upload is completed")
        if not job.received_bytes:
            raise InvalidInput("nothing was uploaded: send the audio's parts first")
        return await self._queue(job, tenant)

    async def _queue(self, job: JobStatus, tenant: Tenant) -> JobStatus:
        """Check the whole audio (readable, within ``jobs.max_audio_s``) and the tenant's hours, then queue it."""
        jobs = self.jobs
        path = jobs.store.audio_path(job.job_id)
        loop = asyncio.get_running_loop()
        duration_ms = await loop.run_in_executor(None, probe, path, job.spec.fmt, jobs.settings.max_audio_s)
        cap = tenant.caps.job_hours
        if cap is not None:
            _, hours = await jobs.store.tenant_load(tenant.name)
            if hours + duration_ms / 3_600_000 > cap:
                raise Overloaded(
                    f"this job's {duration_ms / 3_600_000:.2f} h with the tenant's {hours:.2f} h of jobs not finished "
                    f"is over its cap (job_hours={cap:g} in the tokens file): wait for a job to finish"
                )
        await jobs.store.set_duration(job.job_id, duration_ms)
        if not await jobs.store.set_state(job.job_id, JobState.QUEUED, only_from=(JobState.UPLOADING,)):
            raise Conflict("the job is no longer uploading (cancelled?)")
        jobs.enqueue(job.job_id)
        return await jobs.store.get(job.job_id)

    async def cancel(self, tenant: Tenant, job_id: str) -> JobStatus:
        return await self.jobs.cancel(await self.get(tenant, job_id))
