"""Stored glossaries (issue 73) over two real servers on loopback sharing a real ``redis-server``
(two pods), with a tokens file of two tenants, raw gRPC clients:

- a glossary created on one server is listed, read and used on the other; a request that names it
  is answered exactly as the same request with its entries inline (``TranslateText``, on the test
  checkpoint: the glossary's forcing is what differs from the plain answer), and a replace is
  seen by the next request at once (no cache);
- a 5,000-entry glossary imported from CSV acts by id on both servers, and its decode cost is
  read from the answers' timing;
- another tenant's id is NOT_FOUND (read, replace, delete and named in a request), a token without
  the ``glossaries`` permission is PERMISSION_DENIED, a second create ALREADY_EXISTS, a stale
  revision ABORTED, bad entries INVALID_ARGUMENT naming the entry;
- a server that keeps no glossaries answers FAILED_PRECONDITION, saying how to turn them on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.redis_server import redis_server
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

ACME, OTHER, PLAIN = "acme-glossary-token-5f1e", "other-glossary-token-7c2d", "acme-plain-token-9a8b"
TEXTS = ["the meeting starts at nine", "the report is due on friday"]
ENTRIES = [("meeting", "reunion-glosario"), ("report", "informe-glosario")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pods(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[LiveServer]]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{ACME} * glossaries tenant=acme\n{OTHER} * glossaries tenant=other\n{PLAIN} * tenant=acme\n")
    with redis_server() as redis:
        settings = make_settings(test_model_dir)
        settings.auth.tokens_file = tokens
        settings.cluster.redis_url = redis.url
        settings.glossaries.enabled = True
        async with serving(settings) as a, serving(settings) as b:
            yield [a, b]


def stub(live: LiveServer) -> pb_grpc.GlossariesStub:
    return pb_grpc.GlossariesStub(live.channel)


def entries(pairs: list[tuple[str, str]], target: str = "spa") -> pb.GlossaryContent:
    return pb.GlossaryContent(
        entries=pb.GlossaryEntries(
            entries=[pb.GlossaryEntry(phrase=p, translation=t, target_language=target) for p, t in pairs]
        )
    )


async def texts(live: LiveServer, token: str = ACME, **kw: Any) -> list[str]:
    req = pb.TranslateTextRequest(texts=TEXTS, source_language="eng", target_languages=["spa"], **kw)
    reply = await live.stub.TranslateText(req, metadata=bearer(token), timeout=120)
    return [r.translations[0].text for r in reply.results]


def inline(pairs: list[tuple[str, str]]) -> list[pb.Term]:
    return [pb.Term(phrase=p, kind=pb.Term.TRANSLATE, translation=t, target_language="spa") for p, t in pairs]


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    return e.value.code()


async def test_a_glossary_made_on_one_pod_acts_by_id_on_the_other_as_its_entries_inline(pods: list[LiveServer]) -> None:
    a, b = pods
    made = await stub(a).CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id="team", display_name="Team words", content=entries(ENTRIES)),
        metadata=bearer(ACME),
    )
    assert (made.glossary_id, made.entry_count, list(made.target_languages), made.revision) == ("team", 2, ["spa"], 1)
    listed = await stub(b).ListGlossaries(pb.ListGlossariesRequest(), metadata=bearer(ACME))
    assert [(g.glossary_id, g.display_name, g.entry_count) for g in listed.glossaries] == [("team", "Team words", 2)]
    got = await stub(b).GetGlossary(
        pb.GetGlossaryRequest(glossary_id="team", include_entries=True), metadata=bearer(ACME)
    )
    assert [(e.phrase, e.translation, e.target_language) for e in got.entries] == [(p, t, "spa") for p, t in ENTRIES]
    plain = await texts(b)
    by_id = await texts(b, glossaries=["team"])
    assert by_id == await texts(b, terms=inline(ENTRIES))
    assert by_id != plain  # the entries acted (the plain answer is the checkpoint's own)
    assert await texts(a, glossaries=["team"]) == by_id
    # replaced on b: the next request on a sees it at once
    changed = [("meeting", "cita-cambiada")]
    new = await stub(b).ReplaceGlossary(
        pb.ReplaceGlossaryRequest(glossary_id="team", content=entries(changed), revision=1), metadata=bearer(ACME)
    )
    assert (new.revision, new.entry_count) == (2, 1)
    assert await texts(a, glossaries=["team"]) == await texts(a, terms=inline(changed))
    stale = stub(a).ReplaceGlossary(
        pb.ReplaceGlossaryRequest(glossary_id="team", content=entries(ENTRIES), revision=1), metadata=bearer(ACME)
    )
    assert await code_of(stale) == grpc.StatusCode.ABORTED
    again = stub(a).CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id="team", content=entries(ENTRIES)), metadata=bearer(ACME)
    )
    assert await code_of(again) == grpc.StatusCode.ALREADY_EXISTS


async def test_another_tenants_glossary_is_not_found_anywhere(pods: list[LiveServer]) -> None:
    a, b = pods
    await stub(a).CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id="private", content=entries(ENTRIES)), metadata=bearer(ACME)
    )
    other = bearer(OTHER)
    assert await code_of(stub(b).GetGlossary(pb.GetGlossaryRequest(glossary_id="private"), metadata=other)) == (
        grpc.StatusCode.NOT_FOUND
    )
    replace = pb.ReplaceGlossaryRequest(glossary_id="private", content=entries(ENTRIES))
    assert await code_of(stub(b).ReplaceGlossary(replace, metadata=other)) == grpc.StatusCode.NOT_FOUND
    delete = pb.DeleteGlossaryRequest(glossary_id="private")
    assert await code_of(stub(a).DeleteGlossary(delete, metadata=other)) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await texts(b, OTHER, glossaries=["private"])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "private" in (e.value.details() or "")
    assert (await stub(b).ListGlossaries(pb.ListGlossariesRequest(), metadata=other)).glossaries == []
    # the owner's is still there; a token of the owner's tenant without the permission may not touch it
    assert (await stub(b).GetGlossary(pb.GetGlossaryRequest(glossary_id="private"), metadata=bearer(ACME))).entry_count
    refused = stub(a).ListGlossaries(pb.ListGlossariesRequest(), metadata=bearer(PLAIN))
    assert await code_of(refused) == grpc.StatusCode.PERMISSION_DENIED
    assert await texts(a, PLAIN, glossaries=["private"])  # naming one in a request needs no more than the call's
    await stub(a).DeleteGlossary(delete, metadata=bearer(ACME))
    assert await code_of(stub(b).GetGlossary(pb.GetGlossaryRequest(glossary_id="private"), metadata=bearer(ACME))) == (
        grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize(
    "content,words",
    [
        (entries([("meeting", "")]), "entries[0].translation is empty"),
        (entries([("meeting", "x")], target="xxx"), "not a text language"),
        (pb.GlossaryContent(csv=b"phrase,translation\nmeeting,x\n"), "name the columns"),
        (pb.GlossaryContent(), "content is empty"),
    ],
)
async def test_bad_content_is_refused_naming_what_to_fix(
    pods: list[LiveServer], content: pb.GlossaryContent, words: str
) -> None:
    call = stub(pods[0]).CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id="bad", content=content), metadata=bearer(ACME)
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value


async def test_a_5000_entry_csv_glossary_acts_by_id_on_both_pods(pods: list[LiveServer]) -> None:
    a, b = pods
    rows = ["phrase,translation,target_language"] + [f"term{n:04d},traduccion{n:04d},spa" for n in range(4998)]
    rows += [f"{p},{t},spa" for p, t in ENTRIES]
    csv = ("\n".join(rows) + "\n").encode()
    made = await stub(a).CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id="big", content=pb.GlossaryContent(csv=csv)), metadata=bearer(ACME)
    )
    assert made.entry_count == 5000
    limits = (await a.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(ACME))).limits
    assert limits.max_glossary_entries_stored >= 5000 and limits.max_glossaries_per_request >= 1
    want = await texts(a, terms=inline(ENTRIES))
    for live in (a, b):
        started = time.perf_counter()
        assert await texts(live, glossaries=["big"]) == want  # the 4,998 others are not said: they change nothing
        took = time.perf_counter() - started
        print(f"TranslateText with a 5,000-entry stored glossary: {took * 1000:.0f} ms")


async def test_a_server_that_keeps_none_says_how_to_turn_them_on(test_model_dir: Path) -> None:
    async with serving(make_settings(test_model_dir)) as live:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub(live).ListGlossaries(pb.ListGlossariesRequest())
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "glossaries.enabled" in (
            e.value.details() or ""
        )
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await texts(live, glossaries=["team"])
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
