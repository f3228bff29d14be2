"""What a realtime transcription session may be configured with, checked before anything in it is
converted (DESIGN.md pitfall 21), and what it becomes: the stream core's config (ASR only: no
targets, the transcript alone) and the session object the server answers with. Pure: no socket,
no web framework; ``transcription.py`` (the protocol) uses it. What any transcription asks of the
stream core (the spoken language, the prompt's terms, server VAD), which the audio REST endpoints
read too, is ``asr_options.py``.

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
not know, a value of the wrong kind, a ``model`` list, an ``eagerness`` outside ``semantic_vad``: a
``ParamError`` naming the field (``param``) and what to send instead. Noise reduction (either type)
runs RNNoise before the VAD and the model. The session object's ``x_ignored`` lists the
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
from dataclasses import dataclass
from typing import Any

from translate_svc.errors import shown
from translate_svc.session.events import StreamConfig
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai import x_terms
from translate_svc.transport.openai.asr_options import (
    TurnDetection,
    boost_terms,
    json_object,
    known_fields,
    server_vad,
    source_or_detect,
    vad_config,
)
from translate_svc.transport.openai.wire import ParamError as ParamError  # re-exported: its users import it here
from translate_svc.types import AudioEncoding, AudioFormat, EarOptions, ModelCard, OutputOptions
from translate_svc.vad.segmenter import EAGERNESS, SegmenterConfig

#: the audio formats of both shapes (beta's names; GA's ``format.type`` -> them)
FORMATS: dict[str, AudioFormat] = {
    "pcm16": AudioFormat(AudioEncoding.LINEAR16, 24000, 1),
    "g711_ulaw": AudioFormat(AudioEncoding.MULAW, 8000, 1),
    "g711_alaw": AudioFormat(AudioEncoding.ALAW, 8000, 1),
}
GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
#: ``session.include``'s value for the transcripts' log probabilities (OpenAI's one)
LOGPROBS = "item.input_audio_transcription.logprobs"
#: a language tag's characters, a prompt's, a model name's (it is echoed), and the most candidate
#: languages and keywords looked at (the server's own limits then apply)
MAX_TAG_CHARS = 35
MAX_PROMPT_CHARS = 4096
MAX_MODEL_CHARS = 128
MAX_LIST = 256

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
_NOISE_REDUCTION = frozenset({"type", "strength"})


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
    s = json_object(session, "session")
    known_fields(s, _GA_SESSION, "session")
    if s.get("type") != "transcription":
        kind = s.get("type")
        raise ParamError(
            f"session.type is {shown(kind)}: this endpoint serves transcription sessions, so set "
            '"type": "transcription" (translation sessions are at /v1/realtime/translations; '
            "conversation sessions are not served)",
            "session.type",
        )
    audio = json_object(s.get("audio"), "session.audio")
    known_fields(audio, frozenset({"input"}), "session.audio")
    inp = json_object(audio.get("input"), "session.audio.input")
    known_fields(inp, _GA_INPUT, "session.audio.input")
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
    s = json_object(session, "session")
    known_fields(s, _BETA_SESSION, "session")
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
        turn_events=True,
    )


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
    if td.eagerness:
        semantic: dict[str, Any] = {"type": "semantic_vad", "eagerness": td.eagerness}
        if 0 < td.eager_threshold < EAGERNESS[td.eagerness].threshold:  # in force
            semantic["x_eager_threshold"] = td.eager_threshold
        return semantic
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
    obj = json_object(value, param)
    known_fields(obj, known, param)
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
    """Noise reduction: RNNoise before the VAD and the model, for either type (one
    suppressor serves both; no type: near_field, as OpenAI's default); null: off."""
    if value is None:
        return dataclasses.replace(s, noise_reduction=None)
    obj = json_object(value, param)
    known_fields(obj, _NOISE_REDUCTION, param)
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
    obj = json_object(value, param)
    known_fields(obj, frozenset({"type", "rate"}), param)
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
