"""The audio REST endpoints' request: OpenAI's multipart form (``file``, ``model``, ``language``,
``prompt``, ``response_format``, ``timestamp_granularities[]``, ``stream``, ...), read with bounds
before anything is held whole (``form_reader.py``), then checked field by field into the clip
core's request (``session.clip.ClipRequest``) and how to answer. Each refusal is a ``FormError``:
an ``InvalidInput`` with its HTTP status and the ``param`` it is about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from translate_svc.errors import shown
from translate_svc.languages import guess_model_code
from translate_svc.session.calls.clip import ClipRequest
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai import x_conversation
from translate_svc.transport.openai.asr_options import boost_terms, server_vad, source_or_detect, vad_config
from translate_svc.transport.openai.form_reader import Form, FormError
from translate_svc.transport.openai.wire import ParamError
from translate_svc.types import (
    MAX_SPEAKERS,
    AudioEncoding,
    AudioFormat,
    EarOptions,
    ModelCard,
    OutputOptions,
    Profanity,
)
from translate_svc.vad.segmenter import SegmenterConfig

TRANSCRIBE = "transcribe"
TRANSLATE = "translate"
FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
#: speaker labels (``diarized_json``): the most speakers told apart unless ``x_speakers`` says
DEFAULT_SPEAKERS = 4
#: the fields of each endpoint (lists as the SDKs send them, ``name[]``; also taken without ``[]``)
_COMMON = frozenset(
    {
        "file",
        "model",
        "prompt",
        "response_format",
        "temperature",
        "stream",
        "x_profanity",
        "x_noise_reduction",
        "x_channels",
    }
)
FIELDS = {
    TRANSCRIBE: _COMMON
    | {
        "language",
        "timestamp_granularities",
        "include",
        "keywords",
        "languages",
        "chunking_strategy",
        "known_speaker_names",
        "known_speaker_references",
        "x_speakers",
    },
    TRANSLATE: _COMMON | {"x_target_language", "x_conversation"},
}
_LISTS = frozenset({"timestamp_granularities", "include", "keywords", "languages", "known_speaker_names"})
#: why a translation refuses a transcription's field (as OpenAI's translations endpoint takes neither)
_HINTS = {
    "language": " (the spoken language is found by the model)",
    "timestamp_granularities": (
        " (a translation's verbose_json has segment timestamps only, as OpenAI's; word timestamps are "
        "the transcription endpoint's)"
    ),
}

#: why either endpoint refuses ``speed`` (OpenAI's ``/v1/audio/speech`` field): they answer
#: with text, and a speaking rate has no speech to act on here
_SPEED_HINT = (
    " (these endpoints answer with text, no speech: the speaking rate is the realtime translation "
    "session's audio.output.speed, or output.speed on gRPC)"
)


@dataclass(frozen=True)
class Answer:
    """How to answer a request: its format, whether as server-sent events, and for what."""

    task: str  # TRANSCRIBE or TRANSLATE
    response_format: str
    stream: bool
    #: the language the text is in when it is known up front (a translation's target, a given
    #: source), as the model's code; else each segment's (detected)
    language: str | None
    #: word timings asked for (``timestamp_granularities[]=word``): ``verbose_json``'s ``words``,
    #: SRT and WebVTT cues of words
    words: bool = False
    #: ``include[]=logprobs``: the transcript's tokens' log probabilities (``json``, or the events)
    logprobs: bool = False


def clip_request(
    form: Form, task: str, card: ModelCard | None, vad: SegmenterConfig, limits: LimitsSettings
) -> tuple[ClipRequest, Answer]:
    """The clip core's request for ``form`` and how to answer it (``FormError``)."""
    for name, values in form.values.items():
        if name not in FIELDS[task]:
            hint = _SPEED_HINT if name == "speed" else _HINTS.get(name, "") if task == TRANSLATE else ""
            raise FormError(
                f"unknown field {shown(name, 40)} for this endpoint{hint}: it takes "
                f"{', '.join(sorted(FIELDS[task] - {'file'}))}",
                param=name[:40],
            )
        if len(values) > 1 and name not in _LISTS:
            raise FormError(f"the field {name} is given {len(values)} times: send it once", param=name)
    fmt = form.one("response_format") or "json"
    formats = FORMATS if task == TRANSCRIBE else FORMATS[:-1]  # speaker labels: transcriptions only
    if fmt not in formats:
        raise FormError(f"response_format {shown(fmt)} is not one of {', '.join(formats)}", param="response_format")
    separate = _channels(form.one("x_channels"))
    if separate and form.one("x_speakers") is not None:
        raise FormError("x_speakers and x_channels=separate: each channel is its own speaker; drop x_speakers")
    speakers = 0 if separate else _speakers(form.one("x_speakers"), fmt)  # diarized_json: a channel a speaker
    stream = _flag(form.one("stream"), "stream")
    if stream and fmt not in ("json", "text"):
        raise FormError(
            "stream=true sends transcript.text events, whatever the format: use it with response_format "
            "json or text, or leave stream off for srt, vtt or verbose_json",
            param="stream",
        )
    _temperature(form.one("temperature"))
    logprobs = _include(form.values.get("include", []), fmt)
    _unavailable(form)
    words = _words(form.values.get("timestamp_granularities", []), fmt)
    profanity = _profanity(form.one("x_profanity"))
    noise = _noise_reduction(form.one("x_noise_reduction"))
    try:
        terms = boost_terms(
            form.one("prompt"),
            form.values.get("keywords", ()),
            limits,
            prompt_param="prompt",
            keywords_param="keywords",
        )
        talk: tuple[str, ...] | None = None
        if task == TRANSCRIBE:
            source, detect = source_or_detect(form.one("language"), form.values.get("languages", ()), card, "language")
            targets: tuple[str, ...] = ()
            output = OutputOptions(text=False, speech=False, transcript=True, word_timings=words, profanity=profanity)
            language = source or None
        else:
            source, detect = "", None
            targets, talk = _targets(form, card)
            output = OutputOptions(text=True, speech=False, transcript=False, profanity=profanity)
            language = targets[0] if talk is None else None  # a conversation's: each segment's own
        clip_vad = _chunking(form.one("chunking_strategy"), vad)
    except ParamError as e:
        raise FormError(e.message, param=e.param) from None
    request = ClipRequest(
        content=form.file,
        fmt=AudioFormat(AudioEncoding.CONTAINER),
        source_language=source,
        target_languages=targets,
        output=output,
        vad=clip_vad,
        detect=detect,
        terms=terms,
        ear=EarOptions(noise_suppression=noise, speakers=speakers),
        conversation=talk,
        separate_channels=separate,
    )
    form.file = b""  # the request holds the only reference from here on
    return request, Answer(task, fmt, stream, language, words, logprobs)


