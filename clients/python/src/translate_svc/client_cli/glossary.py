"""The client commands' --glossary file: "translate X as Y" entries (Term kind TRANSLATE) as TSV.

One entry a line, fields separated by a TAB::

    source phrase<TAB>translation[<TAB>target language[<TAB>ignore-case]]

The target language is a model code, a name or a BCP-47 tag, as --to takes them; it may be left
out (or empty) when --to names one language. ``ignore-case`` matches the source phrase in any
case (by default an entry matches in the case written, as Google's glossaries do). Blank lines
and lines starting with ``#`` are skipped. Every mistake is a ``CliError`` naming the file and the
line. Pure but for reading the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from translate_svc.client import Languages, Term
from translate_svc.client_cli.common import CliError
from translate_svc.client_cli.lang import UnknownLanguage, resolve_language
from translate_svc.languages import guess_model_code

#: the fourth field's one value
IGNORE_CASE = "ignore-case"
FORMAT = "source<TAB>translation[<TAB>target language[<TAB>ignore-case]]"


def read_glossary(path: Path, targets: Sequence[str], langs: Languages | None) -> list[Term]:
    """The file's entries for a call into ``targets`` (model codes); ``langs``: the server's
    languages, to map a line's language as --to is mapped (None: guessed from its shape)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"--glossary {path}: cannot read it ({e})") from None
    out: list[Term] = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        where = f"--glossary {path}:{n}"
        fields = [f.strip() for f in raw.split("\t")]
        if len(fields) < 2 or len(fields) > 4:
            raise CliError(f"{where}: write {FORMAT}, fields separated by a TAB ({len(fields)} field(s) here)")
        phrase, translation = fields[0], fields[1]
        if not phrase or not translation:
            raise CliError(f"{where}: the {'source phrase' if not phrase else 'translation'} is empty")
        flag = fields[3] if len(fields) == 4 else ""
        if flag and flag.lower() != IGNORE_CASE:
            raise CliError(f"{where}: the fourth field may only be {IGNORE_CASE!r} (got {flag!r})")
        out.append(
            Term(
                phrase,
                translation=translation,
                target_language=_target(fields[2] if len(fields) > 2 else "", targets, langs, where),
                ignore_case=bool(flag),
            )
        )
    return out


def _target(value: str, targets: Sequence[str], langs: Languages | None, where: str) -> str:
    if not value:
        if len(targets) == 1:
            return targets[0]
        raise CliError(
            f"{where}: name the target language in a third field: --to has {len(targets)} languages "
            f"({', '.join(targets) or 'none'})"
        )
    if langs is None:
        code = guess_model_code(value)
    else:
        try:
            code = resolve_language(value, langs.languages, what="target language").code
        except UnknownLanguage as e:
            raise CliError(f"{where}: {e}") from None
    if code not in targets:
        raise CliError(f"{where}: {value} is not among --to ({', '.join(targets) or 'none'}): add it, or drop the line")
    return code
