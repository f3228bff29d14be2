"""A job survives its pod's death (issue 73, ``cluster.redis_url``): two ``translate-svc serve``
processes (two pods) sharing one real ``redis-server`` and one ``jobs.dir`` (the shared volume).
A job submitted on one runs on one of them (its lease, in Redis, names its process); its status is
served by the other while it runs; that process is killed (SIGKILL) mid-job; once its lease
(``jobs.lease_s``, short here) lapses, the other pod resumes it from its last finished segment and
finishes it: the segments finished before the kill are kept as they were, none is computed again
(the surviving pod's ``translate_svc_job_segments_total`` counts only the rest), and they are those
of the same audio run as one job without a kill (after the kill, the same audio is covered: the
resumed VAD starts afresh at the last segment's end, so later boundaries may move a few frames).
A job cancelled on one pod stops on the pod that runs it, and stores nothing after the cancel.
Real processes, the test checkpoint, jfk.flac repeated to a minute and a half; the two pods and their
Redis are the module's (the cancel test runs first, the killed-pod test last)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.support.jobs import base, job_segments, job_segments_metric, long_clip
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow(240)]

PREFIX = "translate-svc:"


@dataclass
class Cluster:
    """The module's two pods, their Redis and their shared ``jobs.dir``: each test submits jobs of its
    own (distinct ids) and first starts a pod again in place of one an earlier test killed."""

    model: Path
    jobs_dir: Path
    redis: RedisServer
    pods: list[ServerProcess]

    def live_pods(self) -> list[ServerProcess]:
        for i, pod in enumerate(self.pods):
            if pod.proc.poll() is not None:
                self.pods[i] = start_pod(self.model, self.jobs_dir, self.redis.url)
        return list(self.pods)


@pytest.fixture(scope="module")
def cluster(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two pods for the module (a pod start is ~8 CPU s): the cancel test leaves both running, the
    killed-pod test kills one (so it runs last; a test after it would start the pod again)."""
    jobs_dir = tmp_path_factory.mktemp("pods") / "jobs"  # the volume both pods mount
    with redis_server() as server:
        cluster = Cluster(test_model_dir, jobs_dir, server, [])
        try:
            cluster.pods += [start_pod(test_model_dir, jobs_dir, server.url) for _ in range(2)]
            yield cluster
        finally:
            for pod in cluster.pods:
                if pod.proc.poll() is None:
                    pod.proc.kill()
                    pod.proc.wait()


def start_pod(model: Path, jobs_dir: Path, redis_url: str) -> ServerProcess:
    env = {
        "TRANSLATE_SVC_JOBS__DIR": str(jobs_dir),
        "TRANSLATE_SVC_JOBS__LEASE_S": "3",
        "TRANSLATE_SVC_CLUSTER__REDIS_URL": redis_url,
        "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",
    }
    return ServerProcess(["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"], env=env)


def stored(r: redis.Redis, job_id: str) -> tuple[str, str, list[str]]:
    """The job's state, its lease's holder and its finished segments, as Redis has them."""
    tenant = r.hget(f"{PREFIX}jobs:tenant", job_id)
    state, owner = r.hmget(f"{PREFIX}job:{tenant}:{job_id}", ["state", "owner"])
    return str(state), str(owner), [str(s) for s in r.lrange(f"{PREFIX}job-segments:{tenant}:{job_id}", 0, -1)]


async def submit(http: aiohttp.ClientSession, server: ServerProcess, clip: bytes) -> str:
    async with http.post(base(server), json={"source_language": "eng", "target_languages": ["spa"]}) as r:
        job = await r.json()
    part = 1 << 20
    for at in range(0, len(clip), part):
        async with http.put(f"{base(server)}/{job['id']}/audio?offset={at}", data=clip[at : at + part]) as r:
            assert r.status == 200, await r.text()
    async with http.post(f"{base(server)}/{job['id']}/complete") as r:
        assert r.status == 202, await r.text()
    return str(job["id"])


async def finished(http: aiohttp.ClientSession, server: ServerProcess, job_id: str) -> dict[str, Any]:
    while True:
        async with http.get(f"{base(server)}/{job_id}?wait=60") as r:
            done: dict[str, Any] = await r.json()
        if done["state"] not in ("queued", "running"):
            return done


async def results(http: aiohttp.ClientSession, server: ServerProcess, job_id: str) -> list[dict[str, Any]]:
    async with http.get(f"{base(server)}/{job_id}/results") as r:
        assert r.status == 200, await r.text()
        return list((await r.json())["segments"])


