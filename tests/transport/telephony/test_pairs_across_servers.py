"""A two-party call whose legs are on two servers (two pods) sharing one real ``redis-server``
(issue 59): ``cluster.redis_url`` set on both, each a ``serve --phone`` process of its own
(``ServerProcess``, its ready file) with the made-up stable translator. Leg A dials server 1 and
leg B server 2, each a fake Twilio Media Stream (``phone_carriers.FakeTwilio``, Twilio's published
messages) naming the same call: each hears the other's translation (its marks, echoed), and
neither server has the other leg."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.phone_carriers import FakeTwilio, ulaw_bytes
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def two_servers(test_model_dir: Path, redis: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--phone"]
    env = {"TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url, "TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable"}
    one = ServerProcess(args, env=env)
    try:
        two = ServerProcess(args, env=env)
        try:
            yield one, two
        finally:
            two.stop()
    finally:
        one.stop()


def url(server: ServerProcess, query: str) -> str:
    return f"ws://127.0.0.1:{server.info.http_port}/v1/phone/twilio?{query}"


async def test_a_call_whose_legs_are_on_two_servers_sharing_redis_meets(
    two_servers: tuple[ServerProcess, ServerProcess], shared_audio: Path
) -> None:
    one, two = two_servers
    speech = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 10.0, 8000))
    a = FakeTwilio(url(one, "source=eng&target=spa"), custom={"call": "across-pods"})
    b = FakeTwilio(url(two, "source=spa&target=eng"), custom={"call": "across-pods"})
    log_a, log_b = await asyncio.gather(a.call(speech, linger_s=10), b.call(speech, linger_s=10))
    for side, log in (("a", log_a), ("b", log_b)):
        assert log.marks, f"leg {side} heard no translation from the other server's leg"
        assert log.speech_bytes > 0 and set(log.echoed) == set(log.marks)
        assert log.close_code == 1000
