"""A glossary's entries from TBX (issue 73): plain bytes, no server. The files are written here as
ISO 30042 publishes them (TBX-Basic's ``martif`` with its DOCTYPE, and TBX v3's ``tbx`` in its
namespace with the ``xml-model`` lines), not produced by our code."""

from __future__ import annotations

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.glossaries.model import GlossaryEntry, GlossaryLimits
from translate_svc.glossaries.tbx import parse_tbx

pytestmark = pytest.mark.unit

LIMITS = GlossaryLimits(max_entries=8, max_glossaries=3, max_per_request=2, max_import_bytes=8192, max_term_chars=24)
LANGS = ("eng", "spa", "fra", "deu", "cmn_Hant")

TBX_BASIC = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE martif SYSTEM "TBXBasiccoreStructV02.dtd">
<martif type="TBX-Basic" xml:lang="en-US">
  <martifHeader>
    <fileDesc>
      <titleStmt><title>Team terms</title></titleStmt>
      <sourceDesc><p>exported by hand</p></sourceDesc>
    </fileDesc>
    <encodingDesc><p type="XCSURI">TBXBasicXCSV02.xcs</p></encodingDesc>
  </martifHeader>
  <text>
    <body>
      <termEntry id="c1">
        <descrip type="subjectField">meetings</descrip>
        <langSet xml:lang="en-US">
          <tig>
            <term>stand-up</term>
            <termNote type="partOfSpeech">noun</termNote>
          </tig>
          <tig>
            <term>daily  scrum</term>
            <termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote>
          </tig>
        </langSet>
        <langSet xml:lang="es">
          <tig>
            <term>junta diaria</term>
            <termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote>
          </tig>
          <tig>
            <term>reuni\u00f3n diaria</term>
            <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote>
          </tig>
        </langSet>
        <langSet xml:lang="fr-FR">
          <tig><term>point quotidien</term></tig>
        </langSet>
      </termEntry>
      <termEntry id="c2">
        <langSet xml:lang="en"><tig><term>Acme &amp; Co</term></tig></langSet>
        <langSet xml:lang="zh-TW"><tig><term>\u827e\u514b\u7f8e</term></tig></langSet>
      </termEntry>
    </body>
  </text>
</martif>
"""

TBX_V3 = """<?xml version="1.0" encoding="UTF-8"?>
<?xml-model href="https://raw.githubusercontent.com/LTAC-Global/TBX-Core_dialect/master/Schemas/TBX-Core.rng"
  type="application/xml" schematypens="http://relaxng.org/ns/structure/1.0"?>
<tbx type="TBX-Core" style="dca" xml:lang="en" xmlns="urn:iso:std:iso:30042:ed-2">
  <tbxHeader>
    <fileDesc><sourceDesc><p>written for the test</p></sourceDesc></fileDesc>
  </tbxHeader>
  <text>
    <body>
      <conceptEntry id="rep">
        <langSec xml:lang="en">
          <termSec><term>quarterly report</term></termSec>
        </langSec>
        <langSec xml:lang="de">
          <termSec><term>Quartalsbericht</term></termSec>
        </langSec>
        <langSec xml:lang="es">
          <termSec><term>informe trimestral</term></termSec>
        </langSec>
      </conceptEntry>
    </body>
  </text>
</tbx>
"""


def test_tbx_basic_yields_an_entry_per_source_term_and_target_as_csv_rows_do() -> None:
    assert parse_tbx(TBX_BASIC.encode(), LIMITS, LANGS, "en") == [
        GlossaryEntry("stand-up", "reuni\u00f3n diaria", "spa"),
        GlossaryEntry("daily scrum", "reuni\u00f3n diaria", "spa"),  # a deprecated source term is still said
        GlossaryEntry("stand-up", "point quotidien", "fra"),
        GlossaryEntry("daily scrum", "point quotidien", "fra"),
        GlossaryEntry("Acme & Co", "\u827e\u514b\u7f8e", "cmn_Hant"),
    ]


def test_tbx_v3_in_its_namespace_and_only_the_targets_asked_for() -> None:
    assert parse_tbx(TBX_V3.encode(), LIMITS, LANGS, "eng", ["es"]) == [
        GlossaryEntry("quarterly report", "informe trimestral", "spa")
    ]
    # the other way round: the German term is the phrase
    assert parse_tbx(TBX_V3.encode(), LIMITS, LANGS, "de", ["eng"]) == [
        GlossaryEntry("Quartalsbericht", "quarterly report", "eng")
    ]


def test_a_tbx_in_utf16_as_its_declaration_says() -> None:
    data = TBX_V3.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert len(parse_tbx(data, LIMITS, LANGS, "eng")) == 2


def _entry(*langsets: str, ident: str = "x1") -> bytes:
    body = "".join(langsets)
    entry = f'<termEntry id="{ident}">{body}</termEntry>'
    return f'<martif type="TBX-Basic"><text><body>\n{entry}\n</body></text></martif>'.encode()


def _ls(lang: str, *terms: str) -> str:
    return f'<langSet xml:lang="{lang}">' + "".join(f"<tig><term>{t}</term></tig>" for t in terms) + "</langSet>"


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE martif [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<martif><text><body><termEntry><langSet xml:lang="en"><tig><term>&lol2;</term></tig></langSet></termEntry>
</body></text></martif>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE martif [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<martif><text><body><termEntry><langSet xml:lang="en"><tig><term>&secret;</term></tig></langSet></termEntry>
</body></text></martif>
"""


