"""The ``Jobs`` gRPC service on the gRPC port (``rpc.PortServices``): the same jobs as ``/v1/jobs``,
through the same ``JobDesk``. It shares the port's TLS, token interceptor (each method needs the
``jobs`` permission), call limits and lifetime. Every method is served
request-streaming: a unary one is admitted as its caller's unary call before its request is read,
which must come within ``limits.request_read_timeout_s``; ``UploadJobAudio``'s messages each within
``jobs.part_timeout_s`` of the last, each at most ``jobs.max_part_bytes`` of audio, each written to
a file before it is appended. A call that holds on (``GetJob`` with ``wait_ms``, ``UploadJobAudio``,
``GetJobResults``) is also one of its tenant's ``limits.http_max_held_requests_per_tenant``, as on
the HTTP port. ``ListJobs`` pages the caller's tenant's jobs as ``GET /v1/jobs`` does.
``GetJobResults`` with ``JOB_RESULTS_VIDEO`` sends a done video job's dubbed video
, made as ``GET /v1/jobs/{id}/video`` makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput, ServiceError, TooSlow, storage_full
from translate_svc.jobs import cues
from translate_svc.jobs.desk import JobDesk
from translate_svc.jobs.edits import EditedSegment
from translate_svc.jobs.model import JobState, JobStatus
from translate_svc.jobs.request import fit_default
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.session.work import OnPool
from translate_svc.transport.api_log import Method, logged, logged_method
from translate_svc.transport.door import DoorContext
from translate_svc.transport.jobs import options, render
from translate_svc.transport.rpc import (
    call_deadline,
    call_of,
    caller_of,
    parse_message,
    read_request,
    token_key,
    unary_errors,
)
from translate_svc.transport.rpc_errors import status_for
from translate_svc.transport.tokens import Permission, TokenStore

M = TypeVar("M", bound=Message)

SERVICE = pb.DESCRIPTOR.services_by_name["Jobs"].full_name
METHODS = ("CreateJob", "UploadJobAudio", "GetJob", "CancelJob", "GetJobResults", "ListJobs", "EditJob")
METHOD_PERMISSIONS: Mapping[str, Permission] = {f"/{SERVICE}/{m}": Permission.JOBS for m in METHODS}
SMALL = 64 * 1024
#: a job's create and edits at most: subtitles to voice (``jobs/cues.py``), edits' texts
LARGE = cues.MAX_CHARS + SMALL
_STATES = {s: pb.JobState.Value(f"JOB_{s.name}") for s in JobState}
_CHUNK = 256 * 1024


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> None:
    st = status_for(err)
    await context.abort(st.code, st.details, st.trailing_metadata)


_errors = unary_errors(_abort)
#: each call's access line, its code the refusal's
_logged = logged_method(call_of, lambda door: caller_of(door._tokens).tenant.name)


def _unary(handler: Method) -> Method:
    return _errors(_logged(handler))


def job_to_pb(job: JobStatus) -> pb.Job:
    d = job.to_json()
    return pb.Job(
        job_id=job.job_id,
        state=_STATES[job.state],
        received_bytes=job.received_bytes,
        duration_ms=job.duration_ms,
        done_ms=job.done_ms,
        progress=d["progress"],
        segments=job.segments,
        error=job.error,
        created_at=job.created_at,
        expires_at=job.expires_at,
        source_language=job.spec.source_language,
        target_languages=list(job.spec.target_languages),
        conversation=pb.Conversation(languages=job.spec.conversation) if job.spec.conversation else None,
        vad=_vad_pb(job.spec.vad),
        channel_mode=pb.CHANNEL_MODE_SEPARATE if job.spec.separate_channels else pb.CHANNEL_MODE_MIXED,
        speaker_voices=_voices_pb(job.spec.speaker_voices),
    )


def _edited_pb(edited: EditedSegment) -> pb.SegmentEdited:
    def translation(t: dict[str, Any]) -> pb.EditedTranslation:
        return pb.EditedTranslation(
            text=t["text"], voice=t["voice"] or 0, speech_rate=t["speech_rate"] or 0.0, audio_ms=t["audio_ms"] or 0
        )

    return pb.SegmentEdited(
        segment_id=edited.segment_id,
        target_language=edited.language,
        changed=list(edited.changed),
        before=translation(edited.before),
        after=translation(edited.after),
    )


def _voices_pb(voices: tuple[tuple[int, int], ...] | None) -> pb.SpeakerVoices | None:
    """A job's voice per speaker, as ``SpeakerVoices`` (None: one voice)."""
    return None if voices is None else pb.SpeakerVoices(voices=dict(voices))


