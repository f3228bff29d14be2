"""Text in (``TranslateText``), for every door: the text counterpart of ``ClipDriver``.

A door hands ``TextDriver.run`` a ``read`` that receives and parses its message as a
``TextRequest``; the driver owns the rest, once for every door: admission before anything is read
(a unary call of its tenant and token: ``SessionManager.admit_unary``), then, once the request is
read (its door's deadline), its checks (``task.resolve_text``: every refusal an InvalidInput
saying what to fix) and a Translate call's admission (``max_translate_calls`` and the tenant's
caps: a call that never sends its texts holds none of them), the engine (each text
one job of the call's own engine session, batched with every stream's segments under the same fair
share), the results (``build_result``: the same speech resampling and Opus encoding as a
segment's) and the accounting: the tenant's calls, each text's metrics as a segment's, and the
call's access line. Event loop only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from translate_svc.engine.results import EngineResult
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.accounting import CallOutcome, accounted
from translate_svc.session.events import TextRequest
from translate_svc.session.manager import SessionManager
from translate_svc.session.results import build_result, needs_encoding
from translate_svc.session.task import change, checks, inputs
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, Tenant
from translate_svc.types import Segment, SegmentResult, TranslationTask

R = TypeVar("R")

#: a text input's audio (none), and a text result's segment's samples
_NO_SAMPLES = inputs.NO_SAMPLES


@dataclass(frozen=True)
class TextsResult:
    """One ``SegmentResult`` per text, in order (``segment_id``: the text's index; no span)."""

    results: tuple[SegmentResult, ...]


class TextDriver:
    """Drives one text call; create one per call. The entry point of every door's text method:
    ``TextDriver(manager, tenant=..., call=...).run(read, render)`` where ``read`` returns the
    call's ``TextRequest`` as the door parsed it."""

    _ids = itertools.count()

    def __init__(
        self,
        manager: SessionManager,
        *,
        tenant: Tenant = DEFAULT_TENANT,
        call: CallInfo | None = None,
        token: bytes | None = None,
    ):
        self._m = manager
        self.tenant = tenant
        self.call = call
        #: the digest of the caller's token (its unary calls are bounded); None: no tokens
        self.token = token

    async def run(self, read: Callable[[], Awaitable[TextRequest]], render: Callable[[TextsResult], R]) -> R:
        """Admit the call, ``read`` its request, admit it as a Translate call and check it,
        translate every text and return ``render``'s answer. Raises the ServiceError that ends the
        call: the request's InvalidInput (or the door's read deadline), RESOURCE_EXHAUSTED when
        the node or tenant is full or the engine's queue has no room, UNAVAILABLE when the model
        is not serving. A text the model fails on comes back with its own error; the others
        still return."""
        with accounted(self.tenant, self.call, "translate_text", self._m.events) as outcome:
            async with self._m.admit_unary(self.tenant, self.token):
                request = await read()
                async with self._m.admit_clip(self.tenant):
                    return await self._translated(request, outcome, render)

    async def _translated(self, request: TextRequest, outcome: CallOutcome, render: Callable[[TextsResult], R]) -> R:
        task = checks.resolve_text(
            self._m.card,
            self._m.limits,
            request.texts,
            request.source_language,
            list(request.target_languages),
            request.output,
            request.terms,
        )
        task = change.for_tenant(task, self.tenant)
        stored = await self._m.glossaries.terms(
            self.tenant.name, request.glossaries, task.target_languages, task.source_language or ""
        )
        task = change.with_stored(task, stored)
        outcome.config.update(_brief(request, task))
        record = outcome.record
        assert record is not None
        record.start(None, task.source_language, task.target_languages)
        record.account_text_in(request.characters)
        result = await self.translate(request.texts, task)
        outcome.results.extend(result.results)
        for r in result.results:
            record.account_result(r)
        return render(result)

    async def translate(self, texts: Sequence[str], task: TranslationTask) -> TextsResult:
        """Every text (checked: ``task.resolve_text``) as one engine job of this call's own engine
        session (its fair share of the queue, its jobs dropped if the call goes away), all
        submitted at once and batched by the engine with everyone else's work."""
        assert task.source_language is not None
        owner = f"text-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        engine = self._m.engine
        started = time.perf_counter()
        engine.join(owner)
        futures: list[asyncio.Future[EngineResult]] = []
        try:
            for text in texts:
                item = inputs.text_input(task, text)
                futures.append(engine.submit(owner, item))
            jobs = await asyncio.gather(*futures)
        finally:
            for f in futures:
                f.cancel()  # a no-op once done; else (a failure, the caller gone) the job is dropped
            engine.leave(owner)
        segments = [Segment(k, 0, 0, _NO_SAMPLES) for k in range(len(jobs))]
        if needs_encoding(task.output):  # resampling and Opus: CPU work, off the loop
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._m.decode_pool, _build_all, segments, task, jobs, started)
        else:
            results = _build_all(segments, task, jobs, started)
        return TextsResult(tuple(results))


def _build_all(
    segments: Sequence[Segment], task: TranslationTask, jobs: Sequence[EngineResult], started: float
) -> list[SegmentResult]:
    return [build_result(seg, task, job, started, 0.0) for seg, job in zip(segments, jobs, strict=True)]


def _brief(request: TextRequest, task: TranslationTask) -> dict[str, Any]:
    """The access line's config: languages, what was asked, and the request's size (no text)."""
    outputs = {"text": task.output.text, "speech": task.output.speech}
    brief: dict[str, Any] = {
        "source": task.source_language,
        "targets": ",".join(task.target_languages),
        "outputs": ",".join(name for name, on in outputs.items() if on),
        "texts": len(request.texts),
        "chars": request.characters,
    }
    if task.terms:
        brief["terms"] = len(task.terms)
    return brief
