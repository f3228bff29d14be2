"""A stored glossary imported from TBX (issue 73) on every path CSV takes: the gRPC ``Glossaries``
service (``GlossaryContent.tbx``), ``/v1/glossaries`` (``Content-Type: application/x-tbx+xml``, or
``?format=tbx``), the SDK (``tbx=``) and the CLI (``glossaries create ID FILE.tbx --source``). One
real server on loopback, its glossaries in SQLite, real clients. The TBX files are written here as
ISO 30042 publishes them (TBX-Basic's ``martif``, TBX v3's ``tbx``), not by our code. A glossary
read from TBX acts as the same entries inline do (``TranslateText`` on the test checkpoint: only
equalities between our own answers are asserted). Bad TBX: INVALID_ARGUMENT / 400 naming the entry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

TEXTS = ["the meeting starts at nine", "the report is due on friday"]

TBX_BASIC = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE martif SYSTEM "TBXBasiccoreStructV02.dtd">
<martif type="TBX-Basic" xml:lang="en-US">
  <martifHeader>
    <fileDesc><sourceDesc><p>team terms</p></sourceDesc></fileDesc>
    <encodingDesc><p type="XCSURI">TBXBasicXCSV02.xcs</p></encodingDesc>
  </martifHeader>
  <text>
    <body>
      <termEntry id="c1">
        <langSet xml:lang="en"><tig><term>meeting</term></tig></langSet>
        <langSet xml:lang="es">
          <tig>
            <term>junta</term>
            <termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote>
          </tig>
          <tig><term>reuni\u00f3n-tbx</term></tig>
        </langSet>
        <langSet xml:lang="fr"><tig><term>r\u00e9union-tbx</term></tig></langSet>
      </termEntry>
      <termEntry id="c2">
        <langSet xml:lang="en"><tig><term>report</term></tig></langSet>
        <langSet xml:lang="es"><tig><term>informe-tbx</term></tig></langSet>
      </termEntry>
    </body>
  </text>
</martif>
"""

TBX_V3 = """<?xml version="1.0" encoding="UTF-8"?>
<?xml-model href="https://raw.githubusercontent.com/LTAC-Global/TBX-Core_dialect/master/Schemas/TBX-Core.rng"
  type="application/xml" schematypens="http://relaxng.org/ns/structure/1.0"?>
<tbx type="TBX-Core" style="dca" xml:lang="en" xmlns="urn:iso:std:iso:30042:ed-2">
  <tbxHeader><fileDesc><sourceDesc><p>v3</p></sourceDesc></fileDesc></tbxHeader>
  <text>
    <body>
      <conceptEntry id="meet">
        <langSec xml:lang="en"><termSec><term>meeting</term></termSec></langSec>
        <langSec xml:lang="es"><termSec><term>cita-v3</term></termSec></langSec>
        <langSec xml:lang="de"><termSec><term>Besprechung</term></termSec></langSec>
      </conceptEntry>
    </body>
  </text>
</tbx>
"""

NO_SOURCE = """<martif type="TBX-Basic"><text><body>
<termEntry id="ok"><langSet xml:lang="en"><tig><term>a</term></tig></langSet>
<langSet xml:lang="es"><tig><term>b</term></tig></langSet></termEntry>
<termEntry id="orphan"><langSet xml:lang="es"><tig><term>sola</term></tig></langSet></termEntry>
</body></text></martif>"""

LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE martif [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<martif><text><body><termEntry><langSet xml:lang="en"><tig><term>&b;</term></tig></langSet>
</termEntry></body></text></martif>"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kept(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = tmp_path_factory.mktemp("glossaries")
    settings.server.http_port = 0
    async with serving(settings) as live:
        yield live


def stub(live: LiveServer) -> pb_grpc.GlossariesStub:
    return pb_grpc.GlossariesStub(live.channel)


def tbx(data: str, source: str, *targets: str) -> pb.GlossaryContent:
    return pb.GlossaryContent(
        tbx=pb.TbxImport(data=data.encode(), source_language=source, target_languages=list(targets))
    )


async def texts(live: LiveServer, **kw: object) -> list[str]:
    req = pb.TranslateTextRequest(texts=TEXTS, source_language="eng", target_languages=["spa"], **kw)  # type: ignore[arg-type]
    reply = await live.stub.TranslateText(req, timeout=120)
    return [r.translations[0].text for r in reply.results]


def inline(pairs: list[tuple[str, str]]) -> list[pb.Term]:
    return [pb.Term(phrase=p, kind=pb.Term.TRANSLATE, translation=t, target_language="spa") for p, t in pairs]


async def test_a_tbx_basic_file_over_grpc_is_kept_as_its_entries_and_acts_as_them(kept: LiveServer) -> None:
    made = await stub(kept).CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id="tbx-grpc", content=tbx(TBX_BASIC, "en-US"))
    )
    assert (made.entry_count, list(made.target_languages)) == (3, ["fra", "spa"])
    got = await stub(kept).GetGlossary(pb.GetGlossaryRequest(glossary_id="tbx-grpc", include_entries=True))
    assert [(e.phrase, e.translation, e.target_language, e.ignore_case) for e in got.entries] == [
        ("meeting", "reuni\u00f3n-tbx", "spa", False),  # the deprecated "junta" is not the translation
        ("meeting", "r\u00e9union-tbx", "fra", False),
        ("report", "informe-tbx", "spa", False),
    ]
    said = [("meeting", "reuni\u00f3n-tbx"), ("report", "informe-tbx")]
    by_id = await texts(kept, glossaries=["tbx-grpc"])
    assert by_id == await texts(kept, terms=inline(said))
    assert by_id != await texts(kept)  # the entries acted
    # replaced from TBX v3, Spanish only: revision 2, the next call sees it
    new = await stub(kept).ReplaceGlossary(
        pb.ReplaceGlossaryRequest(glossary_id="tbx-grpc", content=tbx(TBX_V3, "eng", "spa"), revision=1)
    )
    assert (new.revision, new.entry_count, list(new.target_languages)) == (2, 1, ["spa"])
    assert await texts(kept, glossaries=["tbx-grpc"]) == await texts(kept, terms=inline([("meeting", "cita-v3")]))


