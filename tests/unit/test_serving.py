"""The pieces of ``serve --workers N`` that need no processes: the node's shared stream count and
the port reservation."""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

import pytest

from translate_svc.serving import admission
from translate_svc.serving.admission import SharedAdmission
from translate_svc.serving.supervisor import StartError, reserve_port


def test_the_stream_count_is_the_nodes_not_a_workers(tmp_path: Path) -> None:
    path = tmp_path / "streams"
    admission.create(path)
    w0, w1 = SharedAdmission(path, 0), SharedAdmission(path, 1)
    assert w0.try_admit(3) and w0.try_admit(3) and w1.try_admit(3)
    assert not w1.try_admit(3) and not w0.try_admit(3)  # 3 open on the node: refused on both
    w0.release()
    assert w1.try_admit(3) and w1.open_streams() == 3
    w1.reset()  # w1 died with its two streams
    assert w0.open_streams() == 1 and w0.try_admit(3) and w0.try_admit(3) and not w0.try_admit(3)
    with pytest.raises(ValueError, match="slot"):
        SharedAdmission(path, admission.SLOTS)
    w0.close()
    w1.close()


def _take(path: Path, slot: int, limit: int, tries: int) -> int:
    counter = SharedAdmission(path, slot)
    return sum(counter.try_admit(limit) for _ in range(tries))


def test_workers_racing_for_the_last_slots_never_take_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "streams"
    admission.create(path)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        taken = pool.starmap(_take, [(path, slot, 1000, 400) for slot in range(4)])
    assert sum(taken) == 1000 and SharedAdmission(path, 0).open_streams() == 1000


def test_a_busy_port_fails_the_start_with_what_to_do() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartError, match=rf"cannot listen on 127.0.0.1:{port}: .*--port"):
            reserve_port("127.0.0.1", port)
    free = reserve_port("127.0.0.1", 0)  # port 0: one port, resolved once for every worker
    try:
        port = free.getsockname()[1]
        assert port > 0
        again = reserve_port("127.0.0.1", port)  # a worker binds it beside the reservation
        again.close()
    finally:
        free.close()


def test_client_secrets_expire_and_only_their_key_signs_them() -> None:
    from translate_svc.transport.client_secrets import ClientSecrets

    now = [1_000_000.0]
    key = "k" * 64
    secrets = ClientSecrets(key, ttl_s=600, clock=lambda: now[0])
    value, expires = secrets.mint(30)
    assert expires == 1_000_030 and secrets.valid(value)
    assert ClientSecrets(key, 600, clock=lambda: now[0]).valid(value)  # another worker, the same key
    assert not ClientSecrets("x" * 64, 600, clock=lambda: now[0]).valid(value)  # another key
    assert secrets.mint(10_000)[1] == 1_000_600  # capped at the server's TTL
    assert not secrets.valid(value.replace("ek_1000030", "ek_1999999"))  # a longer life cannot be forged
    now[0] += 31
    assert not secrets.valid(value) and not secrets.valid("not-a-secret")


def test_the_demo_page_needs_the_http_port_and_prints_where_a_browser_may_use_the_microphone() -> None:
    from pydantic import ValidationError

    from translate_svc.settings import ServerSettings
    from translate_svc.transport.demo import page_url

    with pytest.raises(ValidationError, match="http_port"):
        ServerSettings(demo_page=True)
    assert ServerSettings(demo_page=True, http_port=8080).demo_page
    # a wildcard host is printed as loopback: browsers give the microphone to http://127.0.0.1 only
    assert page_url("0.0.0.0", 8080, tls=False) == "http://127.0.0.1:8080/demo"
    assert page_url("::1", 8080, tls=True) == "https://[::1]:8080/demo"
