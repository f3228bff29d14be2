"""What a realtime transcription session may be configured with, checked before anything in it is
converted (DESIGN.md pitfall 21), and what it becomes: the stream core's config (ASR only: no
targets, the transcript alone) and the session object the server answers with. Pure: no socket,
no web framework; ``transcription.py`` (the protocol) and the audio REST endpoints
(``audio_form.py``: ``language``, ``prompt``, ``chunking_strategy``) use it.

Two shapes of the same settings, as OpenAI's clients send them:

- GA: ``session.update`` with ``session: {type: "transcription", audio: {input: {format,
  transcription: {model, language, prompt, keywords, languages}, noise_reduction, turn_detection}},
  include}``, answered with ``session.updated``;
- beta: ``transcription_session.update`` with ``session: {input_audio_format,
  input_audio_transcription: {model, language, prompt}, input_audio_noise_reduction,
  turn_detection, include, modalities, client_secret}``, answered with
  ``transcription_session.updated``.

An update changes the fields it names, as OpenAI's does; an object it names (``transcription``,
``turn_detection``) is replaced whole, its absent fields at their defaults. A field this server does
not know, a value of the wrong kind, a ``model`` list, ``semantic_vad``, log probabilities: a
``ParamError`` naming the field (``param``) and what to send instead. Noise reduction (either type)
runs RNNoise before the VAD and the model (issue 72). The session object's ``x_ignored`` lists the
beta shape's ``modalities`` and ``client_secret`` and server VAD's
``create_response``/``interrupt_response``, which configure
responses and keys a transcription session has none of.

Our extension ``x_terms`` (``x_terms.py``), on either shape's ``session``: **boost** terms only
(a transcription session translates nothing, so a ``keep`` term or a glossary entry could not act
and is refused, ``param`` naming the item), taken with the prompt's and keywords' terms (an
``x_terms`` phrase keeps its weight).
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
from translate_svc.session.events import StreamConfig
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai import x_terms
from translate_svc.transport.openai.wire import ParamError as ParamError  # re-exported: its users import it here
from translate_svc.types import AudioEncoding, AudioFormat, EarOptions, ModelCard, OutputOptions, Term
from translate_svc.vad.segmenter import MS_RANGES, SegmenterConfig, VadConfigError

#: the audio formats of both shapes (beta's names; GA's ``format.type`` -> them)
FORMATS: dict[str, AudioFormat] = {
    "pcm16": AudioFormat(AudioEncoding.LINEAR16, 24000, 1),
    "g711_ulaw": AudioFormat(AudioEncoding.MULAW, 8000, 1),
    "g711_alaw": AudioFormat(AudioEncoding.ALAW, 8000, 1),
}
GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
#: a language tag's characters, a prompt's, a model name's (it is echoed), and the most candidate
#: ``session.include``'s value for the transcripts' log probabilities (OpenAI's one)
LOGPROBS = "item.input_audio_transcription.logprobs"
#: languages and keywords looked at (the server's own limits then apply)
MAX_TAG_CHARS = 35
MAX_PROMPT_CHARS = 4096
MAX_MODEL_CHARS = 128
MAX_LIST = 256
#: where a prompt is cut into terms: a list of names and jargon, as OpenAI's guide writes it for whisper-1
_PROMPT_SEPARATORS = re.compile(r"[,;\n]")

_GA_SESSION = frozenset({"type", "audio", "include", "x_terms"})
_GA_INPUT = frozenset({"format", "noise_reduction", "transcription", "turn_detection"})
_GA_TRANSCRIPTION = frozenset({"model", "language", "prompt", "keywords", "languages", "delay"})
_BETA_SESSION = frozenset(
    {
        "input_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "turn_detection",
        "include",
        "modalities",
        "client_secret",
        "x_terms",
    }
)
_BETA_TRANSCRIPTION = frozenset({"model", "language", "prompt"})
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
    }
)
_NOISE_REDUCTION = frozenset({"type", "strength"})


@dataclass(frozen=True)
class TurnDetection:
    """Server VAD (``server_vad``) as the stream core's VAD takes it."""

    threshold: float
    prefix_padding_ms: int  # the VAD's speech_pad_ms
    silence_duration_ms: int  # the VAD's min_silence_ms

    @classmethod
    def of(cls, vad: SegmenterConfig) -> TurnDetection:
        return cls(vad.threshold, vad.speech_pad_ms, vad.min_silence_ms)


