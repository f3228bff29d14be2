"""What a transcription asks of the stream core, whichever door brought it: the realtime
transcription session (``transcription_config.py``: its ``language``, ``prompt`` and ``keywords``,
its ``turn_detection``) and the audio REST endpoints (``audio_form.py``: ``language``, ``prompt``,
``keywords``, ``chunking_strategy``) read these fields here, so both say the same words for the same
mistake. A room of its own because neither door owns it: the REST endpoints hold no realtime
session, and need nothing of its settings or its session object.

- the spoken language: a tag -> the model's code, a list of possible ones -> detection among them,
  none -> detection among all (``source_or_detect``);
- the prompt and keywords as BOOST terms at the default weight, within the server's term limits
  (``boost_terms``);
- server VAD's object (a session's ``turn_detection``, a REST ``chunking_strategy``), or
  ``semantic_vad``'s with its ``eagerness`` (the end-of-turn model at each pause), checked field by
  field (``server_vad``), and as the stream core's VAD (``vad_config``);
- a JSON object read strictly (``json_object``, ``known_fields``): a field this server does not
  know is a ``ParamError`` naming it, with the fields it knows.

Pure: no socket, no web framework.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from translate_svc import words
from translate_svc.errors import shown
from translate_svc.languages import guess_model_code
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai.wire import ParamError
from translate_svc.types import ModelCard, Term
from translate_svc.vad.segmenter import EAGERNESS, MS_RANGES, SegmenterConfig, VadConfigError

#: where a prompt is cut into terms: a list of names and jargon, as OpenAI's guide writes it for whisper-1
_PROMPT_SEPARATORS = re.compile(r"[,;\n]")
#: the fields a ``server_vad`` object may name (OpenAI's; ``server_vad`` says which act here)
_TURN_DETECTION = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "idle_timeout_ms",
        "eagerness",
        "x_eager_threshold",
    }
)


@dataclass(frozen=True)
class TurnDetection:
    """Server VAD (``server_vad``), or the semantic end of turn (``semantic_vad``: an
    ``eagerness``), as the stream core's VAD takes it."""

    threshold: float
    prefix_padding_ms: int  # the VAD's speech_pad_ms
    silence_duration_ms: int  # the VAD's min_silence_ms (semantic_vad: the pause it asks at)
    eagerness: str = ""  # the VAD's eagerness: "" is server_vad
    #: semantic_vad's ``x_eager_threshold``: the VAD's eager end of turn (0: none)
    eager_threshold: float = 0.0

    @classmethod
    def of(cls, vad: SegmenterConfig) -> TurnDetection:
        return cls(vad.threshold, vad.speech_pad_ms, vad.min_silence_ms, vad.eagerness, vad.eager_threshold)


def source_or_detect(
    language: str | None, languages: Sequence[str], card: ModelCard | None, param: str
) -> tuple[str, tuple[str, ...] | None]:
    """The spoken language as the core takes it: a tag (ISO 639-1, as OpenAI's clients send it, or
    any tag ``languages.py`` maps) -> the model's code; a list of possible ones -> detection among
    them; none -> detection among all, with the server's language identifier (else ``ParamError``)."""
    if language:
        code = guess_model_code(language)
        if card is not None and code not in card.text_codes:
            raise ParamError(
                f"language {shown(language)} is not one this model transcribes: give an ISO-639-1 code such "
                'as "en" or "es" (gRPC ListLanguages lists them)',
                param,
            )
        return code, None
    codes = tuple(dict.fromkeys(guess_model_code(t) for t in languages))
    if len(codes) == 1:
        return source_or_detect(languages[0], (), card, param)
    if card is not None and card.identifier is None:
        what = "one of the languages given" if codes else "the spoken language"
        raise ParamError(
            f'this server has no language identifier to find {what}: set the language (ISO-639-1, e.g. "en")',
            param,
        )
    if card is not None:
        for tag, code in zip(languages, codes, strict=False):
            if code not in card.detectable_codes:
                raise ParamError(f"language {shown(tag)} is not one the language identifier can pick", param)
    return "", codes


def boost_terms(
    prompt: str | None,
    keywords: Sequence[str],
    limits: LimitsSettings,
    *,
    prompt_param: str,
    keywords_param: str,
    extra: Sequence[Term] = (),
) -> tuple[Term, ...]:
    """``prompt`` (names and jargon, separated by commas, semicolons or lines: how OpenAI's guide
    prompts whisper-1) and ``keywords`` as BOOST terms at the default weight, after ``extra`` (the
    session's ``x_terms``, which keep their weights), within the server's term limits
    (``ParamError`` naming the field and the limit)."""
    pieces = [(p.strip(), prompt_param) for p in _PROMPT_SEPARATORS.split(prompt or "")]
    pieces += [(k.strip(), keywords_param) for k in keywords]
    terms: dict[str, Term] = {words.key(t.phrase, ignore_case=True): t for t in extra}
    for phrase, param in pieces:
        if not phrase:
            continue
        if len(phrase) > limits.max_term_chars or not phrase.isprintable():
            raise ParamError(
                f"{param} is taken as names and terms to boost, separated by commas: each at most "
                f"{limits.max_term_chars} printable characters (limits.max_term_chars), and one here has "
                f"{len(phrase)}: shorten it, or leave the prompt out",
                param,
            )
        terms.setdefault(words.key(phrase, ignore_case=True), Term(phrase))
    if len(terms) > limits.max_terms:
        raise ParamError(
            f"the prompt, keywords and x_terms make {len(terms)} terms to boost; this server takes at most "
            f"{limits.max_terms} (limits.max_terms): keep the names that matter most",
            prompt_param if prompt else keywords_param if keywords else "session.x_terms",
        )
    return tuple(terms.values())


