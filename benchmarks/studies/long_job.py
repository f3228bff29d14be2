"""Two hours of audio as one job (issue 73's "done when"): a long clip submitted by upload and by URL
finishes with results equal to ``TranslateChunked`` on the same audio, with its signed webhook.

Run from the repository root::

    nice python -m benchmarks.studies.long_job --minutes 120 --json out/long_job.json
    python -m benchmarks.studies.long_job --minutes 3 --speech          # a short smoke run

1. The clip: ``--files`` from ``../shared/audio`` (real speech) read as 16 kHz mono and repeated
   (in turn) to at least ``--minutes``, written as a PCM16 WAV in a temporary folder.
2. One real ``translate-svc serve`` (``--model``, ``--device cpu``, loopback, port 0, the HTTP
   port on, its ready file awaited) with jobs on (``jobs.dir`` in the temporary folder,
   ``jobs.max_running`` 2 so both jobs run at once), ``jobs.fetch_hosts`` ``localhost``, the limits
   raised so one ``TranslateChunked`` call takes the whole clip (``limits.max_message_bytes``,
   ``max_clip_seconds``), and a webhook endpoint for ``job.completed``/``job.failed`` (a receiver
   in this process on loopback, over http: ``webhooks.allow_http``) with a fresh secret.
3. An https server in this process on loopback serves the WAV, with a certificate of a CA made
   here (``cryptography``). The server's fetch refuses loopback and private addresses and trusts
   only the system's CAs, and no setting changes either (``jobs.fetch_hosts`` only lists hosts):
   the one hook is ``JobDesk.fetch_checks`` (``allowed=``, ``ssl_context=``), which
   tests/jobs/test_http.py sets in-process. So the server runs through
   ``serve_fetching_from_loopback`` below: ``translate-svc``'s own CLI, with that hook set on the
   one desk to allow loopback addresses and trust this study's CA (nothing else changed).
4. Two jobs submitted at once, transcript and word timings on (speech with ``--speech``): into
   Spanish uploaded over REST in 16 MiB parts (``PUT /v1/jobs/<id>/audio``), into French by URL
   (the SDK's ``submit_job(url=...)``); both followed with the SDK until they end, their
   segments fetched as JSON (and with ``--speech`` each dubbed track as WAV).
5. ``TranslateChunked`` (the SDK's ``translate``) on the same file with the same options, once
   per target, after the jobs (a Translate call would make the jobs pace themselves).
6. Every segment compared (ids, times, speaker, transcript and its words, each translation's
   text and words, with ``--speech`` its speech length), each job's ``job.completed`` webhook
   verified (Standard Webhooks signature, its segment count), with ``--speech`` each dubbed
   track's length against the source's (issue 91: each segment's speech at its start, the track
   as long as the audio). A summary is printed (``--json`` too); any mismatch
   exits 1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import numpy as np
import soundfile as sf
import typer
from aiohttp import web

from benchmarks.studies.long_job_checks import (
    RATE,
    chunked_record,
    compare,
    implied_track_samples,
    job_record,
    verify_webhook,
)
from benchmarks.tools.frontend import Server
from benchmarks.tools.machine import cpu_model, git_state
from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL
from translate_svc.client import AsyncTranslateClient, Job, Segment
from translate_svc.client_cli.decode import load_pcm16k

#: one REST upload part (the server's ``jobs.max_part_bytes`` default)
PART = 16 * 1024 * 1024
#: the upload job's target, then the URL job's
UPLOAD_TARGET, URL_TARGET = "spa", "fra"

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


# -- the clip ---------------------------------------------------------------------------------


def make_clip(out: Path, minutes: float, files: Sequence[Path]) -> float:
    """``files`` as 16 kHz mono, one after another, repeated to at least ``minutes``; its seconds."""
    unit = np.concatenate([load_pcm16k(f) for f in files]).astype(np.int16)
    reps = max(1, -(-int(minutes * 60 * RATE) // len(unit)))
    with sf.SoundFile(out, "w", samplerate=RATE, channels=1, subtype="PCM_16", format="WAV") as f:
        for _ in range(reps):
            f.write(unit)
    return reps * len(unit) / RATE


# -- the loopback https server's certificate ---------------------------------------------------


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for ``localhost`` and 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        if issuer is None:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("long-job study CA", ca_key, None, ca_key)
    leaf = cert("localhost", leaf_key, ca.subject, ca_key)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def serve_fetching_from_loopback() -> None:
    """``translate-svc`` (argv as given) whose jobs' fetch allows loopback addresses and trusts the
    CA in ``LONG_JOB_CA`` (the desk's ``fetch_checks``, as tests/jobs/test_http.py sets them):
    the server has no setting for either (see the module's docstring)."""
    from translate_svc.cli import app as cli
    from translate_svc.jobs.desk import JobDesk

    context = ssl.create_default_context(cafile=os.environ["LONG_JOB_CA"])
    plain_init = JobDesk.__init__

    def init(self: JobDesk, *args: Any, **kwargs: Any) -> None:
        plain_init(self, *args, **kwargs)
        self.fetch_checks = {"allowed": lambda address: address.is_loopback, "ssl_context": context}

    JobDesk.__init__ = init  # type: ignore[method-assign]
    sys.argv[0] = "translate-svc"
    cli()


@dataclass
class Receiver:
    """Webhook deliveries, verified as they come: the verified ones by ``webhook-id`` (retries of
    one event are one), and a count of those that failed verification."""

    secret: str
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.changed.set()
        if not verify_webhook(self.secret, headers, body, time.time()):
            self.refused += 1
            return web.Response(status=400)
        self.verified.setdefault(headers["webhook-id"], json.loads(body))
        return web.Response(status=204)

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [p for p in self.verified.values() if p.get("data", {}).get("job_id") == job_id]


# -- the server's memory --------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        i += 1
    return pids


def peak_rss_mib(pid: int) -> dict[int, float]:
    """Each live process of the tree's peak RSS (``VmHWM``), MiB."""
    out: dict[int, float] = {}
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[p] = int(line.split()[1]) / 1024
    return out


def message_limit(clip_bytes: int, speech: bool) -> int:
    """Both sides' gRPC message limit: the whole clip in one TranslateChunked call, and its answer
    (with speech, about 1.5 x the audio's length of PCM16: 1 GiB of room; gRPC's ceiling is 2 GiB)."""
    return min(2**31 - 1, 2 * clip_bytes + (1 << 30 if speech else 64 << 20))


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class JobRun:
    target: str
    how: str
    job_id: str = ""
    submitted_s: float = 0.0  # upload finished (or URL accepted), from the start
    running_s: float | None = None  # first seen running
    ended_s: float = 0.0
    final: Job | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    track_samples: int | None = None


async def upload_job(base: str, clip: Path, body: dict[str, Any], run: JobRun, t0: float) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(base, json=body) as r:
            job = await r.json()
            if r.status != 201:
                raise RuntimeError(f"POST /v1/jobs: {r.status} {job}")
        run.job_id = job["id"]
        with clip.open("rb") as f:  # a 16 MiB part at a time
            offset = 0
            while part := f.read(PART):
                async with http.put(f"{base}/{run.job_id}/audio?offset={offset}", data=part) as r:
                    if r.status != 200:
                        raise RuntimeError(f"part at {offset}: {r.status} {await r.text()}")
                offset += len(part)
        async with http.post(f"{base}/{run.job_id}/complete") as r:
            if r.status != 202:
                raise RuntimeError(f"complete: {r.status} {await r.text()}")
    run.submitted_s = time.monotonic() - t0


async def follow(client: AsyncTranslateClient, run: JobRun, t0: float, folder: Path, speech: bool) -> None:
    def seen(job: Job) -> None:
        if run.running_s is None and job.state.value in ("running", "done"):
            run.running_s = time.monotonic() - t0

    run.final = await client.wait_job(run.job_id, on_progress=seen)
    run.ended_s = time.monotonic() - t0
    run.results = json.loads(await client.job_results(run.job_id, "json"))["segments"]
    if speech and run.final.state.value == "done":
        path = folder / f"{run.job_id}-{run.target}.wav"
        await client.save_job_results(run.job_id, path, "wav", run.target)
        run.track_samples = sf.info(str(path)).frames
        path.unlink()


async def run_study(
    clip: Path, clip_bytes: int, work: Path, minutes_s: float, speech: bool, model: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    ca, cert, key = make_certificates(work)
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    receiver = Receiver(secret)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    site_app = web.Application()

    async def serve_clip(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(clip)

    site_app.router.add_get("/clip.wav", serve_clip)
    site_app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(site_app, handle_signals=False, access_log=None)
    await runner.setup()
    media = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    hooks = web.TCPSite(runner, "127.0.0.1", 0)
    await media.start()
    await hooks.start()
    media_port, hooks_port = (s._server.sockets[0].getsockname()[1] for s in (media, hooks))  # type: ignore[union-attr]
    endpoint = {
        "url": f"http://127.0.0.1:{hooks_port}/hooks",
        "secret": secret,
        "events": ["job.completed", "job.failed"],
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "clients" / "python" / "src")]),
        "LONG_JOB_CA": str(ca),
        "TRANSLATE_SVC_MODEL__PATH": str(model),
        "TRANSLATE_SVC_JOBS__DIR": str(work / "jobs"),
        "TRANSLATE_SVC_JOBS__MAX_RUNNING": "2",
        "TRANSLATE_SVC_JOBS__FETCH_HOSTS": '["localhost"]',
        "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([endpoint]),
        "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(work / "events"),
        "TRANSLATE_SVC_WEBHOOKS__ALLOW_HTTP": "true",
        "TRANSLATE_SVC_LIMITS__MAX_MESSAGE_BYTES": str(message_limit(clip_bytes, speech)),
        "TRANSLATE_SVC_LIMITS__MAX_CLIP_SECONDS": str(int(minutes_s) + 60),
        "TRANSLATE_SVC_LIMITS__CLIP_READ_TIMEOUT_S": "600",
    }
    launch = "from benchmarks.studies.long_job import serve_fetching_from_loopback as s; s()"
    cmd = [sys.executable, "-c", launch, "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    server = Server([*cmd, "--device", "cpu"], env, work / "server.log")
    try:
        port = await asyncio.to_thread(server.wait_ready, 600)
        http_port = json.loads(server.ready_file.read_text())["http_port"]
        log(f"server ready: gRPC {port}, HTTP {http_port} (pid {server.pid})")
        return await _jobs_then_references(
            port, http_port, media_port, clip, clip_bytes, work, speech, receiver, server, log
        )
    except BaseException:
        log(server.log_tail())
        raise
    finally:
        server.stop()
        await runner.cleanup()


async def _jobs_then_references(
    port: int,
    http_port: int,
    media_port: int,
    clip: Path,
    clip_bytes: int,
    work: Path,
    speech: bool,
    receiver: Receiver,
    server: Server,
    log: Callable[[str], None],
) -> dict[str, Any]:
    options = {"speech": speech, "transcript": True, "word_timings": True}
    limit = message_limit(clip_bytes, speech)
    address = f"127.0.0.1:{port}"
    async with AsyncTranslateClient(address, timeout_s=60, max_message_bytes=limit, connections=1) as client:
        up, by_url = JobRun(UPLOAD_TARGET, "upload, 16 MiB REST parts"), JobRun(URL_TARGET, "https URL")
        t0 = time.monotonic()
        body = {"source_language": "eng", "target_languages": [UPLOAD_TARGET], **options}

        async def url_job() -> None:
            job = await client.submit_job(
                url=f"https://localhost:{media_port}/clip.wav",
                targets=[URL_TARGET],
                source="eng",
                speech=speech,
                transcript=True,
                word_timings=True,
            )
            by_url.job_id, by_url.submitted_s = job.id, time.monotonic() - t0

        await asyncio.gather(upload_job(f"http://127.0.0.1:{http_port}/v1/jobs", clip, body, up, t0), url_job())
        log(f"submitted: {up.job_id} (upload, {up.submitted_s:.1f} s), {by_url.job_id} (url)")
        await asyncio.gather(*(follow(client, r, t0, work, speech) for r in (up, by_url)))
        for r in (up, by_url):
            assert r.final is not None
            log(
                f"job {r.job_id} ({r.target}): {r.final.state.value} after {r.ended_s:.0f} s, {len(r.results)} segments"
            )
        jobs_rss = peak_rss_mib(server.pid)

        async def reference(target: str) -> tuple[list[Segment], float]:
            started = time.monotonic()
            result = await client.translate(
                clip,
                targets=[target],
                source="eng",
                timeout_s=6 * 3600,
                speech=speech,
                transcript=True,
                word_timings=True,
            )
            return list(result.segments), time.monotonic() - started

        refs = dict(
            zip(
                (UPLOAD_TARGET, URL_TARGET),
                await asyncio.gather(*map(reference, (UPLOAD_TARGET, URL_TARGET))),
                strict=True,
            )
        )
        log("TranslateChunked: " + ", ".join(f"{t} {len(s)} segments in {w:.0f} s" for t, (s, w) in refs.items()))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(receiver.for_job(r.job_id) for r in (up, by_url)):
            receiver.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.changed.wait(), 5)
        rss = peak_rss_mib(server.pid)
    return {
        "runs": [
            _report(r, refs[r.target][0], refs[r.target][1], receiver, speech, sf.info(str(clip)).frames)
            for r in (up, by_url)
        ],
        "webhooks_refused": receiver.refused,
        "peak_rss_mib": {"after_jobs": jobs_rss, "at_end": rss},
    }


def _report(
    run: JobRun, ref: list[Segment], ref_s: float, receiver: Receiver, speech: bool, source_frames: int
) -> dict[str, Any]:
    assert run.final is not None
    comparison = compare([job_record(s) for s in run.results], [chunked_record(s) for s in ref])
    hooks = receiver.for_job(run.job_id)
    hook_ok = (
        len(hooks) == 1
        and hooks[0]["type"] == "job.completed"
        and hooks[0]["data"]["segments"] == len(run.results)
        and hooks[0]["data"]["state"] == "done"
    )
    out: dict[str, Any] = {
        "target": run.target,
        "how": run.how,
        "job_id": run.job_id,
        "state": run.final.state.value,
        "error": run.final.error,
        "duration_ms": run.final.duration_ms,
        "segments": len(run.results),
        "chunked_segments": comparison.chunked_segments,
        "equal": comparison.equal,
        "differing_segments": comparison.differing,
        "first_difference": comparison.first,
        "submitted_s": round(run.submitted_s, 1),
        "running_s": None if run.running_s is None else round(run.running_s, 1),
        "job_wall_s": round(run.ended_s, 1),
        "chunked_wall_s": round(ref_s, 1),
        "webhook": hooks[0]["data"] if hooks else None,
        "webhook_ok": hook_ok,
    }
    if speech:
        out["track_samples"] = run.track_samples
        out["implied_track_samples"] = implied_track_samples(source_frames, RATE)
        out["track_ok"] = run.track_samples == out["implied_track_samples"]
    out["ok"] = run.final.state.value == "done" and comparison.equal and hook_ok and out.get("track_ok", True)
    return out


def summary_line(r: dict[str, Any], speech: bool) -> str:
    if r["equal"]:
        same = "equal"
    else:
        same = f"NOT equal ({r['differing_segments']} segments differ), first: {r['first_difference']}"
    line = (
        f"{r['target']} by {r['how']}: {r['state']}, {r['segments']} segments (TranslateChunked "
        f"{r['chunked_segments']}), {same}; job {r['job_wall_s']:.0f} s (submitted at {r['submitted_s']:.0f} s, "
        f"running from {r['running_s']} s), TranslateChunked {r['chunked_wall_s']:.0f} s; webhook "
        f"{'verified' if r['webhook_ok'] else 'MISSING OR WRONG: ' + str(r['webhook'])}"
    )
    if speech:
        line += f"; dubbed track {r['track_samples']} samples, implied {r['implied_track_samples']}"
    return line


@app.command()
def main(
    minutes: Annotated[float, typer.Option(min=0.1, help="the clip's length (the files repeated)")] = 120.0,
    speech: Annotated[bool, typer.Option(help="dubbed speech too (and each job's dubbed track)")] = False,
    files: Annotated[str, typer.Option(help="files of ../shared/audio, in turn")] = "jfk.flac,silero_test.wav",
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="long-job-"))
    clip = work / "clip.wav"
    seconds = make_clip(clip, minutes, [SHARED_AUDIO / f for f in files.split(",")])
    log(f"clip: {seconds:.0f} s, {clip.stat().st_size / 2**20:.0f} MiB at {clip}")
    t0 = time.monotonic()
    result = asyncio.run(run_study(clip, clip.stat().st_size, work, seconds, speech, model, log))
    result |= {
        "date": started.isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - t0, 1),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "git": git_state(),
        "clip_s": round(seconds, 1),
        "files": files,
        "speech": speech,
        "server_log": str(work / "server.log"),
    }
    for r in result["runs"]:
        print(summary_line(r, speech))
    peak = result["peak_rss_mib"]["at_end"]
    print(
        f"server peak RSS (VmHWM) per process: {', '.join(f'{p}: {m:.0f} MiB' for p, m in peak.items())}; "
        f"webhooks refused: {result['webhooks_refused']}; wall {result['wall_s']:.0f} s"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, default=str))
    clip.unlink()
    ok = all(r["ok"] for r in result["runs"]) and not result["webhooks_refused"]
    print("OK" if ok else "MISMATCH")
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    app()