@dataclass(frozen=True)
class TranscriptionSettings:
    """One transcription session's settings, as the client set them (tags as given)."""

    turn_detection: TurnDetection | None  # None: the client commits its turns
    audio_format: str = "pcm16"
    model: str = ""
    language: str | None = None
    languages: tuple[str, ...] = ()
    prompt: str | None = None
    keywords: tuple[str, ...] = ()
    #: our extension ``x_terms``: BOOST terms only (``_x_terms``)
    terms: x_terms.SessionTerms = dataclasses.field(default_factory=x_terms.SessionTerms)
    #: noise reduction's type ("near_field", "far_field"; both RNNoise before the VAD); None: off
    noise_reduction: str | None = None
    #: fields given that have no effect here (their params), for ``x_ignored``
    ignored: tuple[str, ...] = ()
    beta: bool = False  # the shape of the last update (the params its errors name)
    #: ``include: ["item.input_audio_transcription.logprobs"]``: transcripts with their tokens' logprobs
    logprobs: bool = False

    def param(self, ga: str, beta: str) -> str:
        return beta if self.beta else ga

    def same_stream(self, other: TranscriptionSettings) -> bool:
        """Whether ``other`` asks for the stream these settings started (what a running session
        cannot change: everything but the echo-only ``model`` and ``ignored``)."""
        return self._stream() == other._stream()

    def _stream(self) -> tuple[object, ...]:
        return (
            self.turn_detection,
            self.noise_reduction,
            self.audio_format,
            self.language,
            self.languages,
            self.prompt,
            self.keywords,
            self.terms,
        )


def update_ga(
    session: Any, current: TranscriptionSettings, vad: SegmenterConfig, limits: LimitsSettings | None = None
) -> TranscriptionSettings:
    """A GA ``session.update``'s ``session`` applied to ``current`` (``ParamError``); ``limits``:
    the server's (None: the defaults)."""
    s = _object(session, "session")
    _known(s, _GA_SESSION, "session")
    if s.get("type") != "transcription":
        kind = s.get("type")
        raise ParamError(
            f"session.type is {shown(kind)}: this endpoint serves transcription sessions, so set "
            '"type": "transcription" (translation sessions are at /v1/realtime/translations; '
            "conversation sessions are not served)",
            "session.type",
        )
    audio = _object(s.get("audio"), "session.audio")
    _known(audio, frozenset({"input"}), "session.audio")
    inp = _object(audio.get("input"), "session.audio.input")
    _known(inp, _GA_INPUT, "session.audio.input")
    out = _x_terms(dataclasses.replace(current, beta=False, logprobs=_include(s, current)), s, limits)
    if "format" in inp:
        out = dataclasses.replace(out, audio_format=_ga_format(inp["format"]))
    if "transcription" in inp:
        out = _transcription(out, inp["transcription"], "session.audio.input.transcription", _GA_TRANSCRIPTION)
    if "turn_detection" in inp:
        td = _turn_detection(inp["turn_detection"], "session.audio.input.turn_detection", vad)
        out = dataclasses.replace(out, turn_detection=td)
    if "noise_reduction" in inp:
        out = _noise(out, inp["noise_reduction"], "session.audio.input.noise_reduction")
    return out


