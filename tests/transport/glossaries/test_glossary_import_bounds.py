"""A glossary import is bounded from its first byte (issue 91, point 9; issue 87's rules for a door
that takes a file): a real server on loopback with a tokens file of three tenants and small bounds,
raw gRPC clients of ``ImportGlossary`` and ``aiohttp`` for ``/v1/glossaries``:

- size: a file over ``glossaries.max_import_bytes`` is refused as its chunks pass the bound (long
  before the client has sent it all); a message over 64 KiB, a first message that is not the
  header, a second header, an empty file, no format and a CSV with TBX fields are refused naming
  what to fix;
- time: a sender that stops is cut after the grace (the port's request read timeout), one that
  sends steadily but too long at ``glossaries.import_timeout_s`` (DEADLINE_EXCEEDED; 408 over REST);
- admission: every import, REST create and replace takes one of the process's import slots before
  its body is read: a tenant past ``glossaries.max_imports_per_tenant`` and the process past
  ``glossaries.max_imports`` are refused at once with a retry delay (RESOURCE_EXHAUSTED with
  RetryInfo, 429 with Retry-After), across both doors; a slot is free again when its import ends.

Before, ``ImportGlossary`` did not exist (UNIMPLEMENTED) and a REST body counted in no import cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.glossary_files import csv
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.tokens import bearer
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

ACME, OTHER, THIRD = "acme-bounds-token-71c2", "other-bounds-token-0e5a", "third-bounds-token-93d4"
MAX_BYTES = 1024 * 1024
GRACE_S = 3.0  # the port's request read timeout: the minimum rate's grace
TIMEOUT_S = 12.0  # glossaries.import_timeout_s
CHUNK = 60 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> AsyncIterator[LiveServer]:
    folder = tmp_path_factory.mktemp("bounds")
    tokens = folder / "tokens"
    tokens.write_text(
        f"{ACME} * glossaries tenant=acme\n{OTHER} * glossaries tenant=other\n{THIRD} * glossaries tenant=third\n"
    )
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.http_port = 0
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = folder / "glossaries"
    settings.glossaries.max_import_bytes = MAX_BYTES
    settings.glossaries.import_timeout_s = TIMEOUT_S
    settings.glossaries.max_imports = 2
    settings.glossaries.max_imports_per_tenant = 1
    settings.limits.request_read_timeout_s = GRACE_S
    settings.limits.http_header_timeout_s = GRACE_S
    async with serving(settings, runner_factory=FakeRunner) as live:
        yield live


def header(
    gid: str, fmt: pb.GlossaryFileFormat.ValueType = pb.GLOSSARY_FILE_CSV, **kw: object
) -> pb.ImportGlossaryRequest:
    return pb.ImportGlossaryRequest(header=pb.GlossaryImportHeader(glossary_id=gid, format=fmt, **kw))  # type: ignore[arg-type]


async def call(live: LiveServer, token: str, messages: AsyncIterator[pb.ImportGlossaryRequest]) -> pb.Glossary:
    stub = pb_grpc.GlossariesStub(live.channel)
    got: pb.Glossary = await stub.ImportGlossary(messages, metadata=bearer(token), timeout=60)
    return got


async def failure(
    live: LiveServer, token: str, messages: AsyncIterator[pb.ImportGlossaryRequest]
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call(live, token, messages)
    return e.value


async def listed(*messages: pb.ImportGlossaryRequest) -> AsyncIterator[pb.ImportGlossaryRequest]:
    for m in messages:
        yield m


async def steady(
    gid: str, data: bytes, bytes_per_s: int, stop: asyncio.Event, sent: list[int]
) -> AsyncIterator[pb.ImportGlossaryRequest]:
    """The header, then ``data`` at ``bytes_per_s`` (above the server's minimum rate) until ``stop``
    (the rest then at once) or the data ends; ``sent`` counts the chunks taken."""
    yield header(gid)
    piece = max(1, bytes_per_s // 10)
    for at in range(0, len(data), piece):
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass
        sent.append(1)
        yield pb.ImportGlossaryRequest(data=data[at : at + piece])


async def slots_held(live: LiveServer, n: int) -> None:
    """The server's process holds ``n`` import slots (its glossaries' book, in this process)."""

    async def held() -> bool:
        return bool(live.server.app.sessions.glossaries.imports.held == n)

    await eventually(held, f"{n} import slots held", 10, 0.02)


def chunked(data: bytes) -> list[pb.ImportGlossaryRequest]:
    return [pb.ImportGlossaryRequest(data=data[at : at + CHUNK]) for at in range(0, len(data), CHUNK)]


def http_url(live: LiveServer, query: str = "") -> str:
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}/v1/glossaries{query}"


async def rest_create(live: LiveServer, token: str, gid: str, body: bytes) -> tuple[int, str, str | None]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    async with aiohttp.ClientSession() as http:
        async with http.post(http_url(live, f"?id={gid}"), data=body, headers=headers) as r:
            doc = await r.json()
            return r.status, str(doc.get("error", {}).get("message", "")), r.headers.get("Retry-After")


async def test_a_file_over_the_bound_is_refused_as_it_passes_it(live: LiveServer) -> None:
    """The client sends the bound and two chunks more, then stops without closing: only a server
    that counts as the chunks come answers INVALID_ARGUMENT (one that waited for the whole file
    would cut it as too slow, DEADLINE_EXCEEDED)."""
    stop = asyncio.Event()

    async def chunks() -> AsyncIterator[pb.ImportGlossaryRequest]:
        yield header("too-big")
        for _ in range(MAX_BYTES // CHUNK + 2):
            yield pb.ImportGlossaryRequest(data=b"x" * CHUNK)
        await stop.wait()

    err = await failure(live, ACME, chunks())
    stop.set()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert f"over {MAX_BYTES} bytes (glossaries.max_import_bytes" in (err.details() or ""), err


async def test_a_refused_client_still_sending_gets_the_status_not_its_own_write_failure(live: LiveServer) -> None:
    """grpc/grpc#36066: the server drops what a refused client still sends, then answers."""
    err = await failure(live, ACME, listed(header("big"), *[pb.ImportGlossaryRequest(data=b"x" * CHUNK)] * 100))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "glossaries.max_import_bytes" in (err.details() or "")


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([pb.ImportGlossaryRequest(data=b"x" * (64 * 1024 + 1))], "over this method's 65536-byte limit"),
        ([pb.ImportGlossaryRequest(data=b"phrase")], "first message is its header"),
        ([header("h2"), header("h2")], "takes one header, first"),
        ([header("empty")], "file is empty"),
        ([], "carried no ImportGlossary message"),
        ([header("nofmt", pb.GLOSSARY_FILE_UNSPECIFIED), pb.ImportGlossaryRequest(data=csv(1))], "header.format"),
        ([header("csvsrc", source_language="en"), pb.ImportGlossaryRequest(data=csv(1))], "are for a TBX file"),
    ],
)
async def test_bad_imports_are_refused_naming_what_to_fix(
    live: LiveServer, messages: list[pb.ImportGlossaryRequest], words: str
) -> None:
    err = await failure(live, ACME, listed(*messages))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (err.details() or ""), err


