"""One whole-clip call (``Translate``), for every door: the unary counterpart of ``StreamDriver``.

The door reads and converts its wire message; this owns the rest, once for every door: admission
(``max_translate_calls`` and the tenant's caps, taken before the clip is read, and while it is
read one of the tenant's ``limits.max_clip_reads_per_tenant``), the clip's read deadline
(``limits.clip_read_timeout_s``) and size (``limits.max_message_bytes``), the request's checks
(``task.resolve_task``), the
translation itself (``ClipDriver.translate``: the clip decoded on the unary calls' pool, then the
same ``StreamSession`` as a stream's, fed at once), and the accounting: the tenant's audio and
calls, each segment's metrics and span, and the call's access line. Event loop only.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from translate_svc.audio.codec import decode_audio
from translate_svc.audio.limits import MAX_CONTAINER_CHANNELS
from translate_svc.errors import InvalidInput, LimitReached
from translate_svc.observability import access, tracing
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.accounting import accounted
from translate_svc.session.calls.channels import SPEAKERS_BESIDE_CHANNELS
from translate_svc.session.events import ClipResult
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.task import change, checks
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, Tenant
from translate_svc.types import (
    NO_EAR,
    NO_PARTIES,
    AudioEncoding,
    AudioFormat,
    EarOptions,
    OutputOptions,
    PartySpeech,
    SegmentResult,
    Term,
    TranslationTask,
)
from translate_svc.vad.segmenter import SegmenterConfig

R = TypeVar("R")


@dataclass(slots=True)
class ClipRequest:
    """A clip as its door parsed it: what the client asks for, not yet checked against the model
    (``ClipDriver`` checks it). ``take_content`` hands the encoded bytes on once, so that from then
    on only the decoder holds them (a clip may be up to ``limits.max_message_bytes``)."""

    content: bytes
    fmt: AudioFormat
    source_language: str
    target_languages: tuple[str, ...]
    output: OutputOptions
    vad: SegmenterConfig
    #: language detection among these candidates (empty: any); None: off
    detect: tuple[str, ...] | None = None
    terms: tuple[Term, ...] = ()
    #: noise suppression and speaker labels
    ear: EarOptions = NO_EAR
    #: stored glossaries named by id (``glossaries/``)
    glossaries: tuple[str, ...] = ()
    #: a conversation's languages, in place of targets, source and detection; None: not one
    conversation: tuple[str, ...] | None = None
    #: the conversation's stated language (none identified); None: each segment identified
    stated_language: str | None = None
    #: the conversation's voice and rate per party (``TranslationTask.parties``)
    parties: PartySpeech = NO_PARTIES
    #: each channel of a stereo clip translated on its own (a party per channel), the results
    #: labelled with their channel (as their speaker too) and merged in source-time order
    separate_channels: bool = False

    def take_content(self) -> bytes:
        content, self.content = self.content, b""
        return content


class ClipDriver:
    """Drives one clip call; create one per call."""

    def __init__(self, manager: SessionManager, *, tenant: Tenant = DEFAULT_TENANT, call: CallInfo | None = None):
        self._m = manager
        self.tenant = tenant
        self.call = call

    async def run(
        self,
        read: Callable[[], Awaitable[ClipRequest]],
        render: Callable[[ClipResult], R],
        *,
        on_result: Callable[[SegmentResult], None] | None = None,
    ) -> R:
        """Admit the call, ``read`` its clip by the deadline, check it, translate it, and return
        ``render``'s answer (a door's check of its own answer, e.g. its size, counts as the call's
        outcome). ``on_result``: each segment's result as it comes, in order (a door that streams
        them; it must not block). Raises the ServiceError that ends the call."""
        with accounted(self.tenant, self.call, "translate", self._m.events) as outcome:
            async with self._m.admit_clip(self.tenant):
                limit_s = self._m.limits.clip_read_timeout_s
                async with self._m.receiving_clip(self.tenant):
                    request = await read_within(read(), limit_s)
                check_clip_bytes(len(request.content), self._m.limits.max_message_bytes)
                task = checks.resolve_task(
                    self._m.card,
                    self._m.limits,
                    request.source_language,
                    list(request.target_languages),
                    request.output,
                    list(request.detect) if request.detect is not None else None,
                    request.terms,
                    ear=request.ear,
                    conversation=request.conversation,
                    stated=request.stated_language,
                    parties=request.parties,
                )
                stored = await self._m.glossaries.terms(
                    self.tenant.name, request.glossaries, task.target_languages, task.source_language or ""
                )
                task = change.with_stored(task, stored)
                outcome.config.update(access.config_brief(request.fmt, task))
                record = outcome.record
                assert record is not None
                record.start(None, task.source_language, task.target_languages)
                if request.separate_channels:
                    clip = await self.translate_channels(request.take_content(), request.fmt, task, request.vad)
                    if on_result is not None:
                        for r in clip.segments:
                            on_result(r)
                else:
                    clip = await self.translate(request.take_content(), request.fmt, task, request.vad, on_result)
                outcome.results.extend(clip.segments)
                outcome.audio_s = clip.audio_duration_ms / 1000
                record.account_audio(clip.audio_duration_ms / 1000)
                for r in clip.segments:
                    record.account_result(r)
                    tracing.segment_span(r, task.target_languages)
                return render(clip)

    async def translate(
        self,
        content: bytes,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        on_result: Callable[[SegmentResult], None] | None = None,
    ) -> ClipResult:
        """Translate a whole clip (admitted: ``SessionManager.admit_clip``; ``task`` checked): the
        same pipeline as a stream, fed at once, then half-closed. Its audio is drawn from the
        tenant's budget once decoded. With speaker labels, its segments are labelled again over
        the whole clip at once once all are out (``SpeakerLabels.relabel``): the answer
        carries those (``on_result``'s segments, the stream's, may differ). ``on_result``: as
        ``run``'s."""
        limits = self._m.limits
        limit_s = limits.max_clip_seconds
        loop = asyncio.get_running_loop()
        samples, rate = await loop.run_in_executor(
            self._m.decode_pool, functools.partial(decode_audio, content, fmt, max_seconds=limit_s)
        )
        del content  # the caller passed the only reference: the encoded clip is freed here
        duration_s = len(samples) / rate
        if duration_s > limit_s:  # decode_audio checks it already; kept as the contract's last word
            raise InvalidInput(
                f"the clip is {duration_s:.1f} s long; Translate takes at most {limit_s:.0f} s "
                "(use StreamingTranslate for longer audio)"
            )
        checks.check_answer_size(duration_s, task, limits)
        self._m.charge_audio(self.tenant, duration_s)  # admitted with budget left: this clip may overdraw it
        results = await self._session_results(samples, rate, task, vad, on_result)
        return ClipResult(results, round(duration_s * 1000))

    async def translate_channels(
        self, content: bytes, fmt: AudioFormat, task: TranslationTask, vad: SegmenterConfig
    ) -> ClipResult:
        """A stereo clip's channels translated each on its own, as if each were sent alone (a party
        per channel: an agent and a caller), at once: each result says its ``channel`` (1, 2; and
        as its ``speaker``), their segments merged in source-time order and numbered again. Both
        channels' seconds are drawn from the tenant's budget."""
        if task.ear.speakers:
            raise InvalidInput(SPEAKERS_BESIDE_CHANNELS)
        limits = self._m.limits
        loop = asyncio.get_running_loop()
        decoded = [
            await loop.run_in_executor(
                self._m.decode_pool,
                functools.partial(decode_audio, content, fmt, max_seconds=limits.max_clip_seconds, channel=c),
            )
            for c in range(MAX_CONTAINER_CHANNELS)
        ]
        del content
        rate = decoded[0][1]
        duration_s = len(decoded[0][0]) / rate
        checks.check_answer_size(duration_s * len(decoded), task, limits)
        self._m.charge_audio(self.tenant, duration_s * len(decoded))
        runs = [asyncio.ensure_future(self._session_results(x, rate, task, vad, None)) for x, _ in decoded]
        try:
            per_channel = await asyncio.gather(*runs)
        except BaseException:  # one channel failed (or the call went): the other stops too
            for run in runs:
                run.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            raise
        del decoded
        merged = sorted(
            (replace(r, channel=c, speaker=c) for c, results in enumerate(per_channel, 1) for r in results),
            key=lambda r: (r.start_ms, r.channel),
        )
        return ClipResult([replace(r, segment_id=i) for i, r in enumerate(merged)], round(duration_s * 1000))

    async def _session_results(
        self,
        samples: np.ndarray,
        rate: int,
        task: TranslationTask,
        vad: SegmenterConfig,
        on_result: Callable[[SegmentResult], None] | None,
    ) -> list[SegmentResult]:
        """``samples`` through a clip's session (a stream's pipeline, fed at once, then half-closed):
        its results in order."""
        session = self._m.open_clip(AudioFormat(AudioEncoding.FLOAT32, rate, 1), task, vad, self.tenant)
        speakers = session.jobs.speakers
        if speakers is not None:  # the whole clip in hand: its labels given over all its segments at once
            speakers.keep_all()
        collect = asyncio.create_task(_results(session, on_result), name=f"collect-{session.session_id}")
        try:
            await session.feed_samples(samples)
            del samples
            await session.finish()
            results = await collect
            if speakers is not None:
                results = await speakers.relabel(results)
        except BaseException:
            session.abort()
            collect.cancel()
            await asyncio.gather(collect, return_exceptions=True)
            raise
        finally:
            session.close()
        return results


