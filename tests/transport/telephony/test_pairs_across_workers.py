"""Two-party calls on ``serve --workers 2`` (issue 59): the legs of a call meet through the node's
cluster hub whichever worker the kernel gave each leg's connection. A real node as a subprocess
(``tests/support/node.py``, its ready file), the HTTP port and the carriers' WebSockets on, the
made-up stable translator (``--test-translator stable``: words the tests can count). Each leg is a
fake Twilio Media Stream (``phone_carriers.FakeTwilio``, Twilio's published messages) on its own
WebSocket.

Where each leg landed is read, not assumed: legs are placed one at a time and the node's per-worker
``translate_svc_streams_started_total`` says which worker admitted it; the second leg of the first
call is dialled again until it lands on the other worker than the first (a leg that landed beside
its partner is hung up and its place freed). Every leg of the 3 calls hears the other leg's
translation (its marks, echoed); a leg whose partner never comes is ended after
``phone.partner_timeout_s`` with the reason, on a worker as on one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.node import Node, node
from tests.support.phone_carriers import CarrierLog, FakeTwilio, ulaw_bytes
from tests.support.phone_pairs import held_until_closed
from tests.support.speech import speech_pcm16
from tests.support.waiting import eventually
from translate_svc.cluster.hub_client import HubStore
from translate_svc.transport.telephony.pairs import call_name

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(120)]

PARTNER_TIMEOUT_S = 6.0
CALLS = 3
MAX_REDIALS = 12


@pytest.fixture(scope="module")
def phone_node(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    log = tmp_path_factory.mktemp("node") / "node.log"
    env = {
        "TRANSLATE_SVC_SERVER__HTTP_PORT": "0",
        "TRANSLATE_SVC_PHONE__WEBSOCKET": "true",
        "TRANSLATE_SVC_PHONE__PARTNER_TIMEOUT_S": str(PARTNER_TIMEOUT_S),
        "TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable",
    }
    with node(test_model_dir, log, **env) as n:
        assert n.http_port is not None and n.cluster_hub is not None
        yield n


def url(n: Node, query: str) -> str:
    return f"ws://127.0.0.1:{n.http_port}/v1/phone/twilio?{query}"


class Placed:
    """A leg's call running, and the worker that admitted it."""

    def __init__(self, task: asyncio.Task[CarrierLog], worker: str) -> None:
        self.task = task
        self.worker = worker


async def place(n: Node, leg: FakeTwilio, speech: bytes) -> Placed:
    """Start ``leg``'s call and read which worker admitted it (nothing else starts meanwhile)."""
    before = await asyncio.to_thread(n.started)
    task = asyncio.create_task(leg.call(speech, linger_s=10))
    moved: list[str] = []

    async def admitted() -> bool:
        now = await asyncio.to_thread(n.started)
        moved[:] = [k for k, v in now.items() if v > before.get(k, 0)]
        return bool(moved)

    await eventually(admitted, "the leg's stream was not admitted", deadline_s=20, poll_s=0.05)
    assert len(moved) == 1, moved
    return Placed(task, moved[0])


async def live_streams(n: Node) -> float:
    return sum((await asyncio.to_thread(n.metric, "translate_svc_streams_active")).values())


async def test_three_two_party_calls_meet_across_the_workers_and_each_leg_hears_the_other(
    phone_node: Node, shared_audio: Path
) -> None:
    speech = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 10.0, 8000))
    placed: list[tuple[Placed, Placed]] = []
    for i in range(CALLS):
        query_a, query_b = "source=eng&target=spa", "source=spa&target=eng"
        a = await place(phone_node, FakeTwilio(url(phone_node, query_a), custom={"call": f"pair-{i}"}), speech)
        b = await place(phone_node, FakeTwilio(url(phone_node, query_b), custom={"call": f"pair-{i}"}), speech)
        redials = 0
        while i == 0 and b.worker == a.worker:  # the first call's legs must be on two workers
            assert redials < MAX_REDIALS, "the kernel put every redial on the first leg's worker"
            redials += 1
            b.task.cancel()  # the carrier goes away: the leg's place is freed
            with contextlib.suppress(asyncio.CancelledError):
                await b.task
            await eventually(lambda: _at_most(phone_node, 1), "the hung-up leg's stream did not end", deadline_s=10)
            # and its place in the call given back (after its stream ends: it flushes to its partner first)
            await eventually(lambda: _places_taken(phone_node, "pair-0", 1), "the hung-up leg kept its place", 10)
            b = await place(phone_node, FakeTwilio(url(phone_node, query_b), custom={"call": "pair-0"}), speech)
        placed.append((a, b))
    assert placed[0][0].worker != placed[0][1].worker
    logs = [await asyncio.gather(a.task, b.task) for a, b in placed]
    for i, (log_a, log_b) in enumerate(logs):
        for side, log in (("a", log_a), ("b", log_b)):
            # the other leg's translation came (each segment's speech, then its mark) and was played
            assert log.marks, (
                f"call {i} leg {side} heard no translation (workers {placed[i][0].worker}, {placed[i][1].worker})"
            )
            assert log.speech_bytes > 0 and set(log.echoed) == set(log.marks)
            assert log.close_code == 1000


async def _at_most(n: Node, live: float) -> bool:
    return await live_streams(n) <= live


async def _places_taken(n: Node, call: str, most: int) -> bool:
    """At most ``most`` legs hold a place in ``call`` (read from the node's hub, as a worker would)."""
    assert n.cluster_hub is not None
    hub = HubStore(Path(n.cluster_hub), "test")
    await hub.start()
    try:
        return await hub.count(call_name(("default", call))) <= most
    finally:
        await hub.close()


async def test_a_lone_leg_on_a_worker_is_ended_after_the_partner_timeout(phone_node: Node) -> None:
    leg = FakeTwilio(url(phone_node, "source=eng&target=spa"), custom={"call": "nobody-comes"})
    closed = await held_until_closed(leg, max_s=PARTNER_TIMEOUT_S + 10)
    assert closed.after_s is not None, "the lone leg was left open"
    assert PARTNER_TIMEOUT_S <= closed.after_s < PARTNER_TIMEOUT_S + 4
    assert closed.code == 1008 and "(phone.partner_timeout_s)" in closed.reason
