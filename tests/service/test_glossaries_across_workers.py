"""Stored glossaries on ``serve --workers 2`` (issue 73): the node's workers share one SQLite file
(``glossaries.data_dir``), so a glossary created through a connection one worker serves is read,
listed, used by id and deleted through a connection the other serves (which worker serves which
connection is read from the node's metrics, never assumed), and a change is seen by the next call
on the other worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.support.node import Node, node, spread
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

TEXTS = ["the meeting starts at nine"]


@pytest.fixture(scope="module")
def two(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    where = tmp_path_factory.mktemp("glossaries-node")
    env = {"TRANSLATE_SVC_GLOSSARIES__ENABLED": "true", "TRANSLATE_SVC_GLOSSARIES__DATA_DIR": str(where)}
    with node(test_model_dir, where / "node.log", **env) as n:
        yield n


def content(translation: str) -> pb.GlossaryContent:
    entry = pb.GlossaryEntry(phrase="meeting", translation=translation, target_language="spa")
    return pb.GlossaryContent(entries=pb.GlossaryEntries(entries=[entry]))


async def text(channel: grpc.aio.Channel, **kw: object) -> str:
    req = pb.TranslateTextRequest(texts=TEXTS, source_language="eng", target_languages=["spa"], **kw)  # type: ignore[arg-type]
    reply = await pb_grpc.TranslatorStub(channel).TranslateText(req, timeout=120)
    return reply.results[0].translations[0].text


async def test_both_workers_keep_one_set_of_glossaries(two: Node) -> None:
    (first, w_a), (second, w_b) = await spread(two, 2)
    assert w_a != w_b
    try:
        made = await pb_grpc.GlossariesStub(first).CreateGlossary(
            pb.CreateGlossaryRequest(glossary_id="shared", content=content("reunion-uno"))
        )
        assert made.revision == 1
        other = pb_grpc.GlossariesStub(second)
        listed = await other.ListGlossaries(pb.ListGlossariesRequest())
        assert [g.glossary_id for g in listed.glossaries] == ["shared"]
        term = pb.Term(phrase="meeting", kind=pb.Term.TRANSLATE, translation="reunion-uno", target_language="spa")
        assert await text(second, glossaries=["shared"]) == await text(second, terms=[term])
        await other.ReplaceGlossary(pb.ReplaceGlossaryRequest(glossary_id="shared", content=content("reunion-dos")))
        term.translation = "reunion-dos"
        assert await text(first, glossaries=["shared"]) == await text(first, terms=[term])
        await pb_grpc.GlossariesStub(first).DeleteGlossary(pb.DeleteGlossaryRequest(glossary_id="shared"))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await other.GetGlossary(pb.GetGlossaryRequest(glossary_id="shared"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await first.close()
        await second.close()
