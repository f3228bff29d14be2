"""What strangers can write to the log through the HTTP port (issue 57): a real ``serve`` process,
its stderr counted while clients send requests whose heads aiohttp refuses (a request line over the
port's 8190 bytes). Each used to be an ERROR with a ~2 KB traceback (17.7 MB in 10 s); now at most
``RefusalLog``'s burst of one-line INFO refusals per window, then one line that counts the rest."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from translate_svc.cli import ready_file as ready

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

SERVE = Path(sys.executable).parent / "translate-svc"
BAD_REQUESTS = 300
#: the port's request line bound (``http.site.HTTP_MAX_LINE_BYTES``) and more
LONG_LINE = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """``serve --http-port 0`` on loopback: its HTTP port, and the file its stderr goes to."""
    where = tmp_path_factory.mktemp("serve")
    ready_file, err = where / "ready.json", where / "stderr.log"
    argv = [str(SERVE), "serve", "--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"]
    argv += ["--http-port", "0", "--ready-file", str(ready_file)]
    with err.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=out)
        try:
            try:
                info = ready.wait(ready_file, proc, 300)
            except ready.NotReady as e:
                raise AssertionError(f"{e}:\n{err.read_text()}") from None
            assert info.http_port is not None, info
            yield info.http_port, err
        finally:
            proc.kill()
            proc.wait(30)


async def refused(port: int, request: bytes) -> bytes:
    """Send ``request`` on a connection of its own; the status line of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_over_long_request_lines_leave_a_bounded_log(server: tuple[int, Path]) -> None:
    port, err = server
    before = err.stat().st_size
    for _ in range(BAD_REQUESTS):
        assert (await refused(port, LONG_LINE)).startswith(b"HTTP/1.0 400 "), "not refused by the parser"
    # (each line is written before its answer is sent: what the requests cost is in the file now)
    written = err.read_bytes()[before:].decode(errors="replace")
    lines = written.splitlines()
    assert "Traceback" not in written and " ERROR " not in written, written[:3000]
    refusals = [line for line in lines if "refused a request from 127.0.0.1" in line]
    assert refusals and "over 8190 bytes" in refusals[0], written[:3000]  # said once, in a line
    assert len(lines) <= 12 and len(written) <= 4000, (len(lines), len(written), written[:3000])
    # the server still answers HTTP on the port (a well-formed request: its route's own answer)
    assert (await refused(port, b"GET /v1/realtime/translations HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 ")
