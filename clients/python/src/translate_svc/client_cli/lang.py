"""Languages for the client commands: BCP-47 tags (``es``, ``pt-BR``, ``zh-Hant``) -> the model's codes.

SeamlessM4T names languages by ISO 639-3 code, with a script suffix where it has one (``spa``,
``cmn``, ``cmn_Hant``). Tags are parsed and normalised by ``langcodes`` (deprecated tags, likely
scripts: ``zh-TW`` is written in Hant, ``iw`` is ``he``), mapped to ISO 639-3 with its
``to_alpha3``, and a macrolanguage (``zh`` -> ``zho``, ``ar`` -> ``ara``) is replaced by the
individual language the model uses (``cmn``, ``arb``): the table below. What the loaded model really
has comes from the server (ListLanguages); a name that matches nothing gets a "did you mean"
(difflib over the model's codes and names). ``choose_languages`` applies this to --from/--to; the
rest is pure (no I/O).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from translate_svc.client import AsyncTranslateClient, Language, Languages, Term, TranslateError
from translate_svc.client_cli.common import CliError, warn
from translate_svc.languages import bcp47_candidates, guess_model_code

#: how many codes an error message lists
_SHOWN = 12


class UnknownLanguage(ValueError):
    """A language the model does not have; the message says what was meant, when it can tell."""


def _norm(value: str) -> str:
    return value.strip().casefold().replace("-", "_")


def _describe(lang: Language) -> str:
    return f"{lang.code} ({lang.name})" if lang.name and lang.name != lang.code else lang.code


def _suggestions(value: str, languages: Sequence[Language]) -> list[Language]:
    by_key: dict[str, Language] = {}
    for lang in languages:
        by_key.setdefault(lang.code.casefold(), lang)
        by_key.setdefault(lang.name.casefold(), lang)
    hits = difflib.get_close_matches(value.strip().casefold(), list(by_key), n=6, cutoff=0.6)
    out: list[Language] = []
    for key in hits:
        if by_key[key] not in out:
            out.append(by_key[key])
    return out[:3]


def _listing(languages: Sequence[Language]) -> str:
    codes = sorted(lang.code for lang in languages)
    shown = ", ".join(codes[:_SHOWN]) + (", ..." if len(codes) > _SHOWN else "")
    return f"this server's model has {len(codes)}: {shown}; `translate-svc languages` lists them"


def resolve_language(value: str, languages: Sequence[Language], *, what: str = "language") -> Language:
    """The model's language that ``value`` names: a model code (any case, ``-`` or ``_``), a
    language name (``Spanish``), or a BCP-47 tag (``es``, ``es-ES``, ``pt-BR``, ``zh-Hant``).
    Raises ``UnknownLanguage`` with a "did you mean" when nothing matches."""
    v = value.strip()
    if not v:
        raise UnknownLanguage(f"empty {what}: name one, e.g. spa or es")
    by_code = {lang.code: lang for lang in languages}
    if v in by_code:
        return by_code[v]
    key = _norm(v)
    for lang in languages:
        if _norm(lang.code) == key or lang.name.casefold() == v.casefold():
            return lang
    candidates = bcp47_candidates(v)
    for code in candidates:
        if code in by_code:
            return by_code[code]
    close = _suggestions(v, languages)
    if close:
        hint = "did you mean " + " or ".join(_describe(lang) for lang in close) + "?"
    elif candidates:
        hint = f"it means {candidates[-1]}, which is not one of the model's languages"
    else:
        hint = "it is neither a model code, a language name nor a BCP-47 tag"
    raise UnknownLanguage(f"unknown {what} {v!r}: {hint} ({_listing(languages)})")


# -- --from and --to ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LangChoice:
    """The model codes a call is made with."""

    source: str | None
    targets: list[str]
    #: --from auto[:candidates]: detect among these (empty: any); None: no detection
    detect: list[str] | None = None
    #: --conversation's languages (``targets`` empty); None: none
    conversation: list[str] | None = None

    @property
    def transcript(self) -> bool:
        return self.source is not None or self.detect is not None or self.conversation is not None

    @property
    def languages(self) -> list[str]:
        """The languages results come in (a dub track and subtitles each): the targets, or the
        conversation's languages."""
        return self.conversation if self.conversation is not None else self.targets


async def server_languages(client: AsyncTranslateClient, check: bool) -> Languages | None:
    """The server's languages, or None when not checking (or the token may not ask)."""
    if not check:
        return None
    try:
        return await client.languages()
    except TranslateError as e:
        if e.code is grpc.StatusCode.PERMISSION_DENIED:
            warn("the token may not list languages: --from/--to are sent as given (no check, no mapping)")
            return None
        raise