def _channels(value: str | None) -> bool:
    """Our extension ``x_channels``: ``separate`` translates a stereo file's channels each on its own,
    one party each (diarized_json: a channel a speaker); ``mixed`` (the default) hears one voice."""
    if value not in (None, "mixed", "separate"):
        raise FormError(f"x_channels {shown(value or '')} must be mixed or separate", param="x_channels")
    return value == "separate"


def _profanity(value: str | None) -> Profanity | None:
    """Our extension ``x_profanity``: off, mask or remove (absent: the tenant's default)."""
    if value is None:
        return None
    if value not in {p.value for p in Profanity}:
        raise FormError(f"x_profanity {shown(value)} must be off, mask or remove", param="x_profanity")
    return Profanity(value)


def _noise_reduction(value: str | None) -> bool:
    """Our extension ``x_noise_reduction``: ``near_field`` or ``far_field``, the types of
    the realtime sessions' ``noise_reduction``, runs RNNoise before the VAD and the model (either
    type: one suppressor); absent: off."""
    if value is None:
        return False
    if value not in ("near_field", "far_field"):
        raise FormError(
            "x_noise_reduction must be near_field or far_field (noise suppression before the VAD; leave it out "
            "for none)",
            param="x_noise_reduction",
        )
    return True


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in ("false", "0", ""):
        return False
    if value.strip().lower() in ("true", "1"):
        return True
    raise FormError(f"{name} must be true or false", param=name)


