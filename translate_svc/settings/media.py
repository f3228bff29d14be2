"""Untrusted media's settings (``translate_svc/sandbox/``, ``translate_svc/jobs/media.py``):
``Settings.media``. Every open of a job's upload (its probe at ``complete`` or after its fetch,
its reading while it runs, its dubbed video) runs in a sandbox process of these bounds, never in
the server's process nor on a pool it shares."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

#: the address space a sandbox process takes before it reads a byte (Python, numpy, PyAV's FFmpeg
#: libraries and libsndfile imported: about 210 MB measured with one BLAS thread, docs/security.md
#: "Hardening 7"): a bound below this much more would fail every call
MIN_MEMORY_MB = 384


class MediaSettings(BaseModel):
    """The processes that open uploaded audio and video files for jobs."""

    #: processes at once on a server process: probes (``complete``, a URL job's intake), running
    #: jobs' readers (one each) and dubbed videos being made together; a request past it waits
    #: ``wait_s`` for one, then 429 with Retry-After
    max_processes: int = Field(4, ge=1, le=256)
    #: of one tenant, waiting or running: past it, 429 at once with Retry-After (a running job
    #: whose reader finds none goes back to the queue and is claimed again shortly)
    max_processes_per_tenant: int = Field(2, ge=1, le=256)
    #: each process's address space (``RLIMIT_AS``), MB: a file whose reading needs more (a sample
    #: table stating millions of samples, an attachment of hundreds of MB) is refused (400) naming
    #: it. At least ``MIN_MEMORY_MB``: the process's own libraries take about 210 MB of it
    memory_mb: int = Field(1024, ge=MIN_MEMORY_MB, le=1024 * 1024)
    #: each call's CPU (``RLIMIT_CPU``), seconds: ``cpu_s`` and ``cpu_s_per_mb`` for each MB of the
    #: file (a probe, a job's read: decoding it through is about 1 s of CPU per hour of Opus, a
    #: few per hour of AAC); a dubbed video's remux ``cpu_s_per_audio_minute`` more for each minute
    #: of audio and each track it writes. A file over its budget is refused (400) naming it
    cpu_s: float = Field(10.0, ge=1.0, le=24 * 3600.0)
    cpu_s_per_mb: float = Field(2.0, ge=0.0, le=3600.0)
    cpu_s_per_audio_minute: float = Field(2.0, ge=0.0, le=3600.0)
    #: a remux that brings its dubbed tracks to a loudness (``audio/loudness.py``: the track made
    #: again and measured, a few passes) this much more for each minute of audio and such track
    cpu_s_per_loudness_minute: float = Field(6.0, ge=0.0, le=3600.0)
    #: the longest a request waits for a process when all are taken (then 429 with Retry-After)
    wait_s: float = Field(10.0, ge=0.0, le=600.0)
    #: a process idle this long ends (the next call starts one: about half a second)
    idle_s: float = Field(60.0, ge=0.0, le=24 * 3600.0)
    #: how much less the processes count to the kernel's scheduler than the server's threads
    niceness: int = Field(10, ge=0, le=19)

    @model_validator(mode="after")
    def _check_share(self) -> MediaSettings:
        if self.max_processes_per_tenant > self.max_processes:
            raise ValueError(
                f"media.max_processes_per_tenant ({self.max_processes_per_tenant}) must not be above "
                f"media.max_processes ({self.max_processes})"
            )
        return self