@pytest.mark.parametrize(
    "content,words",
    [
        (tbx(NO_SOURCE, "eng"), "termEntry 'orphan' (line 4) has no term in the source language eng"),
        (tbx(TBX_V3.replace('"de"', '"xx-QQ"'), "eng"), "xml:lang='xx-QQ', not a language of this server"),
        (tbx(LAUGHS, "eng"), "internal DTD subset is refused"),
        (tbx(TBX_V3, ""), "names its source language"),
        (tbx("<glossary/>", "eng"), "root element is 'glossary'"),
        (tbx(TBX_V3[:400], "eng"), "not well-formed XML at line"),
    ],
)
async def test_bad_tbx_over_grpc_is_invalid_argument_naming_the_entry(
    kept: LiveServer, content: pb.GlossaryContent, words: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub(kept).CreateGlossary(pb.CreateGlossaryRequest(glossary_id="bad-tbx", content=content))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value


async def test_the_http_api_takes_tbx_by_content_type_or_format(kept: LiveServer) -> None:
    base = f"http://127.0.0.1:{kept.server.ports()['http_port']}/v1/glossaries"
    async with aiohttp.ClientSession() as http:
        url = base + "?id=tbx-web&display_name=Web&source_language=en&target_languages=es,fr"
        tbx_type = {"Content-Type": "application/x-tbx+xml"}
        async with http.post(url, data=TBX_BASIC.encode(), headers=tbx_type) as r:
            assert r.status == 201, await r.text()
            made = await r.json()
        assert (made["entry_count"], made["target_languages"], made["revision"]) == (3, ["fra", "spa"], 1)
        # ?format=tbx with a plain XML type: a replace, German from TBX v3
        url = base + "/tbx-web?format=tbx&source_language=eng&target_languages=deu&revision=1"
        async with http.put(url, data=TBX_V3.encode(), headers={"Content-Type": "application/xml"}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["revision"] == 2
        async with http.get(base + "/tbx-web?entries=true") as r:
            entries = (await r.json())["entries"]
        assert entries == [
            {"phrase": "meeting", "translation": "Besprechung", "target_language": "deu", "ignore_case": False}
        ]
        for data, query, words in [
            (NO_SOURCE, "source_language=eng", "termEntry 'orphan' (line 4) has no term in the source language"),
            (TBX_V3, "", "names its source language"),
            (LAUGHS, "source_language=eng", "internal DTD subset is refused"),
            (TBX_V3, "source_language=eng&target_languages=tlh", "target_languages: 'tlh'"),
        ]:
            async with http.post(f"{base}?id=bad-web&{query}", data=data.encode(), headers=tbx_type) as r:
                body = await r.json()
                assert r.status == 400 and words in body["error"]["message"], body
        async with http.post(f"{base}?id=bad-web&format=xlsx", data=b"x", headers=tbx_type) as r:
            assert r.status == 400 and "format='xlsx'" in (await r.json())["error"]["message"]


async def test_the_sdk_and_the_cli_import_tbx(kept: LiveServer, tmp_path: Path) -> None:
    from tests.support.cli import run_cli
    from translate_svc.client import AsyncTranslateClient, GlossaryEntry

    v2, v3 = tmp_path / "team.tbx", tmp_path / "v3.xml"
    v2.write_text(TBX_BASIC, encoding="utf-8")
    v3.write_text(TBX_V3, encoding="utf-8")
    async with AsyncTranslateClient(f"127.0.0.1:{kept.port}") as client:
        made = await client.create_glossary("tbx-sdk", tbx=v2, source_language="en", target_languages=["es"])
        assert (made.entry_count, made.targets) == (2, ("spa",))
        got = await client.get_glossary("tbx-sdk", entries=True)
        assert got.entries == (
            GlossaryEntry("meeting", "reuni\u00f3n-tbx", "spa"),
            GlossaryEntry("report", "informe-tbx", "spa"),
        )
        new = await client.replace_glossary("tbx-sdk", tbx=TBX_V3, source_language="eng", revision=made.revision)
        assert (new.revision, new.targets) == (2, ("deu", "spa"))
    server = ("--server", f"127.0.0.1:{kept.port}")
    made_cli = await asyncio.to_thread(
        run_cli, "glossaries", "create", "tbx-cli", str(v3), "--source", "en", "--target", "de", "--json", *server
    )
    assert made_cli.code == 0, made_cli.text
    assert (json.loads(made_cli.out)["entry_count"], json.loads(made_cli.out)["targets"]) == (1, ["deu"])
    no_source = await asyncio.to_thread(run_cli, "glossaries", "create", "tbx-cli2", str(v2), *server)
    assert no_source.code == 2 and "--source" in no_source.error_line(), no_source.text
    bad = tmp_path / "bad.tbx"
    bad.write_text(NO_SOURCE, encoding="utf-8")
    refused = await asyncio.to_thread(run_cli, "glossaries", "create", "tbx-cli3", str(bad), "--source", "eng", *server)
    assert refused.code == 2 and "termEntry 'orphan' (line 4)" in refused.text, refused.text