async def test_a_sender_that_stops_is_cut_after_the_grace_and_a_slow_one_at_the_timeout(live: LiveServer) -> None:
    stop = asyncio.Event()

    async def stalled() -> AsyncIterator[pb.ImportGlossaryRequest]:
        yield header("stalled")
        yield pb.ImportGlossaryRequest(data=b"phrase,translation,target_language\n")
        await stop.wait()

    started = time.monotonic()
    err = await failure(live, ACME, stalled())
    took = time.monotonic() - started
    stop.set()
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "paused longer than" in (err.details() or ""), err
    assert GRACE_S - 0.5 < took < TIMEOUT_S, took  # the rate's grace, not the import's whole time
    # 32 KiB/s is above the minimum rate (16 KiB/s): cut at the import's timeout, the file unsent
    sent: list[int] = []
    started = time.monotonic()
    err = await failure(live, ACME, steady("slow", b"y" * MAX_BYTES, 32 * 1024, asyncio.Event(), sent))
    took = time.monotonic() - started
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert f"did not come within {TIMEOUT_S:g} s" in (err.details() or "") and TIMEOUT_S - 0.5 < took < 30, (err, took)


async def test_imports_take_the_processs_slots_across_both_doors(live: LiveServer) -> None:
    rows = csv(2000)  # 120 KB: 4 s at 32 KiB/s
    stop = asyncio.Event()
    sent: list[int] = []
    # acme's one import in progress: its next is refused at once, on either door
    held = asyncio.create_task(call(live, ACME, steady("held-a", rows, 32 * 1024, stop, sent)))
    await slots_held(live, 1)
    err = await failure(live, ACME, listed(header("second-a"), *chunked(rows)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert "glossaries.max_imports_per_tenant" in (err.details() or ""), err
    status, message, retry = await rest_create(live, ACME, "rest-a", rows)
    assert (status, retry) == (429, "2") and "glossaries.max_imports_per_tenant" in message, (status, message)
    # another tenant takes the process's second slot; a third tenant finds the process full
    other = asyncio.create_task(call(live, OTHER, steady("held-o", rows, 32 * 1024, stop, sent)))
    await slots_held(live, 2)
    status, message, retry = await rest_create(live, THIRD, "rest-t", rows)
    assert status == 429 and "glossaries.max_imports)" in message, (status, message)
    stop.set()  # both send the rest at once and are kept
    made = await asyncio.gather(held, other)
    assert [g.entry_count for g in made] == [2000, 2000]
    # their slots are free again
    assert (await rest_create(live, THIRD, "rest-t", rows))[0] == 201
    assert (await call(live, ACME, listed(header("second-a"), *chunked(rows)))).entry_count == 2000


async def test_a_rest_body_over_the_bound_or_too_slow_is_refused(live: LiveServer) -> None:
    status, message, _ = await rest_create(live, ACME, "rest-big", b"x" * (MAX_BYTES + 65 * 1024))
    assert status == 413 and "glossaries.max_import_bytes" in message, (status, message)

    async def dribble() -> AsyncIterator[bytes]:
        yield b"phrase,translation,target_language\n"
        await asyncio.sleep(GRACE_S + 3)
        yield b"a,b,spa\n"

    headers = {"Authorization": f"Bearer {ACME}", "Content-Type": "text/csv"}
    async with aiohttp.ClientSession() as http:
        async with http.post(http_url(live, "?id=rest-slow"), data=dribble(), headers=headers) as r:
            doc = await r.json()
    assert r.status == 408 and "paused longer than" in doc["error"]["message"], (r.status, doc)
