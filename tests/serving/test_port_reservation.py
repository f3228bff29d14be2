"""The pieces of ``serve --workers N`` that need no processes: the port reservation (the node's
counts are leases in its hub: tests/session/tenants/test_leases.py)."""

from __future__ import annotations

import socket

import pytest

from translate_svc.serving.ports import StartError, reserve_port

pytestmark = pytest.mark.unit


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