def check_clip_bytes(size: int, limit: int) -> None:
    """A clip of ``size`` bytes is within ``limits.max_message_bytes`` (a door that receives it in
    chunks checks each addition, before it is held)."""
    if size > limit:
        raise InvalidInput(
            f"the clip is over this server's {limit}-byte limit (ServerLimits.max_message_bytes): send a "
            "shorter or more compressed clip, or stream it (StreamingTranslate)"
        )


async def _results(session: StreamSession, on_result: Callable[[SegmentResult], None] | None) -> list[SegmentResult]:
    out: list[SegmentResult] = []
    async for ev in session.events():
        if isinstance(ev, SegmentResult):
            out.append(ev)
            if on_result is not None:
                on_result(ev)
    return out


async def read_within(read: Awaitable[R], limit_s: float, request: str = "TranslateRequest") -> R:
    """The clip's read, within ``limit_s`` of the call's admission: the call holds one of the
    node's ``max_translate_calls`` while it waits, so a client that never sends its clip is ended
    (OUT_OF_RANGE) instead of locking the others out. Cancelling the read is safe: the call is
    unary for its client, which has nothing more to write. ``request``: what the client sends, as
    the refusal names it."""
    try:
        return await asyncio.wait_for(read, limit_s)
    except TimeoutError:
        raise LimitReached(
            f"the clip did not arrive within {limit_s:g} s of the call's start (ServerLimits.clip_read_timeout_ms): "
            f"send the {request} at once, or a shorter clip over a slow link",
            reason="clip_read_timeout",
        ) from None