@pytest.mark.parametrize(
    "data,source,targets,words",
    [
        (LAUGHS, "eng", (), "internal DTD subset is refused"),
        (EXTERNAL, "eng", (), "internal DTD subset is refused"),
        (
            b'<!DOCTYPE martif SYSTEM "TBXBasiccoreStructV02.dtd">' + _entry(_ls("en", "&nbsp;a")),
            "eng",
            (),
            "entity 'nbsp' (line 2), which is not declared",
        ),
        (
            _entry(_ls("de", "Bericht"), _ls("es", "informe")),
            "eng",
            (),
            "termEntry 'x1' (line 2) has no term in the source language eng",
        ),
        (_entry(_ls("en", "report")), "eng", (), "termEntry 'x1' (line 2) has no term in a target language"),
        (_entry(_ls("en", "report"), _ls("de", "Bericht")), "eng", ("spa",), "no term in a target language (spa)"),
        (_entry(_ls("en", "report"), _ls("xx-YY", "r")), "eng", (), "xml:lang='xx-YY', not a language of this server"),
        (_entry(_ls("en", "report"), "<langSet><tig><term>r</term></tig></langSet>"), "eng", (), "has no xml:lang"),
        (_entry(_ls("en", "   "), _ls("es", "informe")), "eng", (), "its term at line 2 is empty"),
        (_entry(_ls("en", "r" * 30), _ls("es", "informe")), "eng", (), "is 30 characters; at most 24"),
        (
            _entry(_ls("en", "report"), _ls("es", "informe")) + b"<x>",
            "eng",
            (),
            "not well-formed XML at line 3, column 24: junk after document element",
        ),
        (b"<html><body/></html>", "eng", (), "root element is 'html'"),
        (b"<martif><text><body/></text></martif>", "eng", (), "no term entry"),
        (_entry(_ls("en", "report"), _ls("es", "informe")), "", (), "names its source language"),
        (_entry(_ls("en", "report"), _ls("es", "informe")), "klingon", (), "source_language 'klingon'"),
        (_entry(_ls("en", "report"), _ls("es", "informe")), "eng", ("en",), "is the source language"),
        (b"x" * 9000, "eng", (), "at most 8192"),
    ],
)
def test_bad_tbx_is_refused_naming_the_entry_and_line(
    data: bytes, source: str, targets: tuple[str, ...], words: str
) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_tbx(data, LIMITS, LANGS, source, targets)
    assert words in str(e.value), e.value


def test_a_phrase_in_two_entries_for_one_language_names_both() -> None:
    two = (
        b'<martif><text><body>\n<termEntry id="a">'
        + _ls("en", "report").encode()
        + _ls("es", "informe").encode()
        + b'</termEntry>\n<termEntry id="b">'
        + _ls("en", "report").encode()
        + _ls("es", "reporte").encode()
        + b"</termEntry></body></text></martif>"
    )
    with pytest.raises(
        InvalidInput, match="termEntry 'b' \\(line 3\\) repeats 'report' for spa, which termEntry 'a' \\(line 2\\) has"
    ):
        parse_tbx(two, LIMITS, LANGS, "eng")


def test_more_entries_than_a_glossary_holds_are_refused_while_reading() -> None:
    many = b"".join(
        f'<termEntry id="t{n}">{_ls("en", f"w{n}")}{_ls("es", f"p{n}")}</termEntry>'.encode() for n in range(9)
    )
    with pytest.raises(InvalidInput, match="more than 8 term entries"):
        parse_tbx(b"<martif><text><body>" + many + b"</body></text></martif>", LIMITS, LANGS, "eng")


def test_tbx_v2s_ntig_term_groups_are_read_as_tig() -> None:
    data = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<martif type="TBX" xml:lang="en"><martifHeader><fileDesc><sourceDesc><p>v2</p></sourceDesc></fileDesc></martifHeader>
<text><body><termEntry id="n1">
<langSet xml:lang="en"><ntig><termGrp><term>invoice</term></termGrp></ntig></langSet>
<langSet xml:lang="fr"><ntig><termGrp><term>facture</term>
<termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote></termGrp></ntig>
<ntig><termGrp><term>note de d\xe9bit</term></termGrp></ntig></langSet>
</termEntry></body></text></martif>"""
    assert parse_tbx(data, LIMITS, LANGS, "eng") == [GlossaryEntry("invoice", "note de d\u00e9bit", "fra")]