def _temperature(value: str | None) -> None:
    """Taken and not used: decoding is greedy (the model's output does not depend on it)."""
    if value is None:
        return
    try:
        t = float(value)
    except ValueError:
        t = -1.0
    if not 0.0 <= t <= 1.0:
        raise FormError(
            "temperature must be a number between 0 and 1 (decoding here is greedy: it has no effect)",
            param="temperature",
        )


def _speakers(value: str | None, fmt: str) -> int:
    """Speaker labels: ``diarized_json`` labels each segment, telling apart at most
    ``x_speakers`` (our extension; ``DEFAULT_SPEAKERS`` when absent) voices."""
    if fmt != "diarized_json":
        if value is not None:
            raise FormError("x_speakers goes with response_format diarized_json (speaker labels)", param="x_speakers")
        return 0
    if value is None:
        return DEFAULT_SPEAKERS
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_SPEAKERS:
        raise FormError(f"x_speakers must be a whole number 1..{MAX_SPEAKERS}", param="x_speakers")
    return int(value)


def _unavailable(form: Form) -> None:
    """What this server cannot give, refused with what it can."""
    if form.values.get("known_speaker_names") or form.values.get("known_speaker_references"):
        raise FormError("speaker identification is not available on this server", param="known_speaker_names")


def _include(values: list[str], fmt: str) -> bool:
    """``include[]``: OpenAI's one value, ``logprobs`` (each token of the transcript with its log
    probability), which goes with ``response_format=json`` (or ``stream=true``), as OpenAI's does."""
    for value in values:
        if value != "logprobs":
            raise FormError(f"include {shown(value)} is not logprobs, the one value it takes", param="include")
    if values and fmt != "json":
        raise FormError(f"include[]=logprobs goes with response_format json, not {fmt}", param="include")
    return bool(values)


def _words(grains: list[str], fmt: str) -> bool:
    """Whether word timestamps are asked for (``timestamp_granularities[]``: ``segment``, ``word`` or
    both). ``segment``: the segments, always in ``verbose_json`` (and the cues of ``srt`` and ``vtt``).
    ``word``: ``verbose_json``'s ``words`` (OpenAI's), or, our extension, cues of words in ``srt``
    and ``vtt``; with ``json`` or ``text``, which have no timestamps, refused as OpenAI refuses it."""
    for g in grains:
        if g not in ("segment", "word"):
            raise FormError(
                f'timestamp_granularities[] {shown(g, 40)}: it takes "segment", "word" or both',
                param="timestamp_granularities",
            )
    if "word" not in grains:
        return False
    if fmt not in ("verbose_json", "srt", "vtt"):
        raise FormError(
            f"word timestamps need a timed response_format, not {fmt}: verbose_json (its `words`), or srt or vtt "
            "(cues of words)",
            param="timestamp_granularities",
        )
    return True


def _targets(form: Form, card: ModelCard | None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """A translation's targets, or a conversation's languages (our extension ``x_conversation``:
    each segment is translated into those it is not in). Beside ``x_target_language``, the clip
    core refuses the conversation (as what a conversation may be: its one check)."""
    tags = x_conversation.form_tags(form.one("x_conversation"))
    if tags is None:
        return (_target(form.one("x_target_language"), card),), None
    tag = form.one("x_target_language")
    return ((_target(tag, card),) if tag else ()), x_conversation.codes(tags)


def _target(tag: str | None, card: ModelCard | None) -> str:
    """A translation's target (our extension ``x_target_language``; English when absent)."""
    if not tag:
        return "eng"
    code = guess_model_code(tag[:64])
    if card is not None and code not in card.text_codes:
        raise ParamError(
            f"x_target_language {shown(tag)} is not a language this model writes: give an ISO-639-1 "
            'code such as "es" (gRPC ListLanguages lists them)',
            "x_target_language",
        )
    return code


def _chunking(value: str | None, vad: SegmenterConfig) -> SegmenterConfig:
    """``chunking_strategy``: ``auto`` (the server's VAD), or a ``server_vad`` object's parameters."""
    if value is None or value == "auto":
        return vad
    try:
        obj: Any = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
        obj = None
    if not isinstance(obj, dict):
        raise ParamError('chunking_strategy must be "auto" or a server_vad object (JSON)', "chunking_strategy")
    return vad_config(vad, server_vad(obj, "chunking_strategy", vad), "chunking_strategy")