async def test_a_job_cancelled_on_one_pod_stops_on_the_pod_that_runs_it(
    tmp_path: Path, shared_audio: Path, cluster: Cluster
) -> None:
    clip = long_clip(shared_audio, tmp_path / "long.wav").read_bytes()
    pods = cluster.live_pods()
    r = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        job_id = await submit(http, pods[0], clip)

        async def one_done() -> bool:
            async with http.get(f"{base(pods[0])}/{job_id}") as got:
                return bool((await got.json())["segments"] >= 1)

        await eventually(one_done, "a segment finished", deadline_s=300, poll_s=0.2)
        _, owner, _ = stored(r, job_id)
        (runner,) = [p for p in pods if owner.split(":")[1] == str(p.proc.pid)]
        (other,) = [p for p in pods if p is not runner]
        async with http.post(f"{base(other)}/{job_id}/cancel") as got:
            cancelled = await got.json()
        assert cancelled["state"] == "cancelled", cancelled

        async def let_go() -> bool:  # the running pod saw it (its lease renewal) and stopped the job
            return stored(r, job_id)[1] == ""

        await eventually(let_go, "the running pod let the cancelled job go", deadline_s=60, poll_s=0.1)
        async with http.get(f"{base(runner)}/{job_id}") as got:
            seen = await got.json()
        assert seen["state"] == "cancelled" and seen["expires_at"] > 0, seen
        # nothing stored after the cancel: a segment finished meanwhile was refused
        assert seen["segments"] == cancelled["segments"] == len(stored(r, job_id)[2])
        assert len(await results(http, runner, job_id)) == cancelled["segments"]
    r.close()


async def test_another_pod_resumes_a_killed_pods_job_without_redoing_finished_segments(
    tmp_path: Path, shared_audio: Path, cluster: Cluster
) -> None:
    clip = long_clip(shared_audio, tmp_path / "long.wav", repeats=8).read_bytes()  # 88 s, about 20 segments
    jobs_dir = cluster.jobs_dir
    pods = cluster.live_pods()
    r = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        job_id = await submit(http, pods[0], clip)

        async def two_done() -> bool:
            async with http.get(f"{base(pods[0])}/{job_id}") as got:
                return bool((await got.json())["segments"] >= 2)

        await eventually(two_done, "two segments finished", deadline_s=300, poll_s=0.2)
        # the pod whose process holds the lease runs it (the owner names its pid); the other serves it
        _, owner, _ = stored(r, job_id)
        (runner,) = [p for p in pods if owner.split(":")[1] == str(p.proc.pid)]
        (other,) = [p for p in pods if p is not runner]
        async with http.get(f"{base(other)}/{job_id}") as got:
            seen = await got.json()
        assert seen["state"] == "running" and seen["segments"] >= 2, seen
        async with http.get(f"{base(other)}/{job_id}?wait=60") as got:  # a long poll on the other pod
            later = await got.json()
        assert later["state"] == "running" and later["segments"] > seen["segments"], later
        counted = await job_segments_metric(http, other)  # an earlier test's job's segments, if any

        runner.proc.kill()  # SIGKILL: no drain, no lease given back
        runner.proc.wait()
        state, _, kept = stored(r, job_id)
        assert state == "running" and len(kept) >= 2, "the job finished before the kill: make the clip longer"
        assert not (jobs_dir / "jobs.sqlite3").exists()  # the state is in Redis, the dir holds files

        done = await finished(http, other, job_id)
        assert done["state"] == "done", done["error"]
        after = await results(http, other, job_id)
        before = [json.loads(s) for s in kept]
        assert after[: len(before)] == before  # kept as they were
        assert len(after) > len(before) and done["segments"] == len(after)
        first_id = after[0]["segment_id"]
        assert [s["segment_id"] for s in after] == list(range(first_id, first_id + len(after)))
        assert all(b["start_ms"] >= a["end_ms"] for a, b in itertools.pairwise(after))
        # the surviving pod computed only the segments after the last one finished
        assert await job_segments_metric(http, other) - counted == len(after) - len(before)

        # the same audio as one job, never interrupted: the same segments up to the kill; after it
        # the resumed pod's VAD starts afresh at the last finished segment's end (as a restart on
        # one node does), so its boundaries may move by a few frames, over the same audio
        again = await submit(http, other, clip)
        assert (await finished(http, other, again))["state"] == "done"
        reference = await results(http, other, again)
        assert job_segments(reference)[: len(before)] == job_segments(before)
        assert abs(after[-1]["end_ms"] - reference[-1]["end_ms"]) <= 1000
        assert abs(len(after) - len(reference)) <= 2
    r.close()
    other.stop()
