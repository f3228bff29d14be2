"""Every door's port is one port for the whole node and is named in the ready file (issue 73):
``serve --workers 2 --sip-port 0`` with AudioSocket on port 0 gives both workers the same SIP port
(UDP and TCP) and the same AudioSocket port, the ones its ready file names, and one process names
them too. Which process holds which socket is read from the kernel (psutil), never assumed.

Before: the supervisor reserved only the gRPC, health and HTTP ports, so port 0 let each worker pick
a SIP and an AudioSocket port of its own (a caller reached one worker of two, at a port nobody was
told), and no ready file named either.
"""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from tests.support.node import node
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]

DOORS = {
    "TRANSLATE_SVC_SIP__PORT": "0",
    "TRANSLATE_SVC_SIP__ALLOWED_CIDRS": '["127.0.0.1/32"]',
    "TRANSLATE_SVC_PHONE__AUDIOSOCKET_PORT": "0",
}


def bound(pid: int) -> set[tuple[str, int]]:
    """What ``pid`` listens on: ("tcp", port) for a listening TCP socket, ("udp", port) for a UDP one."""
    out = set()
    for c in psutil.Process(pid).net_connections(kind="inet"):
        if c.type == socket.SOCK_STREAM and c.status == psutil.CONN_LISTEN:
            out.add(("tcp", c.laddr.port))
        elif c.type == socket.SOCK_DGRAM and c.laddr:
            out.add(("udp", c.laddr.port))
    return out


def test_a_node_gives_every_worker_the_doors_ports_its_ready_file_names(test_model_dir: Path, tmp_path: Path) -> None:
    with node(test_model_dir, tmp_path / "node.log", **DOORS) as n:
        info = n.info
        assert info is not None and info.sip_port and info.audiosocket_port, info
        want = {("tcp", info.sip_port), ("udp", info.sip_port), ("tcp", info.audiosocket_port)}
        for pid in n.workers:
            assert want <= bound(pid), (pid, bound(pid), info)
        # the doors' ports are not the gRPC, health or HTTP ones, nor each other's
        assert len({info.port, info.sip_port, info.audiosocket_port}) == 3


def test_one_process_names_its_sip_and_audiosocket_ports(test_model_dir: Path) -> None:
    server = ServerProcess(["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"], env=DOORS)
    try:
        info = server.info
        assert info.sip_port and info.audiosocket_port, info
        want = {("tcp", info.sip_port), ("udp", info.sip_port), ("tcp", info.audiosocket_port)}
        assert want <= bound(server.proc.pid), bound(server.proc.pid)
    finally:
        server.stop()