def update_beta(
    session: Any, current: TranscriptionSettings, vad: SegmenterConfig, limits: LimitsSettings | None = None
) -> TranscriptionSettings:
    """A beta ``transcription_session.update``'s ``session`` applied to ``current`` (``ParamError``)."""
    s = _object(session, "session")
    _known(s, _BETA_SESSION, "session")
    out = _x_terms(dataclasses.replace(current, beta=True, logprobs=_include(s, current)), s, limits)
    fmt = s.get("input_audio_format")
    if fmt is not None:
        if not isinstance(fmt, str) or fmt not in FORMATS:
            raise ParamError(
                'session.input_audio_format must be "pcm16" (24 kHz), "g711_ulaw" or "g711_alaw"',
                "session.input_audio_format",
            )
        out = dataclasses.replace(out, audio_format=fmt)
    if "input_audio_transcription" in s:
        param = "session.input_audio_transcription"
        out = _transcription(out, s["input_audio_transcription"], param, _BETA_TRANSCRIPTION)
    if "turn_detection" in s:
        out = dataclasses.replace(
            out, turn_detection=_turn_detection(s["turn_detection"], "session.turn_detection", vad)
        )
    if "input_audio_noise_reduction" in s:
        out = _noise(out, s["input_audio_noise_reduction"], "session.input_audio_noise_reduction")
    modalities = s.get("modalities")
    if modalities is not None and not (
        isinstance(modalities, list) and len(modalities) <= 2 and all(m in ("text", "audio") for m in modalities)
    ):
        raise ParamError(
            'session.modalities must be a list of "text" and "audio" (it has no effect here)', "session.modalities"
        )
    for name in ("modalities", "client_secret"):  # responses and minted keys: a transcription session has neither
        if s.get(name) is not None:
            out = _ignore(out, f"session.{name}")
    return out


# -- the stream's config -----------------------------------------------------------------------


def stream_config(
    s: TranscriptionSettings, card: ModelCard | None, vad: SegmenterConfig, limits: LimitsSettings
) -> StreamConfig:
    """The stream core's config for ``s``: ASR only (the transcript alone), its language given or
    detected, its prompt and keywords as BOOST terms, server VAD's parameters as the VAD's
    (``ParamError``; the core checks the rest when the stream opens)."""
    lang_param = s.param("session.audio.input.transcription.language", "session.input_audio_transcription.language")
    source, detect = source_or_detect(s.language, s.languages, card, lang_param)
    prompt_param = s.param("session.audio.input.transcription.prompt", "session.input_audio_transcription.prompt")
    terms = boost_terms(
        s.prompt,
        s.keywords,
        limits,
        prompt_param=prompt_param,
        keywords_param="session.audio.input.transcription.keywords",
        extra=s.terms.terms,
    )
    if s.turn_detection is not None:
        td_param = s.param("session.audio.input.turn_detection", "session.turn_detection")
        vad = vad_config(vad, s.turn_detection, td_param)
    return StreamConfig(
        format=FORMATS[s.audio_format],
        source_language=source,
        target_languages=(),
        output=OutputOptions(text=False, speech=False, transcript=True),
        vad=vad,
        detect=detect,
        terms=terms,
        ear=EarOptions(noise_suppression=s.noise_reduction is not None),
    )


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
        if len(phrase) > limits.max_term_chars or any(not c.isprintable() for c in phrase):
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
            defaults, threshold=td.threshold, speech_pad_ms=td.prefix_padding_ms, min_silence_ms=td.silence_duration_ms
        )
    except VadConfigError as e:  # (the ranges are checked as they are read; this is the pad's rule)
        message = (
            str(e).replace("vad.speech_pad_ms", "prefix_padding_ms").replace("vad.max_segment_ms", "the segment cap")
        )
        raise ParamError(message, param) from None


def server_vad(value: Any, param: str, vad: SegmenterConfig) -> TurnDetection:
    """A ``server_vad`` object (a session's ``turn_detection``, a REST ``chunking_strategy``),
    each absent field at the server's VAD default."""
    obj = _object(value, param)
    _known(obj, _TURN_DETECTION, param)
    kind = obj.get("type", "server_vad")
    if kind == "semantic_vad" or obj.get("eagerness") is not None:
        raise ParamError(
            'semantic_vad is not available on this server: use {"type": "server_vad"} (silero VAD, with '
            "threshold, prefix_padding_ms and silence_duration_ms), or null to commit turns yourself",
            f"{param}.type",
        )
    if kind != "server_vad":
        raise ParamError(f'{param}.type must be "server_vad" (or the whole field null)', f"{param}.type")
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
    td = TurnDetection(float(threshold), pad, silence)
    vad_config(vad, td, param)  # the pad's rule against the segment cap
    return td


