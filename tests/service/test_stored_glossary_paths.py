"""A stored glossary acts on every path that names it (issue 73; design pitfall 23): a ``Translate``
clip and a ``StreamingTranslate`` stream that name it by id are answered exactly as the same
requests with its entries inline, and differently from the plain ones. One real server on
loopback on the test checkpoint, keeping its glossaries in SQLite (``glossaries.data_dir``: the
one-node store). The entry's phrase is taken from what the checkpoint transcribes, so it acts on
random weights; the words asserted are only equalities between our own answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

TRANSLATION = "nube acme"
FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kept(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = tmp_path_factory.mktemp("glossaries")
    settings.server.http_port = 0
    settings.mcp.enabled = True
    async with serving(settings) as live:
        yield live


@pytest.fixture(scope="module")
def pcm(shared_audio: Path) -> bytes:
    return speech_pcm16(shared_audio / "jfk.flac", 8.0, 16000).tobytes()


def translations(segments: list[pb.SegmentResult]) -> list[tuple[int, int, str]]:
    return [(s.start_ms, s.end_ms, t.text) for s in segments for t in s.translations]


async def clip(live: LiveServer, pcm: bytes, **kw: object) -> list[pb.SegmentResult]:
    out = pb.OutputOptions(text=True, speech=False, transcript=True)
    reply = await live.stub.Translate(
        raw_request(pcm, pb.LINEAR16, source_language="eng", output=out, **kw), timeout=120
    )
    return list(reply.segments)


async def stream(live: LiveServer, pcm: bytes, **kw: object) -> list[pb.SegmentResult]:
    cfg = pb.StreamingConfig(
        format=FMT,
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=True),
        **kw,  # type: ignore[arg-type]
    )

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        for at in range(0, len(pcm), 3200):
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + 3200])

    return [r.segment async for r in live.stub.StreamingTranslate(requests(), timeout=120) if r.HasField("segment")]


async def test_a_clip_and_a_stream_that_name_a_glossary_equal_its_entries_inline(kept: LiveServer, pcm: bytes) -> None:
    plain = await clip(kept, pcm)
    said = [w for s in plain for w in s.transcript.text.split() if len(w) >= 2 and w.isalpha()]
    assert said, "the checkpoint transcribed no word to make an entry of"
    phrase = max(said, key=len)
    entry = pb.GlossaryEntry(phrase=phrase, translation=TRANSLATION, target_language="spa")
    made = await pb_grpc.GlossariesStub(kept.channel).CreateGlossary(
        pb.CreateGlossaryRequest(
            glossary_id="names", content=pb.GlossaryContent(entries=pb.GlossaryEntries(entries=[entry]))
        )
    )
    assert made.entry_count == 1
    term = pb.Term(phrase=phrase, kind=pb.Term.TRANSLATE, translation=TRANSLATION, target_language="spa")
    by_id = await clip(kept, pcm, glossaries=["names"])
    assert translations(by_id) == translations(await clip(kept, pcm, terms=[term]))
    assert translations(by_id) != translations(plain)  # the entry acted
    streamed = await stream(kept, pcm, glossaries=["names"])
    assert translations(streamed) == translations(await stream(kept, pcm, terms=[term]))
    assert translations(streamed) != translations(await stream(kept, pcm))


async def test_the_http_api_keeps_glossaries_as_the_grpc_service_does(kept: LiveServer) -> None:
    """``/v1/glossaries``: a CSV created, listed, read with its entries, a stale replace refused
    (409), a replace from JSON, what gRPC reads of it, a delete, then 404; bad input 400."""
    base = f"http://127.0.0.1:{kept.server.ports()['http_port']}/v1/glossaries"
    csv = b"phrase,translation,target_language,ignore_case\nAcme,Acme SA,spa,true\nBob,Roberto,spa,\n"
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "?id=web&display_name=Web", data=csv, headers={"Content-Type": "text/csv"}) as r:
            assert r.status == 201, await r.text()
            made = await r.json()
        assert (made["id"], made["display_name"], made["entry_count"], made["revision"]) == ("web", "Web", 2, 1)
        async with http.get(base) as r:
            assert "web" in [g["id"] for g in (await r.json())["glossaries"]]
        async with http.get(base + "/web?entries=true") as r:
            got = await r.json()
        assert got["entries"][0] == {
            "phrase": "Acme",
            "translation": "Acme SA",
            "target_language": "spa",
            "ignore_case": True,
        }
        new = {
            "display_name": "Web 2",
            "entries": [{"phrase": "Acme", "translation": "Acme SL", "target_language": "fra"}],
        }
        async with http.put(base + "/web", json={**new, "revision": 7}) as r:
            assert r.status == 409 and (await r.json())["error"]["code"] == "conflict"
        async with http.put(base + "/web", json={**new, "revision": 1}) as r:
            assert r.status == 200 and (await r.json())["revision"] == 2
        read = await pb_grpc.GlossariesStub(kept.channel).GetGlossary(
            pb.GetGlossaryRequest(glossary_id="web", include_entries=True)
        )
        assert (read.display_name, [(e.translation, e.target_language) for e in read.entries]) == (
            "Web 2",
            [("Acme SL", "fra")],
        )
        async with http.post(base, json={"id": "bad", "entries": [{"phrase": "x"}]}) as r:
            assert r.status == 400 and "entries[0]" in (await r.json())["error"]["message"]
        async with http.delete(base + "/web") as r:
            assert r.status == 204
        async with http.get(base + "/web") as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_the_sdk_keeps_glossaries_and_names_them_in_calls(kept: LiveServer, tmp_path: Path) -> None:
    from translate_svc.client import AsyncTranslateClient, GlossaryEntry, Term, TranslateError

    csv = tmp_path / "words.csv"
    csv.write_text("phrase,translation,target_language\nmeeting,reunion-sdk,spa\n")
    texts = ["the meeting starts at nine"]
    async with AsyncTranslateClient(f"127.0.0.1:{kept.port}") as client:
        made = await client.create_glossary("sdk", csv=csv, display_name="SDK")
        assert (made.id, made.entry_count, made.targets, made.revision) == ("sdk", 1, ("spa",), 1)
        assert "sdk" in [g.id for g in await client.list_glossaries()]
        got = await client.get_glossary("sdk", entries=True)
        assert got.entries == (GlossaryEntry("meeting", "reunion-sdk", "spa"),)
        by_id = await client.translate_text(texts, source="eng", targets="spa", glossaries=["sdk"], speech=False)
        inline = await client.translate_text(
            texts,
            source="eng",
            targets="spa",
            speech=False,
            terms=[Term("meeting", translation="reunion-sdk", target_language="spa")],
        )
        assert [t.text for r in by_id.results for t in r.translations] == [
            t.text for r in inline.results for t in r.translations
        ]
        new = await client.replace_glossary(
            "sdk", entries=[GlossaryEntry("nine", "nueve-sdk", "spa")], revision=made.revision
        )
        assert new.revision == 2
        await client.delete_glossary("sdk")
        with pytest.raises(TranslateError) as e:
            await client.get_glossary("sdk")
        assert e.value.code.name == "NOT_FOUND"


async def test_the_cli_creates_lists_shows_and_deletes_a_glossary(kept: LiveServer, tmp_path: Path) -> None:
    import asyncio
    import json

    from tests.support.cli import run_cli

    server = ("--server", f"127.0.0.1:{kept.port}")
    csv = tmp_path / "cli.csv"
    csv.write_text('phrase,translation,target_language\n"Acme, Inc.",Acme SA,spa\nBob,Roberto,fra\n')
    made = await asyncio.to_thread(run_cli, "glossaries", "create", "cli", str(csv), "--name", "CLI", "--json", *server)
    assert made.code == 0, made.text
    assert json.loads(made.out)["entry_count"] == 2
    listed = await asyncio.to_thread(run_cli, "glossaries", "list", "--json", *server)
    assert "cli" in [g["id"] for g in json.loads(listed.out)]
    shown = await asyncio.to_thread(run_cli, "glossaries", "show", "cli", "--csv", *server)
    assert shown.code == 0 and shown.out.splitlines()[1] == '"Acme, Inc.",Acme SA,spa,false', shown.text
    gone = await asyncio.to_thread(run_cli, "glossaries", "delete", "cli", *server)
    assert gone.code == 0, gone.text
    missing = await asyncio.to_thread(run_cli, "glossaries", "show", "cli", *server)
    assert missing.code == 1 and "no glossary" in missing.text, missing.text


async def test_a_stream_with_a_large_glossary_takes_updates_and_echoes_only_its_own_terms(
    kept: LiveServer, pcm: bytes
) -> None:
    """A stream's update (and a room's retarget) checks the stream's own terms again, not the
    stored glossary's entries (200 here, over ServerLimits.max_glossary_entries), which are kept
    for the targets that stay; its started and updated configs echo its own terms only."""
    entries = [pb.GlossaryEntry(phrase=f"w{n:03d}", translation=f"t{n:03d}", target_language="spa") for n in range(200)]
    await pb_grpc.GlossariesStub(kept.channel).CreateGlossary(
        pb.CreateGlossaryRequest(
            glossary_id="many", content=pb.GlossaryContent(entries=pb.GlossaryEntries(entries=entries))
        )
    )
    own = pb.Term(phrase="Kennedy", kind=pb.Term.BOOST)
    cfg = pb.StreamingConfig(
        format=FMT, source_language="eng", target_languages=["spa"], glossaries=["many"], terms=[own]
    )
    update = pb.StreamUpdate(targets=pb.TargetLanguages(languages=["spa", "fra"]))

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        yield pb.StreamingTranslateRequest(audio=pcm[:32000])
        yield pb.StreamingTranslateRequest(update=update)
        yield pb.StreamingTranslateRequest(audio=pcm[32000:64000])

    got = [r async for r in kept.stub.StreamingTranslate(requests(), timeout=120)]
    started = next(r.started for r in got if r.HasField("started"))
    updated = next(r.updated for r in got if r.HasField("updated"))
    assert [t.phrase for t in started.config.terms] == ["Kennedy"]
    assert updated.status.code == 0, updated.status.message
    assert list(updated.config.target_languages) == ["spa", "fra"] and len(updated.config.terms) == 1
    assert got[-1].HasField("ended")


async def test_an_mcp_tool_names_a_glossary_as_a_request_does(kept: LiveServer) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from tests.support.mcp_door import http_client, mcp_url

    entry = pb.GlossaryEntry(phrase="meeting", translation="reunion-mcp", target_language="spa")
    await pb_grpc.GlossariesStub(kept.channel).CreateGlossary(
        pb.CreateGlossaryRequest(
            glossary_id="mcp", content=pb.GlossaryContent(entries=pb.GlossaryEntries(entries=[entry]))
        )
    )
    texts = ["the meeting starts at nine"]
    base = {"texts": texts, "source_language": "eng", "target_languages": ["spa"]}
    inline = [{"phrase": "meeting", "translation": "reunion-mcp", "target_language": "spa"}]
    async with Client(streamable_http_client(mcp_url(kept), http_client=http_client(None))) as c:
        by_id = await c.call_tool("translate_text", {**base, "glossary_ids": ["mcp"]})
        inlined = await c.call_tool("translate_text", {**base, "glossary": inline})
        missing = await c.call_tool("translate_text", {**base, "glossary_ids": ["nope"]})
    assert not by_id.is_error and not inlined.is_error, (by_id.content, inlined.content)
    assert by_id.structured_content["results"] == inlined.structured_content["results"]
    assert missing.is_error


async def test_a_stream_reads_its_glossary_once_and_the_next_stream_sees_a_change(
    kept: LiveServer, pcm: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream reads the glossaries it names once, as it starts, not per segment (the store's
    reads are counted: the real SQLite store, its ``get`` counted); a replace is seen by the next
    stream that starts, at once (it reads the new revision)."""
    store = kept.server.app.sessions.glossaries.store
    real_get = store.get
    read: list[int] = []  # the revision each read of "once" found

    async def counted(tenant: str, glossary_id: str) -> Any:
        found = await real_get(tenant, glossary_id)
        if glossary_id == "once" and found is not None:
            read.append(found.revision)
        return found

    monkeypatch.setattr(store, "get", counted)
    glossaries = pb_grpc.GlossariesStub(kept.channel)

    def content(translation: str) -> pb.GlossaryContent:
        entry = pb.GlossaryEntry(phrase="country", translation=translation, target_language="spa")
        return pb.GlossaryContent(entries=pb.GlossaryEntries(entries=[entry]))

    await glossaries.CreateGlossary(pb.CreateGlossaryRequest(glossary_id="once", content=content("pais-uno")))
    cfg = pb.StreamingConfig(
        format=FMT,
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False),
        glossaries=["once"],
    )

    async def requests(parts: int) -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        step = len(pcm) // parts // 2 * 2
        for n in range(parts):  # a segment each: its audio, then FLUSH
            yield pb.StreamingTranslateRequest(audio=pcm[n * step : (n + 1) * step])
            yield pb.StreamingTranslateRequest(control=pb.FLUSH)

    got = [r async for r in kept.stub.StreamingTranslate(requests(3), timeout=120)]
    finals = [r.segment for r in got if r.HasField("segment")]
    assert len(finals) >= 2, got
    assert read == [1]  # once, for every segment
    new = await glossaries.ReplaceGlossary(pb.ReplaceGlossaryRequest(glossary_id="once", content=content("pais-dos")))
    assert new.revision == 2
    got = [r async for r in kept.stub.StreamingTranslate(requests(1), timeout=120)]
    assert got[-1].HasField("ended")
    assert read == [1, 2]  # the next stream read the new revision as it started
