"""Text in (``TranslateText``, issue 36), for every door: the text counterpart of ``ClipDriver``.

A door parses its message and hands ``TextDriver.run`` a ``read`` that resolves it
(``resolve_text``: every refusal an InvalidInput saying what to fix); the driver owns the rest,
once for every door: admission (a text call counts as a Translate call: ``max_translate_calls``
and the tenant's caps), the engine (each text one job of the call's own engine session, batched
with every stream's segments under the same fair share), the results (``build_result``: the same
speech resampling and Opus encoding as a segment's) and the accounting: the tenant's calls, each
text's metrics as a segment's, and the call's access line. Event loop only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from translate_svc.engine.jobs import JobResult
from translate_svc.engine.runner import TEXT_CHARS_PER_SECOND, ModelInput, SourceText
from translate_svc.errors import InvalidInput
from translate_svc.observability import metrics
from translate_svc.observability.access import CallInfo
from translate_svc.session import task as checks
from translate_svc.session.accounting import accounted
from translate_svc.session.quota import DEFAULT_TENANT, Tenant
from translate_svc.session.results import build_result, needs_encoding
from translate_svc.settings import LimitsSettings
from translate_svc.types import ModelCard, OutputOptions, Segment, SegmentResult, Term, TranslationTask

if TYPE_CHECKING:
    from translate_svc.session.manager import SessionManager

R = TypeVar("R")

#: a text input's audio (none), and a text result's segment's samples
_NO_SAMPLES = np.zeros(0, np.float32)


@dataclass(frozen=True)
class TextRequest:
    """A resolved ``TranslateText`` request: the texts, and the task (languages, output, terms)
    every one of them is translated with (``task.source_language`` is always set)."""

    texts: tuple[str, ...]
    task: TranslationTask

    @property
    def characters(self) -> int:
        return sum(len(t) for t in self.texts)


@dataclass(frozen=True)
class TextsResult:
    """One ``SegmentResult`` per text, in order (``segment_id``: the text's index; no span)."""

    results: tuple[SegmentResult, ...]


def resolve_text(
    card: ModelCard,
    limits: LimitsSettings,
    texts: Sequence[str],
    source: str,
    targets: list[str],
    output: OutputOptions,
    terms: Sequence[Term] = (),
) -> TextRequest:
    """Check a text request against the loaded model and the limits (InvalidInput: what to fix).
    Counts and lengths come first, so that nothing else is looked at in a request over them."""
    if not texts:
        raise InvalidInput("texts is empty: send at least one text to translate")
    if len(texts) > limits.max_texts:
        raise InvalidInput(
            f"{len(texts)} texts: send at most {limits.max_texts} per request (ServerLimits.max_texts); "
            "split them over several calls"
        )
    for k, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise InvalidInput(
                f"texts[{k}] has {len(text)} characters: at most {limits.max_text_chars} "
                "(ServerLimits.max_text_chars); split it into sentences or paragraphs"
            )
        if not text.strip():
            raise InvalidInput(f"texts[{k}] is blank: every text needs something to translate")
    total = sum(len(t) for t in texts)
    if total > limits.max_text_request_chars:
        raise InvalidInput(
            f"the texts have {total} characters together: at most {limits.max_text_request_chars} per request "
            "(ServerLimits.max_text_request_chars); split them over several calls"
        )
    if not source:
        raise InvalidInput(
            'source_language is empty: name the texts\' language (e.g. "eng"); the text encoder needs it '
            "(there is no language detection for text)"
        )
    if not targets:
        raise InvalidInput('target_languages is empty: name at least one target language (e.g. "spa")')
    if not (output.text or output.speech):
        raise InvalidInput("output asks for nothing: text and speech are both false; set at least one")
    output = OutputOptions(
        text=output.text,
        speech=output.speech,
        transcript=False,  # the texts are their own transcript
        speech_sample_rate_hz=output.speech_sample_rate_hz,
        speaker_id=output.speaker_id,
        speech_encoding=output.speech_encoding,
    )
    task = checks.resolve_task(card, limits, source, targets, output, None, terms)
    _check_answer_size(total, task, limits)
    return TextRequest(tuple(texts), task)


def _check_answer_size(chars: int, task: TranslationTask, limits: LimitsSettings) -> None:
    """Refuse up front a request whose speech could not fit one response message: speech is
    estimated from the texts' stand-in seconds (``TEXT_CHARS_PER_SECOND``) as a clip's from its audio."""
    out = task.output
    if not out.speech:
        return
    per_char = (
        2 * out.speech_sample_rate_hz * checks.SPEECH_SECONDS_PER_INPUT_SECOND * len(task.target_languages)
    ) / TEXT_CHARS_PER_SECOND
    budget = limits.max_message_bytes - 64 * 1024  # room for texts and framing
    if chars * per_char > budget:
        raise InvalidInput(
            f"{chars} characters with speech in {len(task.target_languages)} language(s) at "
            f"{out.speech_sample_rate_hz} Hz may not fit one {limits.max_message_bytes}-byte response: send at most "
            f"{int(budget // per_char)} characters per request, fewer targets or a lower speech_sample_rate_hz"
        )


class TextDriver:
    """Drives one text call; create one per call. The entry point of every door's text method:
    ``TextDriver(manager, tenant=..., call=...).run(read, render)`` where ``read`` returns the
    call's ``TextRequest`` (usually through ``SessionManager.resolve_text``)."""

    _ids = itertools.count()

    def __init__(self, manager: SessionManager, *, tenant: Tenant = DEFAULT_TENANT, call: CallInfo | None = None):
        self._m = manager
        self.tenant = tenant
        self.call = call

    async def run(self, read: Callable[[], TextRequest], render: Callable[[TextsResult], R]) -> R:
        """Admit the call, ``read`` (resolve) its request, translate every text and return
        ``render``'s answer. Raises the ServiceError that ends the call: the request's
        InvalidInput, RESOURCE_EXHAUSTED when the node or tenant is full or the engine's queue has
        no room, UNAVAILABLE when the model is not serving. A text the model fails on comes back
        with its own error; the others still return."""
        with accounted(self.tenant, self.call, "translate_text") as outcome, self._m.admit_clip(self.tenant):
            request = read()
            outcome.config.update(_brief(request))
            result = await self.translate(request)
            outcome.results.extend(result.results)
            for r in result.results:
                metrics.observe_segment(r, self.tenant.name)
            return render(result)

    async def translate(self, request: TextRequest) -> TextsResult:
        """Every text as one engine job of this call's own engine session (its fair share of the
        queue, its jobs dropped if the call goes away), all submitted at once and batched by the
        engine with everyone else's work."""
        task = request.task
        assert task.source_language is not None
        owner = f"text-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        engine = self._m.engine
        started = time.perf_counter()
        engine.join(owner)
        futures: list[asyncio.Future[JobResult]] = []
        try:
            for text in request.texts:
                item = ModelInput(
                    _NO_SAMPLES,
                    task.target_languages,
                    None,
                    speech=task.output.speech,
                    speaker_id=task.output.speaker_id,
                    terms=task.terms,
                    text=SourceText(text, task.source_language),
                )
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
    segments: Sequence[Segment], task: TranslationTask, jobs: Sequence[JobResult], started: float
) -> list[SegmentResult]:
    return [build_result(seg, task, job, started, 0.0) for seg, job in zip(segments, jobs, strict=True)]


def _brief(request: TextRequest) -> dict[str, Any]:
    """The access line's config: languages, what was asked, and the request's size (no text)."""
    task = request.task
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