# -- the session object --------------------------------------------------------------------------


def ga_session(s: TranscriptionSettings, session_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The GA session object (``session.created``/``session.updated``), with ``extra`` (``x_``)."""
    fmt = FORMATS[s.audio_format]
    ga_fmt: dict[str, Any] = {"type": next(k for k, v in GA_FORMATS.items() if v == s.audio_format)}
    if fmt.encoding is AudioEncoding.LINEAR16:
        ga_fmt["rate"] = fmt.sample_rate_hz
    transcription: dict[str, Any] = {"model": s.model, "language": s.language, "prompt": s.prompt}
    if s.keywords:
        transcription["keywords"] = list(s.keywords)
    if s.languages:
        transcription["languages"] = list(s.languages)
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "type": "transcription",
        "expires_at": 0,
        "include": [LOGPROBS] if s.logprobs else [],
        "audio": {
            "input": {
                "format": ga_fmt,
                "transcription": transcription,
                "noise_reduction": _noise_object(s),
                "turn_detection": _td_object(s.turn_detection),
            }
        },
        "x_terms": s.terms.wire(),
        "x_ignored": list(s.ignored),
        **extra,
    }


def beta_session(s: TranscriptionSettings, session_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The beta session object (``transcription_session.created``/``.updated``)."""
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "input_audio_format": s.audio_format,
        "input_audio_transcription": {"model": s.model, "language": s.language, "prompt": s.prompt},
        "input_audio_noise_reduction": _noise_object(s),
        "turn_detection": _td_object(s.turn_detection),
        "include": [LOGPROBS] if s.logprobs else [],
        "modalities": ["text"],
        "client_secret": None,
        "x_terms": s.terms.wire(),
        "x_ignored": list(s.ignored),
        **extra,
    }


def _td_object(td: TurnDetection | None) -> dict[str, Any] | None:
    if td is None:
        return None
    return {
        "type": "server_vad",
        "threshold": td.threshold,
        "prefix_padding_ms": td.prefix_padding_ms,
        "silence_duration_ms": td.silence_duration_ms,
    }


# -- fields ------------------------------------------------------------------------------------


def _transcription(s: TranscriptionSettings, value: Any, param: str, known: frozenset[str]) -> TranscriptionSettings:
    if value is None:
        raise ParamError(
            f"{param} cannot be null in a transcription session: give an object such as "
            '{"model": "whisper-1", "language": "en"}',
            param,
        )
    obj = _object(value, param)
    _known(obj, known, param)
    model = obj.get("model")
    if model is not None and not isinstance(model, str):
        raise ParamError(
            f"{param}.model must be one model name (a string): this server transcribes with its one "
            "loaded model, whatever the name",
            f"{param}.model",
        )
    language = _tag(obj.get("language"), f"{param}.language")
    prompt = obj.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        raise ParamError(f"{param}.prompt must be a string of at most {MAX_PROMPT_CHARS} characters", f"{param}.prompt")
    if obj.get("delay") is not None:
        raise ParamError(
            f"{param}.delay is not available here: a segment's transcript comes once a pause (or a "
            "commit) ends it; leave delay out",
            f"{param}.delay",
        )
    keywords = _strings(obj.get("keywords"), f"{param}.keywords", MAX_PROMPT_CHARS)
    languages = tuple(_tag(t, f"{param}.languages") or "" for t in _strings(obj.get("languages"), f"{param}.languages"))
    return dataclasses.replace(
        s,
        model=(model or "")[:MAX_MODEL_CHARS],
        language=language,
        prompt=prompt or None,
        keywords=keywords,
        languages=tuple(t for t in languages if t),
    )


def _x_terms(s: TranscriptionSettings, session: dict[str, Any], limits: LimitsSettings | None) -> TranscriptionSettings:
    """Our extension ``x_terms`` (``x_terms.py``), BOOST terms only: a transcription session
    translates nothing, so a KEEP term or a glossary entry could not act, and is refused."""
    if "x_terms" not in session:
        return s
    terms = x_terms.parse(session["x_terms"], limits if limits is not None else LimitsSettings())
    for n, t in enumerate(terms.terms):
        if not t.boost:
            kind = "keep" if t.keep else "translate"
            raise ParamError(
                f"x_terms[{n}] is {kind!r}: a transcription session translates nothing, so only boost terms "
                'act here (a translation session at /v1/realtime/translations takes "keep" and "translate")',
                f"session.x_terms[{n}].kind",
            )
    return dataclasses.replace(s, terms=terms)


