"""A tenant's jobs listed a page at a time (``GET /v1/jobs``, gRPC ``ListJobs``): newest first,
by (creation time, id) descending, each page continuing after the last job of the one before
(``JobCursor``), so a job made or deleted between two pages neither repeats nor shifts the next
page. A cursor goes to the client as an opaque token (``page_token``) and comes back checked: it
only ever narrows a query that the store runs within the caller's tenant, so a forged one shows
nothing of another tenant. Pure."""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass

from translate_svc.errors import InvalidInput
from translate_svc.jobs.model import JobStatus

#: a page's jobs when the client names no limit, and the most it may ask
DEFAULT_PAGE = 50
MAX_PAGE = 200
_ID = re.compile(r"job_[0-9a-f]{24}")
#: SQLite's page after a cursor (``store.py``): the tenant's jobs, newest first
SQL_PAGE = (
    "SELECT {columns} FROM jobs WHERE tenant = ? AND (created < ? OR (created = ? AND id < ?)) "
    "ORDER BY created DESC, id DESC LIMIT ?"
)


@dataclass(frozen=True)
class JobCursor:
    """Where a page ended: its last job's creation time and id (the next page lists older ones)."""

    created: float
    job_id: str

    def token(self) -> str:
        """The cursor as the client holds it (``next_page_token``)."""
        return base64.urlsafe_b64encode(f"{self.created!r}/{self.job_id}".encode()).decode().rstrip("=")

    @classmethod
    def of(cls, job: JobStatus) -> JobCursor:
        return cls(job.created_at, job.job_id)

    @classmethod
    def parse(cls, token: str) -> JobCursor | None:
        """A token given back (empty: the first page); one this server did not make is refused."""
        if not token:
            return None
        bad = InvalidInput("page_token: give back a next_page_token of an earlier page, or none for the newest jobs")
        if len(token) > 128:
            raise bad
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created, job_id = text.split("/", 1)
            when = float(created)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad from None
        if not math.isfinite(when) or not _ID.fullmatch(job_id):
            raise bad
        return cls(when, job_id)

    def before(self, created: float, job_id: str) -> bool:
        """Whether a job made at ``created`` with ``job_id`` comes after this cursor (is older)."""
        return created < self.created or (created == self.created and job_id < self.job_id)


@dataclass(frozen=True)
class JobPage:
    """One page of a tenant's jobs, newest first; ``next``: where the next page starts (None: the
    last page)."""

    jobs: tuple[JobStatus, ...]
    next: JobCursor | None

    @property
    def next_token(self) -> str:
        return "" if self.next is None else self.next.token()


def page_size(asked: int | None) -> int:
    """The page's size: ``DEFAULT_PAGE`` when not asked (None or 0), else 1..``MAX_PAGE``."""
    if not asked:
        return DEFAULT_PAGE
    if not 0 < asked <= MAX_PAGE:
        raise InvalidInput(f"limit (page_size): 1..{MAX_PAGE} jobs a page (none: {DEFAULT_PAGE})")
    return asked


def paged(jobs: list[JobStatus], limit: int) -> JobPage:
    """A page from up to ``limit + 1`` jobs read (one more than the page: whether another follows)."""
    page = tuple(jobs[:limit])
    return JobPage(page, JobCursor.of(page[-1]) if len(jobs) > limit and page else None)