def _vad_pb(vad: tuple[tuple[str, float | int | str], ...]) -> pb.VadOptions | None:
    """The VAD options a job set, as ``VadOptions`` (None: it set none)."""
    fields: dict[str, Any] = dict(vad)
    return pb.VadOptions(**fields) if fields else None


class JobsDoor:
    """The service of one process. Event loop only."""

    def __init__(self, ctx: DoorContext, desk: JobDesk) -> None:
        self._m: SessionManager = ctx.sessions
        self._tokens: TokenStore | None = ctx.tokens
        self._settings = ctx.settings.jobs
        self.desk = desk
        self.permissions: Mapping[str, Permission] = METHOD_PERMISSIONS

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        unary = grpc.stream_unary_rpc_method_handler
        job = pb.Job.SerializeToString
        return (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "CreateJob": unary(self.CreateJob, response_serializer=job),
                    "UploadJobAudio": unary(self.UploadJobAudio, response_serializer=job),
                    "GetJob": unary(self.GetJob, response_serializer=job),
                    "CancelJob": unary(self.CancelJob, response_serializer=job),
                    "ListJobs": unary(self.ListJobs, response_serializer=pb.ListJobsResponse.SerializeToString),
                    "EditJob": unary(self.EditJob, response_serializer=pb.EditJobResponse.SerializeToString),
                    "GetJobResults": grpc.stream_stream_rpc_method_handler(
                        self.GetJobResults, response_serializer=pb.JobResultsChunk.SerializeToString
                    ),
                },
            ),
        )

    def describe(self) -> list[str]:
        return ["background jobs (Jobs) on the same port"] if self.desk.on else []

    async def _serve(
        self,
        raw_requests: AsyncIterator[bytes],
        kind: type[M],
        answer: Callable[[Tenant, M], Awaitable[Message]],
        held: Callable[[M], bool] = lambda msg: False,
        largest: int = SMALL,
    ) -> Message:
        """Admit the call as its caller's unary call, read its one request (at most ``largest``
        bytes) by the deadline, answer (one that holds on, as ``held`` says of its request, as one
        of the tenant's held calls)."""
        limit_s = self._m.limits.request_read_timeout_s
        deadline = call_deadline(limit_s)
        caller = caller_of(self._tokens)
        async with self._m.admit_unary(caller.tenant, token_key(caller)):
            raw = await read_request(raw_requests, deadline, limit_s, kind.DESCRIPTOR.name)
            msg = parse_message(
                kind,
                raw,
                largest,
                too_large="send less",
                unparsable=": generate the client from this server's translate.proto",
            )
            if not held(msg):
                return await answer(caller.tenant, msg)
            async with self._m.holding_request(caller.tenant):
                return await answer(caller.tenant, msg)

    @_unary
    async def CreateJob(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: Tenant, msg: pb.CreateJobRequest) -> Message:
            self.desk.jobs  # noqa: B018 (off: INVALID_ARGUMENT saying how)
            asked = options.from_pb(msg, fit_default(self._settings))
            spec = self.desk.spec(asked)
            return job_to_pb(await self.desk.create(tenant, spec, asked.url, asked.subtitles))

        return await self._serve(raw, pb.CreateJobRequest, answer, largest=LARGE)

    @_unary
    async def UploadJobAudio(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        caller = caller_of(self._tokens)
        limit = self._settings.max_part_bytes + SMALL
        wait_s = self._settings.part_timeout_s
        async with self._m.admit_unary(caller.tenant, token_key(caller)), self._m.holding_request(caller.tenant):
            messages = aiter(raw)
            job_id, job = "", None
            while True:
                try:
                    got = await asyncio.wait_for(anext(messages, None), wait_s)
                except TimeoutError:
                    raise TooSlow(
                        f"no part came within {wait_s:g} s (jobs.part_timeout_s): send the next part sooner"
                    ) from None
                if got is None:
                    break
                msg = parse_message(
                    pb.UploadJobAudioRequest, got, limit, too_large="send smaller parts (jobs.max_part_bytes)"
                )
                job_id = job_id or msg.job_id
                if not job_id:
                    raise InvalidInput("job_id: the first message names the job (CreateJob's job_id)")
                if msg.data:
                    await self._part(caller.tenant, job_id, msg.offset, msg.data)
                if msg.complete:
                    job = await self.desk.complete(caller.tenant, job_id)
            if not job_id:
                raise InvalidInput("the call carried no UploadJobAudioRequest: send the job's parts")
            return job_to_pb(job or await self.desk.get(caller.tenant, job_id))

    async def _part(self, tenant: Tenant, job_id: str, offset: int, data: bytes) -> None:
        """A message's part, checked against the upload, written to a file of its own (on the
        part-write pool, as the tenant's call: ``session/work.py``; a full disk: RESOURCE_EXHAUSTED,
        nothing kept), appended."""
        job = await self.desk.uploading(tenant, job_id, offset)
        path = self.desk.part_path(job)
        writes = OnPool(self._m.work.part_writes, tenant.name)
        try:
            try:
                await writes(functools.partial(path.write_bytes, data))
            except OSError as e:
                full = storage_full(e, "this part")
                if full is None:
                    raise
                raise full from None
            await self.desk.part(tenant, job, offset, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await writes(path.unlink)

    @_unary
    async def GetJob(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: Tenant, msg: pb.GetJobRequest) -> Message:
            return job_to_pb(await self.desk.get(tenant, msg.job_id, msg.wait_ms / 1000))

        return await self._serve(raw, pb.GetJobRequest, answer, held=lambda msg: msg.wait_ms > 0)

    @_unary
    async def CancelJob(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: Tenant, msg: pb.CancelJobRequest) -> Message:
            return job_to_pb(await self.desk.cancel(tenant, msg.job_id))

        return await self._serve(raw, pb.CancelJobRequest, answer)

    @_unary
    async def ListJobs(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: Tenant, msg: pb.ListJobsRequest) -> Message:
            page = await self.desk.list(tenant, msg.page_size, msg.page_token)
            return pb.ListJobsResponse(jobs=[job_to_pb(job) for job in page.jobs], next_page_token=page.next_token)

        return await self._serve(raw, pb.ListJobsRequest, answer)

    @_unary
    async def EditJob(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: Tenant, msg: pb.EditJobRequest) -> Message:
            done = await self.desk.edit(tenant, msg.job_id, options.edits_from_pb(msg))
            return pb.EditJobResponse(job_id=msg.job_id, edited=[_edited_pb(e) for e in done])

        return await self._serve(raw, pb.EditJobRequest, answer, held=lambda msg: True, largest=LARGE)

    async def GetJobResults(
        self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.JobResultsChunk]:
        try:
            limit_s = self._m.limits.request_read_timeout_s
            deadline = call_deadline(limit_s)
            caller = caller_of(self._tokens)
            with logged(call_of(context, "GetJobResults"), caller.tenant.name):
                async with (
                    self._m.admit_unary(caller.tenant, token_key(caller)),
                    self._m.holding_request(caller.tenant),
                ):
                    request = await read_request(raw, deadline, limit_s, "GetJobResultsRequest")
                    msg = parse_message(pb.GetJobResultsRequest, request, SMALL, too_large="send less")
                    job = await self.desk.get(caller.tenant, msg.job_id)
                    store = self.desk.jobs.store
                    reads = OnPool(self._m.work.file_reads, caller.tenant.name)
                    chunks: AsyncIterator[bytes]
                    made: Path | None = None
                    if msg.format == pb.JOB_RESULTS_JSON:
                        chunks = render.json_chunks(store, job)
                    elif msg.format == pb.JOB_RESULTS_DUBBED_WAV:
                        loudness = options.loudness_from_pb(msg.loudness) if msg.HasField("loudness") else None
                        _, chunks = await render.dubbed(
                            store,
                            job,
                            msg.language,
                            self._settings.dub_overflow,
                            reads,
                            self.desk.jobs.credentials,
                            loudness=loudness,
                            maker=self.desk.jobs.videos,
                        )
                    elif msg.format == pb.JOB_RESULTS_VIDEO:
                        ask = options.video_from_pb(msg.video)
                        made = (await self.desk.jobs.videos.make(store, job, ask, self._settings.dub_overflow)).path
                        chunks = render.file_chunks(made, reads)
                    else:
                        kind = "srt" if msg.format == pb.JOB_RESULTS_SRT else "vtt"
                        chunks = _text_chunks(await render.subtitles(store, job, msg.language, kind))
                    try:
                        async for chunk in chunks:
                            for at in range(0, len(chunk), _CHUNK):
                                yield pb.JobResultsChunk(data=chunk[at : at + _CHUNK])
                    finally:
                        if made is not None:
                            await render.remove(made, reads)
        except ServiceError as e:
            await _abort(context, e)


async def _text_chunks(text: str) -> AsyncIterator[bytes]:
    yield text.encode()
