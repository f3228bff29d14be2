"""Glossary files as users keep them (issue 91): a TBX-Basic file of 10,000 concepts in the shape
terminology tools export (ISO 30042 TBX-Basic: ``martif`` > ``text`` > ``body`` > ``termEntry``
with a subject field and a transaction group, each ``langSet`` with a ``tig`` whose term has its
part of speech and administrative status; written from the TBX-Basic specification's sample
entry), 9.1 MB pretty-printed as tools write it, and the same glossary as a CSV (0.6 MB).
None of their phrases is said in the shared speech files."""

from __future__ import annotations

from xml.sax.saxutils import escape

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE martif SYSTEM "TBXBasiccoreStructV02.dtd">
<martif type="TBX-Basic-V1" xml:lang="en-US">
  <martifHeader>
    <fileDesc><sourceDesc><p>Exported from a termbase: product terminology, 10,000 concepts</p></sourceDesc></fileDesc>
    <encodingDesc><p type="XCSURI">TBXBasicXCSV02.xcs</p></encodingDesc>
  </martifHeader>
  <text>
    <body>
"""
TAIL = """    </body>
  </text>
</martif>
"""


def phrase(n: int) -> str:
    return f"zorbex part {n:05d} assembly"


def translation(n: int) -> str:
    return f"conjunto de pieza zorbex {n:05d}"


def _tig(term: str) -> str:
    return f"""          <tig>
            <term>{escape(term)}</term>
            <termNote type="partOfSpeech">noun</termNote>
            <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote>
          </tig>
"""


def tbx_entry(n: int) -> str:
    return f"""      <termEntry id="c{n:05d}">
        <descrip type="subjectField">manufacturing</descrip>
        <transacGrp>
          <transac type="transactionType">origination</transac>
          <transacNote type="responsibility" target="tm-team">Terminology team</transacNote>
          <date>2025-03-14</date>
        </transacGrp>
        <langSet xml:lang="en-US">
{_tig(phrase(n))}        </langSet>
        <langSet xml:lang="es-ES">
{_tig(translation(n))}        </langSet>
      </termEntry>
"""


def tbx(entries: int) -> bytes:
    """A TBX-Basic file of ``entries`` concepts, English and Spanish (one glossary entry each)."""
    return (HEAD + "".join(tbx_entry(n) for n in range(entries)) + TAIL).encode()


def csv(entries: int, target: str = "spa") -> bytes:
    """The same glossary as a CSV (a header row, then phrase,translation,target_language)."""
    rows = ["phrase,translation,target_language"] + [f"{phrase(n)},{translation(n)},{target}" for n in range(entries)]
    return ("\n".join(rows) + "\n").encode()