def _turn_detection(value: Any, param: str, vad: SegmenterConfig) -> TurnDetection | None:
    return None if value is None else server_vad(value, param, vad)


def _noise(s: TranscriptionSettings, value: Any, param: str) -> TranscriptionSettings:
    """Noise reduction (issue 72): RNNoise before the VAD and the model, for either type (one
    suppressor serves both; no type: near_field, as OpenAI's default); null: off."""
    if value is None:
        return dataclasses.replace(s, noise_reduction=None)
    obj = _object(value, param)
    _known(obj, _NOISE_REDUCTION, param)
    kind = obj.get("type", "near_field")
    if kind not in ("near_field", "far_field"):
        raise ParamError(f'{param}.type must be "near_field" or "far_field"', f"{param}.type")
    return dataclasses.replace(s, noise_reduction=kind)


def _noise_object(s: TranscriptionSettings) -> dict[str, str] | None:
    return None if s.noise_reduction is None else {"type": s.noise_reduction}


def _ignore(s: TranscriptionSettings, param: str) -> TranscriptionSettings:
    return s if param in s.ignored else dataclasses.replace(s, ignored=(*s.ignored, param))


def _ga_format(value: Any) -> str:
    param = "session.audio.input.format"
    obj = _object(value, param)
    _known(obj, frozenset({"type", "rate"}), param)
    name = GA_FORMATS.get(obj.get("type", "audio/pcm"))
    if name is None:
        raise ParamError(f'{param}.type must be "audio/pcm" (24 kHz), "audio/pcmu" or "audio/pcma"', f"{param}.type")
    rate = obj.get("rate")
    if rate is not None and rate != FORMATS[name].sample_rate_hz:
        raise ParamError(f"{param}.rate must be 24000 for audio/pcm (and is not set for G.711)", f"{param}.rate")
    return name


def _include(s: dict[str, Any], current: TranscriptionSettings) -> bool:
    """``session.include``: OpenAI's one value, ``item.input_audio_transcription.logprobs``, or none."""
    if "include" not in s:
        return current.logprobs
    value = s["include"]
    if value is None or value == []:
        return False
    if not isinstance(value, list) or any(v != LOGPROBS for v in value):
        raise ParamError(f'session.include takes only ["{LOGPROBS}"], got {shown(value)}', "session.include")
    return True


def _tag(value: Any, param: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_TAG_CHARS:
        raise ParamError(f'{param} must be a language tag such as "en" (ISO-639-1)', param)
    return value


def _strings(value: Any, param: str, chars: int = MAX_TAG_CHARS) -> tuple[str, ...]:
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_LIST
        or not all(isinstance(v, str) and len(v) <= chars for v in value)
    ):
        raise ParamError(f"{param} must be a list of at most {MAX_LIST} strings", param)
    return tuple(value)


def _ms(obj: dict[str, Any], name: str, default: int, bounds: tuple[int, int], param: str) -> int:
    value = obj.get(name, default)
    if value is None:
        value = default
    lo, hi = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ParamError(f"{param}.{name} must be a whole number of milliseconds in {lo}..{hi}", f"{param}.{name}")
    return value


def _known(obj: dict[str, Any], known: frozenset[str], param: str) -> None:
    for key in obj:
        if key not in known:
            raise ParamError(
                f"{param} has a field this server does not know: {shown(key, 40)} (known: {', '.join(sorted(known))})",
                f"{param}.{key}" if isinstance(key, str) and len(key) <= 40 else param,
            )


def _object(value: Any, param: str) -> dict[str, Any]:
    """``value`` as a JSON object (null or absent: an empty one), or ``ParamError``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParamError(f"{param} must be a JSON object", param)
    return value
