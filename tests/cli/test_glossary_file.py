"""The --glossary TSV file (client_cli/glossary.py): entries, the target language's three ways, and each
mistake named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate_svc.client import Term
from translate_svc.client.types import Language, Languages, ModelInfo, ServerLimits
from translate_svc.client_cli.common import CliError
from translate_svc.client_cli.glossary import read_glossary

pytestmark = pytest.mark.unit


def languages() -> Languages:
    return Languages(
        languages=tuple(
            Language(code, name, speech_input=True, text_output=True, speech_output=True)
            for code, name in (("eng", "English"), ("spa", "Spanish"), ("fra", "French"))
        ),
        model=ModelInfo(name="m", revision="r", is_test_model=True, num_speakers=1),
        limits=ServerLimits(0, 0, 0, 0.0, 0, 0.0, 0.0, 0, 0),
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "glossary.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_entries_with_and_without_a_language_and_ignore_case(tmp_path: Path) -> None:
    path = write(tmp_path, "# names\nAcme Cloud\tNube Acme\n\ngRPC\tgRPC\tes\tignore-case\nAcme\tAcmé\tfra\n")
    with pytest.raises(CliError, match=r"glossary.tsv:2: name the target language in a third field: --to has 2"):
        read_glossary(path, ["spa", "fra"], languages())
    got = read_glossary(
        write(tmp_path, "gRPC\tgRPC\tes\tignore-case\nAcme\tAcmé\tFrench\n"), ["spa", "fra"], languages()
    )
    assert got == [
        Term("gRPC", translation="gRPC", target_language="spa", ignore_case=True),
        Term("Acme", translation="Acmé", target_language="fra"),
    ]
    one = read_glossary(write(tmp_path, "Acme Cloud\tNube Acme\n"), ["spa"], None)
    assert one == [Term("Acme Cloud", translation="Nube Acme", target_language="spa")]
    assert read_glossary(write(tmp_path, "Acme\tAcmé\tfra\n"), ["spa", "fra"], None)[0].target_language == "fra"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Acme Cloud Nube Acme\n", r":1: write source<TAB>translation.* \(1 field\(s\) here\)"),
        ("a\tb\tspa\tx\ty\n", r":1: write .* \(5 field\(s\) here\)"),
        ("\n\tNube\n", r":2: the source phrase is empty"),
        ("Acme\t \n", r":1: the translation is empty"),
        ("Acme\tAcmé\tspa\tcase\n", r":1: the fourth field may only be 'ignore-case' \(got 'case'\)"),
        ("Acme\tAcmé\tfr\n", r":1: fr is not among --to \(spa\): add it, or drop the line"),
        ("Acme\tAcmé\tKlingon\n", r":1: .*Klingon"),
    ],
)
def test_each_mistake_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        read_glossary(write(tmp_path, text), ["spa"], languages())


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"--glossary .*missing.tsv: cannot read it"):
        read_glossary(tmp_path / "missing.tsv", ["spa"], None)