def choose_languages(
    source: str,
    to: str,
    langs: Languages | None,
    *,
    speech: bool,
    speaker_id: int | None,
    asr_only: bool = False,
    conversation: str = "",
) -> LangChoice:
    """--from and --to as the model's codes: checked against ``langs`` when given (speech output
    where ``speech``, the voice), else guessed from their shape. ``--from auto[:a,b]``: language
    detection (among a, b); ``asr_only``: no targets, the transcript alone; ``conversation``:
    --conversation (``conversation_languages``)."""
    if conversation.strip():
        return conversation_languages(conversation, langs, to=to, source=source, asr_only=asr_only)
    targets_in = [t.strip() for t in to.split(",") if t.strip()]
    head, _, rest = source.partition(":")
    auto = head.strip().lower() == "auto"
    candidates_in = [c.strip() for c in rest.split(",") if c.strip()] if auto else []
    if asr_only and targets_in:
        raise CliError("--asr-only returns the transcript alone: drop --to (or drop --asr-only to translate)")
    if asr_only and not source.strip():
        raise CliError("--asr-only needs the spoken language: --from en, or --from auto to detect it")
    if not targets_in and not asr_only:
        raise CliError(
            "--to is empty: name at least one target language, e.g. --to spa or --to es "
            "(or --asr-only for the transcript alone)"
        )
    detect: list[str] | None = None
    if langs is None:
        targets = [guess_model_code(t) for t in targets_in]
        src = guess_model_code(source) if source.strip() and not auto else None
        detect = [guess_model_code(c) for c in candidates_in] if auto else None
    else:
        try:
            chosen = [resolve_language(t, langs.languages, what="target language (--to)") for t in targets_in]
            src = (
                resolve_language(source, langs.languages, what="source language (--from)").code
                if source.strip() and not auto
                else None
            )
            if auto:
                detect = _candidates(candidates_in, langs)
        except UnknownLanguage as e:
            raise CliError(str(e)) from None
        if speech:
            _check_speech(chosen, langs)
        targets = [lang.code for lang in chosen]
        n = langs.model.num_speakers
        if speaker_id is not None and n and speaker_id >= n:
            raise CliError(f"--speaker-id {speaker_id}: this model has {n} voice(s), 0..{n - 1}")
    dup = sorted({t for t in targets if targets.count(t) > 1})
    if dup:
        raise CliError(f"--to names {dup[0]} twice (after mapping {to!r} to the model's codes)")
    return LangChoice(src, targets, detect)


def conversation_languages(
    conversation: str, langs: Languages | None, *, to: str, source: str, asr_only: bool
) -> LangChoice:
    """--conversation's languages as model codes (mapped as --to's are; the server checks them:
    how many, which its identifier picks), alone: a conversation takes the place of --to and --from."""
    beside = [flag for flag, given in (("--to", to), ("--from", source), ("--asr-only", asr_only)) if given]
    if beside:
        raise CliError(
            f"--conversation and {beside[0]} are both set: drop {' and '.join(beside)} (a conversation identifies "
            "each segment's language among its languages and translates it into the others)"
        )
    given = [c.strip() for c in conversation.split(",") if c.strip()]
    if langs is None:
        return LangChoice(None, [], conversation=[guess_model_code(c) for c in given])
    try:
        codes = [resolve_language(c, langs.languages, what="conversation language").code for c in given]
    except UnknownLanguage as e:
        raise CliError(str(e)) from None
    return LangChoice(None, [], conversation=codes)


def _candidates(values: Sequence[str], langs: Languages) -> list[str]:
    """``--from auto:...``'s candidates as model codes the server's identifier can pick."""
    if langs.identifier is None:
        raise CliError(
            "--from auto needs the server's spoken-language identifier, and this server has none "
            "(translate-svc download-lid-model on the server); give the language: --from en"
        )
    detectable = [lang for lang in langs.languages if lang.detectable]
    codes = [resolve_language(c, langs.languages, what="candidate language (--from auto:...)").code for c in values]
    unknown = [c for c in codes if c not in {lang.code for lang in detectable}]
    if unknown:
        raise CliError(
            f"--from auto: the identifier cannot pick {unknown[0]}; it picks "
            + ", ".join(sorted(lang.code for lang in detectable)[:_SHOWN])
        )
    return codes


def read_terms(path: Path) -> list[Term]:
    """A --terms file: one term a line, ``phrase`` or ``boost [W]: phrase`` (a boost, weight W),
    ``keep: phrase`` (do not translate); blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"--terms {path}: cannot read it ({e})") from None
    terms: list[Term] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, colon, phrase = line.partition(":")
        words = head.split()
        if not colon or not words or words[0].lower() not in ("boost", "keep"):
            terms.append(Term(line))
            continue
        kind, rest = words[0].lower(), words[1:]
        if not phrase.strip() or (kind == "keep" and rest) or len(rest) > 1:
            raise CliError(f"--terms {path}:{n}: write `keep: phrase`, `boost: phrase` or `boost 5: phrase`")
        try:
            weight = float(rest[0]) if rest else 0.0
        except ValueError:
            raise CliError(f"--terms {path}:{n}: the weight {rest[0]!r} is not a number (0-10)") from None
        terms.append(Term(phrase.strip(), keep=kind == "keep", weight=weight))
    return terms


def _check_speech(chosen: Sequence[Language], langs: Languages) -> None:
    silent = [lang for lang in chosen if not lang.speech_output]
    if silent:
        with_speech = ", ".join(sorted(lang.code for lang in langs.languages if lang.speech_output)[:12])
        raise CliError(
            f"{silent[0].code} ({silent[0].name}) has text output only on this model: pass --no-speech for "
            f"text alone, or pick targets with speech ({with_speech})"
        )
