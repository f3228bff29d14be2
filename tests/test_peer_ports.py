"""The suite passes under load: every port a test's peer binds is chosen race-free. A port a test
picks (``bind(0)``, read, close) and hands to another program can be taken by anything on the
machine before that program binds it: baresip failed so ("Address already in use") in
``tests/transport/sip/test_wideband_codecs.py``.

- baresip and SIPp choose their own ports (``tests/support/sip_peers.py``): baresip's SIP socket
  on port 0, its RTP where libre tries another port while one is in use; SIPp from 5060 (SIP)
  and 6000 (media), the next on each one in use, and a start that still failed to bind started
  again. Here: the configuration and command line they get carry no port of the test's, and
  baresip really binds its own.
- ``translate-svc serve`` binds port 0 for every port and names them in its ready file
  (``ServerProcess.metrics_port``, ``info.sip_port``...).
- ``redis-server`` has no port 0 it would report: a first start whose port was taken meanwhile is
  started again on another (``tests/support/redis_server.py``). Here: its first port is taken on
  purpose, and it serves on another, answering as itself (not as whatever holds the port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import redis_server, sip_peers
from tests.support.proc import free_port

pytestmark = pytest.mark.integration


def test_baresips_configuration_names_no_port_and_baresip_binds_its_own(tmp_path: Path) -> None:
    config = sip_peers.BARESIP_CONFIG.format(wav=tmp_path / "in.wav", dump=tmp_path, modules="", tls="")
    assert "sip_listen\t\t127.0.0.1:0\n" in config and "rtp_ports" not in config
    if shutil.which("baresip") is None:
        pytest.skip("baresip is not installed (make sip-peers): its configuration is checked, not run")
    (tmp_path / "config").write_text(config)  # (its WAV is read only in a call)
    (tmp_path / "accounts").write_text("<sip:baresip@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    proc = subprocess.Popen(
        ["baresip", "-f", str(tmp_path), "-t", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        bound: set[int] = set()
        deadline = time.monotonic() + 30
        while not bound and time.monotonic() < deadline and proc.poll() is None:
            bound = _udp_ports_of(proc.pid)
            time.sleep(0.05)
        assert bound, "baresip bound no UDP port on 127.0.0.1"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert b"in use" not in out, out.decode(errors="replace")[-2000:]


def _udp_ports_of(pid: int) -> set[int]:
    """The 127.0.0.1 UDP ports process ``pid`` has bound (``/proc/net/udp`` by its sockets' inodes)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        address, inode = fields[1], fields[9]
        if inode in inodes and address.startswith("0100007F:"):
            ports.add(int(address.split(":")[1], 16))
    return ports


def test_sipp_is_given_no_local_or_media_port(tmp_path: Path) -> None:
    call = sip_peers.SippCall(5060, tmp_path / "call.xml")
    args = sip_peers.sipp_args("sipp", call, tmp_path / "err", tmp_path / "msg")
    assert "-p" not in args and "-mp" not in args, args


def test_a_redis_whose_chosen_port_was_taken_serves_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail(redis_server.MISSING)
    with socket.socket() as squatter:  # takes the port the server chooses first, as another process would
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(redis_server, "free_port", lambda: next(ports, None) or free_port())
        server = redis_server.RedisServer()
        assert server.port == taken
        try:
            server.start()
            assert server.port != taken and server.ping() and server.ours()
        finally:
            server.remove()
