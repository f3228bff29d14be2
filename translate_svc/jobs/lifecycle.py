"""A job's run as a session of its tenant: each claim's run of a job (``translation.py``:
from its resume point until it ends, gives its worker back or its process stops) goes through the
lifecycle every door's sessions do (``session/calls/lifecycle.py``), where before a job's session was
opened beside it and nothing counted it:

- ``session.started`` once its task is checked and its session open, and exactly one
  ``session.ended`` with its usage: the audio it was charged in this run (``billing.py``: none
  that an earlier run was charged, and what a killed run fed past its last checkpoint), its
  segments and speech. These are the usage records ``translate-svc usage`` sums, so a job's runs
  together are its audio once;
- the tenant's counters on ``/metrics`` where the usage is added (``SessionRecord``: audio
  seconds, segments, speech and text) and its calls by method (``job``);
- an access line when the run ends, with its code, its audio and its segments.

A run's call is ``door``/``method`` ``job`` and its ``request_id`` the job's id, so a job's
sessions are found by it. How a run ends, as ``session.ended`` says it (``ending``, ``reason``,
``code``): the job done, ``completed``/``ok``/``OK``; its worker given back (``Yielded``: its slice
over, its tenant's budget low), ``limit``/``job_yielded``/``OK`` (a later run goes on); cancelled
by its owner, ``cancelled``/``client``/``CANCELLED``; its process stopping, ``drain``/``draining``/
``UNAVAILABLE`` (resumed at the next start); failed, ``error`` and the error's code; its process
killed, ``lost`` (ended by another process from its checkpoint: ``webhooks/outbox.py``). A run that
gives its worker back before it started (its tenant's calls or the ear full) is no session and
writes nothing. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from translate_svc.errors import LimitReached, ServiceError, ShuttingDown
from translate_svc.jobs.store import LeaseLost
from translate_svc.observability import access, metrics, tracing
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.lifecycle import SessionRecord
from translate_svc.types import AudioFormat, SegmentResult, TranslationTask
from translate_svc.webhooks.events import EventSink

#: the method (and the events' door) of a job's run
METHOD = "job"


class Yielded(Exception):
    """The job gives its worker back: claimed again from ``until`` (the event loop's wall clock,
    ``time.time``; 0: at once), resumed from its last finished segment."""

    def __init__(self, until: float = 0.0) -> None:
        super().__init__("yielded")
        self.until = until


class JobRun:
    """One run of one job as its tenant's session: ``start`` once its session is open, ``audio``
    and ``result`` as it translates, all inside ``running``. ``cancelled``: whether the run's
    cancel is its owner's (else its process is stopping)."""

    def __init__(self, events: EventSink, tenant: str, job_id: str, cancelled: Callable[[], bool]) -> None:
        self.tenant = tenant
        self.call = CallInfo(job_id, METHOD)
        self.record = SessionRecord(events, tenant, self.call)
        self._cancelled = cancelled
        self._config: dict[str, Any] = {}
        self._audio_s = 0.0
        self._segments: Counter[str] = Counter()
        self._targets: tuple[str, ...] = ()
        self.started = False

    def start(self, session_id: str, fmt: AudioFormat, task: TranslationTask) -> None:
        self.started = True
        self._targets = task.target_languages
        self._config = access.config_brief(fmt, task)
        self.record.start(session_id, task.source_language, task.target_languages)

    def audio(self, seconds: float) -> None:
        """``seconds`` of the job's audio translated (drawn from the tenant's budget)."""
        self._audio_s += seconds
        self.record.account_audio(seconds)

    def result(self, result: SegmentResult) -> None:
        self.counted("OK" if result.error is None else result.error.code)
        self.record.account_result(result)
        tracing.segment_span(result, self._targets)

    def counted(self, code: str) -> None:
        """One more segment ended with ``code`` (``OK``, or its error's), as the access line counts."""
        self._segments[code] += 1

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The run, ended as what ends it says (the module's list); its exception goes on."""
        code = "OK"
        cause: BaseException | None = None
        try:
            yield
        except Yielded:
            if not self.started:
                raise
            code, cause = "OK", LimitReached("the job gave its worker back", reason="job_yielded")
            raise
        except asyncio.CancelledError:
            if self._cancelled():
                code = "CANCELLED"
            else:
                code, cause = "UNAVAILABLE", ShuttingDown("the server stopped: the job resumes at its next start")
            raise
        except ServiceError as e:
            code, cause = e.code.value, e
            raise
        except LeaseLost as e:  # another process took the job over: it goes on there
            code, cause = "ABORTED", e
            raise
        except Exception as e:
            code, cause = "INTERNAL", e
            raise
        finally:
            if self.started or code != "OK" or cause is not None or self._segments:
                self._end(code, cause)

    def _end(self, code: str, cause: BaseException | None) -> None:
        metrics.tenant_call(self.tenant, METHOD, code)
        self.record.end(code, cause)
        access.log_call(
            self.call,
            code=code,
            tenant=self.tenant,
            config=self._config,
            audio_s=self._audio_s,
            segments=self._segments,
        )