def vad_config(defaults: SegmenterConfig, td: TurnDetection, param: str) -> SegmenterConfig:
    """Server VAD's parameters as the stream core's VAD (its range rules as ``ParamError``)."""
    try:
        return dataclasses.replace(
            defaults,
            threshold=td.threshold,
            speech_pad_ms=td.prefix_padding_ms,
            min_silence_ms=td.silence_duration_ms,
            eagerness=td.eagerness,
            eager_threshold=td.eager_threshold,
        )
    except VadConfigError as e:  # (the ranges are checked as they are read; this is the pad's rule)
        message = (
            str(e).replace("vad.speech_pad_ms", "prefix_padding_ms").replace("vad.max_segment_ms", "the segment cap")
        )
        raise ParamError(message, param) from None


def server_vad(value: Any, param: str, vad: SegmenterConfig) -> TurnDetection:
    """A ``server_vad`` or ``semantic_vad`` object (a session's ``turn_detection``, a REST
    ``chunking_strategy``), each absent field at the server's VAD default (``semantic_vad``'s
    eagerness: ``auto``; its threshold, padding and silence, which OpenAI's object does not have,
    are silero's as ``server_vad`` takes them: the silence is the pause the model is asked at)."""
    obj = json_object(value, param)
    known_fields(obj, _TURN_DETECTION, param)
    kind = obj.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ParamError(
            f'{param}.type must be "server_vad" or "semantic_vad" (or the whole field null)', f"{param}.type"
        )
    eagerness = ""
    if kind == "semantic_vad":
        eagerness = obj.get("eagerness") or "auto"
        if eagerness not in EAGERNESS:
            raise ParamError(
                f"{param}.eagerness must be one of {', '.join(EAGERNESS)} (auto: medium)", f"{param}.eagerness"
            )
    else:
        for name in ("eagerness", "x_eager_threshold"):
            if obj.get(name) is not None:
                raise ParamError(
                    f'{param}.{name} is semantic_vad\'s: send {{"type": "semantic_vad", "{name}": ...}}, '
                    "or leave it out",
                    f"{param}.{name}",
                )
    eager = obj.get("x_eager_threshold")
    rule = EAGERNESS.get(eagerness)
    if eager is None:  # the server's default, where this eagerness allows it (``SegmenterConfig.eager``)
        eager = vad.eager_threshold
    elif eager and (
        not isinstance(eager, int | float) or isinstance(eager, bool) or rule is None or not 0 < eager < rule.threshold
    ):
        top = rule.threshold if rule is not None else 1
        raise ParamError(
            f"{param}.x_eager_threshold must be a number above 0 and below {top} (where this eagerness calls a turn "
            "complete), or 0 for no eager end of turn",
            f"{param}.x_eager_threshold",
        )
    if obj.get("idle_timeout_ms") is not None:
        raise ParamError(
            "idle_timeout_ms makes the model respond after a silence: a transcription session has no "
            "responses; leave it out",
            f"{param}.idle_timeout_ms",
        )
    for flag in ("create_response", "interrupt_response"):
        if obj.get(flag) is not None and not isinstance(obj[flag], bool):
            raise ParamError(f"{param}.{flag} must be true or false", f"{param}.{flag}")
    threshold = obj.get("threshold", vad.threshold)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 < threshold < 1:
        raise ParamError(f"{param}.threshold must be a number between 0 and 1 (0.5 is typical)", f"{param}.threshold")
    pad = _ms(obj, "prefix_padding_ms", vad.speech_pad_ms, MS_RANGES["speech_pad_ms"], param)
    silence = _ms(obj, "silence_duration_ms", vad.min_silence_ms, MS_RANGES["min_silence_ms"], param)
    td = TurnDetection(float(threshold), pad, silence, eagerness, float(eager))
    vad_config(vad, td, param)  # the pad's rule against the segment cap
    return td


def _ms(obj: dict[str, Any], name: str, default: int, bounds: tuple[int, int], param: str) -> int:
    value = obj.get(name, default)
    if value is None:
        value = default
    lo, hi = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ParamError(f"{param}.{name} must be a whole number of milliseconds in {lo}..{hi}", f"{param}.{name}")
    return value


def known_fields(obj: dict[str, Any], known: frozenset[str], param: str) -> None:
    for key in obj:
        if key not in known:
            raise ParamError(
                f"{param} has a field this server does not know: {shown(key, 40)} (known: {', '.join(sorted(known))})",
                f"{param}.{key}" if isinstance(key, str) and len(key) <= 40 else param,
            )


def json_object(value: Any, param: str) -> dict[str, Any]:
    """``value`` as a JSON object (null or absent: an empty one), or ``ParamError``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParamError(f"{param} must be a JSON object", param)
    return value
