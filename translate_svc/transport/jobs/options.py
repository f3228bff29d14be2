"""A job's request as the HTTP port takes it (``POST /v1/jobs``'s JSON body) and as the gRPC port
does (``CreateJobRequest``), into the jobs wing's ``JobRequest`` (``jobs/request.py``): its format,
languages, output options (``OutputOptions``) and ear options (``EarOptions``).

Every option a ``Translate`` call takes is taken, or refused saying what to send instead (a
job once kept three of them and dropped the rest silently, a per-job ``profanity`` among them);
a JSON key the API does not know is refused naming it and the keys it takes, as the OpenAI door's
audio form and the Riva door's custom configuration are: a misspelt option is never silently
inert (design pitfall 23). Pure; translate.proto's option messages are read as the gRPC door reads
them (``transport/proto_options.py``, which both doors share)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.loudness import DEFAULT_TRUE_PEAK_DBTP, PRESETS, LoudnessTarget
from translate_svc.errors import InvalidInput, shown
from translate_svc.jobs import cues
from translate_svc.jobs.edits import MAX_EDITS, SegmentEdit
from translate_svc.jobs.request import JobRequest
from translate_svc.jobs.speaker_voices import SpeakerVoices
from translate_svc.jobs.video import DEFAULT_MIX_GAIN_DB, VideoAsk, VoiceOver
from translate_svc.session.task.checks import options_at
from translate_svc.transport.proto_options import channel_mode, ear_options, output_options, speech_fit
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    SPEED_MAX,
    SPEED_MIN,
    AudioEncoding,
    DubFit,
    EarOptions,
    OutputOptions,
    Profanity,
)

#: the keys of ``POST /v1/jobs``'s body, and of its ``format``
KEYS = frozenset(
    {
        "source_language",
        "target_languages",
        "glossaries",
        "url",
        "format",
        "text",
        "speech",
        "transcript",
        "word_timings",
        "speech_sample_rate_hz",
        "speaker_id",
        "profanity",
        "speed",
        "fit",
        "noise_suppression",
        "speakers",
        "conversation",
        "vad",
        "channel_mode",
        "speaker_voices",
        "subtitles",
    }
)
#: the keys of its ``subtitles`` (a translation to voice at its timings: ``jobs/cues.py``)
SUBTITLES_KEYS = frozenset({"language", "format", "text"})
FORMAT_KEYS = frozenset({"encoding", "sample_rate_hz", "channels"})
#: the keys of its ``fit`` (dubbing to the source's clock)
FIT_KEYS = frozenset({"slowest", "fastest"})
#: the keys of its ``conversation`` (as ``Conversation`` in translate.proto)
CONVERSATION_KEYS = frozenset({"languages"})
#: the keys of its ``vad`` (as ``VadOptions`` in translate.proto), each with its JSON type
VAD_TYPES: dict[str, type | tuple[type, ...]] = {
    "threshold": (int, float),
    "min_silence_ms": int,
    "speech_pad_ms": int,
    "min_speech_ms": int,
    "max_segment_ms": int,
    "eagerness": str,
}
_ENCODINGS = (
    "container (a WAV, FLAC, OGG or MP3 file, or an MP4, MOV, WebM or MKV video), linear16, float32, mulaw or alaw"
)
_GRPC_ENCODINGS = {
    pb.AUDIO_ENCODING_UNSPECIFIED: AudioEncoding.CONTAINER,
    pb.CONTAINER: AudioEncoding.CONTAINER,
    pb.LINEAR16: AudioEncoding.LINEAR16,
    pb.FLOAT32: AudioEncoding.FLOAT32,
    pb.MULAW: AudioEncoding.MULAW,
    pb.ALAW: AudioEncoding.ALAW,
}
_NOISE = {"off": False, "rnnoise": True}


def from_json(doc: dict[str, Any], fit: DubFit | None = None) -> JobRequest:
    """``POST /v1/jobs``'s body: every key known (else 400 naming it), each of its type. ``fit``:
    the server's bound for a ``fit`` that leaves it unset (``jobs/request.py``'s ``fit_default``)."""
    _known(doc, KEYS, "")
    fmt = doc.get("format") or {}
    if not isinstance(fmt, dict):
        raise InvalidInput('format: {"encoding", "sample_rate_hz", "channels"}')
    _known(fmt, FORMAT_KEYS, "format.")
    try:
        encoding = AudioEncoding(str(fmt.get("encoding", "container")).upper())
    except ValueError:
        raise InvalidInput(f"format.encoding: {_ENCODINGS}") from None
    rate, channels = fmt.get("sample_rate_hz", 0), fmt.get("channels", 1)
    if not _whole(rate) or not _whole(channels):
        raise InvalidInput("format.sample_rate_hz and format.channels: whole numbers")
    targets, glossaries = doc.get("target_languages", []), doc.get("glossaries", [])
    if not _strings(targets) or not _strings(glossaries):
        raise InvalidInput("target_languages and glossaries: lists of at most 64 strings of at most 64 characters")
    source = doc.get("source_language", "")
    if not isinstance(source, str):
        raise InvalidInput("source_language: a language code (a string)")
    url = doc.get("url")
    if url is not None and not isinstance(url, str):
        raise InvalidInput("url: an https:// URL (a string), or leave it out and upload the audio")
    flags = {k: doc.get(k, True) for k in ("text", "speech", "transcript", "word_timings")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise InvalidInput("text, speech, transcript and word_timings: true or false")
    speech_rate, voice, speakers = (doc.get(k, 0) for k in ("speech_sample_rate_hz", "speaker_id", "speakers"))
    if not (_whole(speech_rate) and _whole(voice) and _whole(speakers)):
        raise InvalidInput("speech_sample_rate_hz, speaker_id and speakers: whole numbers")
    with options_at():  # the options check their own values, named by the JSON's keys
        output = OutputOptions(
            **flags,
            speech_sample_rate_hz=speech_rate or MODEL_SAMPLE_RATE,
            speaker_id=voice,
            profanity=_profanity(doc.get("profanity")),
            speed=_speed(doc.get("speed", 1.0)),
            fit=_fit(doc.get("fit", False), fit or DubFit()),
        )
    noise = doc.get("noise_suppression", "off")
    if not isinstance(noise, str) or noise not in _NOISE:
        raise InvalidInput(f"noise_suppression is {shown(noise)}: use off (the default) or rnnoise")
    return JobRequest(
        encoding=encoding,
        sample_rate_hz=rate,
        channels=channels,
        source_language=source,
        target_languages=targets,
        glossaries=glossaries,
        output=output,
        ear=_ear(_NOISE[noise], speakers),
        url=url,
        conversation=_conversation(doc.get("conversation")),
        vad=_vad(doc.get("vad")),
        separate_channels=_channel_mode(doc.get("channel_mode", "mixed")),
        speaker_voices=_speaker_voices(doc.get("speaker_voices")),
        subtitles=_subtitles(doc.get("subtitles")),
    )


def _subtitles(value: object) -> cues.Imported | None:
    """``subtitles``: ``{"language", "format" (srt or vtt; left out: read from the text), "text"}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput('subtitles: {"language", "format", "text"}: the SRT or WebVTT file\'s text to voice')
    _known(value, SUBTITLES_KEYS, "subtitles.")
    language, fmt, text = value.get("language"), value.get("format"), value.get("text")
    if not isinstance(language, str) or not language or len(language) > 16:
        raise InvalidInput("subtitles.language: the language the subtitles are in (a code from ListLanguages)")
    if fmt is not None and not isinstance(fmt, str):
        raise InvalidInput("subtitles.format: srt or vtt (or leave it out: a file that starts WEBVTT is WebVTT)")
    if not isinstance(text, str):
        raise InvalidInput("subtitles.text: the file's text (a string)")
    return cues.Imported(language, fmt, text)


def from_pb(msg: pb.CreateJobRequest, fit: DubFit | None = None) -> JobRequest:
    """``CreateJob``'s request: ``output`` as ``Translate``'s (word timings on when it is absent,
    as on HTTP), ``noise_suppression``, ``speakers`` and ``fit`` as ``TranslateRequest``'s (``fit``:
    as ``from_json``'s); a ``conversation`` of its languages only (``_job_conversation``)."""
    _job_conversation(msg)
    encoding = _GRPC_ENCODINGS.get(msg.format.encoding)
    if encoding is None:
        raise InvalidInput("format.encoding: CONTAINER, LINEAR16, FLOAT32, MULAW or ALAW (a job takes no Opus)")
    has = msg.HasField("output")
    output = output_options(msg.output, has)
    if not has:
        output = dataclasses.replace(output, word_timings=True)
    output = dataclasses.replace(output, fit=speech_fit(msg.fit, msg.HasField("fit"), fit or DubFit()))
    return JobRequest(
        encoding=encoding,
        sample_rate_hz=msg.format.sample_rate_hz,
        channels=msg.format.channels or 1,
        source_language=msg.source_language,
        target_languages=list(msg.target_languages),
        glossaries=list(msg.glossaries),
        output=output,
        ear=ear_options(msg, "request"),
        url=msg.url or None,
        conversation=tuple(msg.conversation.languages) if msg.HasField("conversation") else None,
        vad=tuple((f, getattr(msg.vad, f)) for f in VAD_TYPES if msg.vad.HasField(f)),
        separate_channels=channel_mode(msg.channel_mode, "channel_mode"),
        speaker_voices=SpeakerVoices(
            one=msg.speaker_voices.one_voice, voices=tuple(sorted(msg.speaker_voices.voices.items()))
        ),
        subtitles=_subtitles(
            {"language": msg.subtitles.language, "format": msg.subtitles.format or None, "text": msg.subtitles.text}
            if msg.HasField("subtitles")
            else None
        ),
    )


#: the query of ``GET /v1/jobs/{id}/video``
VIDEO_KEYS = frozenset({"languages", "original", "mix", "mix_gain_db", "subtitles", "loudness", "true_peak_dbtp"})
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


#: what an edit takes (``jobs/edits.py``)
EDIT_KEYS = frozenset({"segment_id", "target_language", "text", "voice", "speed"})


def edits_from_json(doc: dict[str, Any]) -> list[SegmentEdit]:
    """``{"edits": [{"segment_id", "target_language", and any of "text", "voice", "speed"}, ...]}``
    as ``SegmentEdit``s, each field's type checked here (its range by ``SegmentEdit.check``)."""
    if set(doc) != {"edits"} or not isinstance(doc["edits"], list):
        raise InvalidInput('the body is {"edits": [{"segment_id", "target_language", "text", "voice", "speed"}, ...]}')
    if len(doc["edits"]) > MAX_EDITS:
        raise InvalidInput(f"edits: at most {MAX_EDITS} in one request (send the rest in another)")
    out = []
    for k, edit in enumerate(doc["edits"]):
        where = f"edits[{k}]"
        if not isinstance(edit, dict):
            raise InvalidInput(f"{where}: a JSON object")
        for key in edit:
            if key not in EDIT_KEYS:
                known = ", ".join(sorted(EDIT_KEYS))
                raise InvalidInput(f"unknown field {shown(f'{where}.{key}', 40)}: an edit takes {known}")
        seg, lang = edit.get("segment_id"), edit.get("target_language")
        if not isinstance(seg, int) or isinstance(seg, bool) or seg < 0:
            raise InvalidInput(f"{where}.segment_id: a segment's segment_id in the job's results (a whole number)")
        if not isinstance(lang, str) or not lang or len(lang) > 16:
            raise InvalidInput(f"{where}.target_language: the language of the translation to edit (one of the job's)")
        text, voice, speed = edit.get("text"), edit.get("voice"), edit.get("speed")
        if text is not None and not isinstance(text, str):
            raise InvalidInput(f"{where}.text: a string (the translation as it should be said; empty: silence)")
        if voice is not None and not _whole(voice):
            raise InvalidInput(f"{where}.voice: a whole number (one of the model's voices)")
        out.append(SegmentEdit(seg, lang, text, voice, None if speed is None else _edit_speed(speed, where)))
    return out


def edits_from_pb(msg: pb.EditJobRequest) -> list[SegmentEdit]:
    """An ``EditJobRequest``'s edits (their ranges checked by ``SegmentEdit.check``)."""
    if len(msg.edits) > MAX_EDITS:
        raise InvalidInput(f"edits: at most {MAX_EDITS} in one request (send the rest in another)")
    return [
        SegmentEdit(
            e.segment_id,
            e.target_language,
            e.text if e.HasField("text") else None,
            e.voice if e.HasField("voice") else None,
            e.speed if e.HasField("speed") else None,
        )
        for e in msg.edits
    ]


def _edit_speed(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}.speed must be a JSON number from {SPEED_MIN} to {SPEED_MAX}")
    try:
        return float(value)
    except OverflowError:
        raise InvalidInput(f"{where}.speed must be a JSON number from {SPEED_MIN} to {SPEED_MAX}") from None


def video_from_query(query: Mapping[str, str]) -> VideoAsk:
    """``GET /v1/jobs/{id}/video``'s query: every key known (else 400 naming it), each of its form."""
    for key in query:
        if key not in VIDEO_KEYS:
            raise InvalidInput(
                f"unknown parameter {shown(key, 40)} of a job's video: it takes {', '.join(sorted(VIDEO_KEYS))}"
            )
    languages = tuple(x for x in query.get("languages", "").split(",") if x)
    if len(languages) > 64 or any(len(x) > 64 for x in languages):
        raise InvalidInput("languages: at most 64 of the job's targets, comma-separated")
    mix = query.get("mix", VoiceOver.DUB.value)
    if mix not in (VoiceOver.DUB.value, VoiceOver.DUCK.value):
        raise InvalidInput(f"mix is {shown(mix)}: use dub (the dub alone, the default) or duck (the source under it)")
    try:
        gain = float(query.get("mix_gain_db", DEFAULT_MIX_GAIN_DB))
    except ValueError:
        raise InvalidInput("mix_gain_db: a number of dB (-60..0), the source's level under the dub") from None
    return VideoAsk(
        languages=languages,
        original=_flag(query, "original", False),
        mix=VoiceOver(mix),
        mix_gain_db=gain,
        subtitles=_flag(query, "subtitles", True),
        loudness=loudness_from_query(query),
    )


def loudness_from_query(query: Mapping[str, str]) -> LoudnessTarget | None:
    """``loudness`` (a preset or a number of LUFS) and ``true_peak_dbtp`` of a query (a video's, a
    dubbed track's: ``GET /v1/jobs/{id}/dubbed/{language}?loudness=``); None: as made."""
    loudness = query.get("loudness")
    peak = query.get("true_peak_dbtp")
    numeric = loudness is not None and _numeric(loudness)
    preset, lufs = ("", _number(loudness, "loudness")) if numeric and loudness else (loudness, None)
    return loudness_target(preset, lufs, None if peak is None else _number(peak, "true_peak_dbtp"))


def video_from_pb(msg: pb.VideoOptions) -> VideoAsk:
    """``GetJobResults``'s ``video`` (with ``JOB_RESULTS_VIDEO``)."""
    mix = {pb.VOICE_OVER_DUB: VoiceOver.DUB, pb.VOICE_OVER_DUCK: VoiceOver.DUCK}.get(msg.mix)
    if mix is None:
        raise InvalidInput("video.mix: VOICE_OVER_DUB or VOICE_OVER_DUCK")
    return VideoAsk(
        languages=tuple(msg.languages),
        original=msg.original,
        mix=mix,
        mix_gain_db=msg.mix_gain_db if msg.HasField("mix_gain_db") else DEFAULT_MIX_GAIN_DB,
        subtitles=not msg.no_subtitles,
        loudness=loudness_from_pb(msg.loudness) if msg.HasField("loudness") else None,
    )


def loudness_from_pb(loud: pb.Loudness) -> LoudnessTarget | None:
    """A ``Loudness`` message (a video's tracks, a dubbed track's download)."""
    return loudness_target(
        loud.preset,
        loud.integrated_lufs if loud.HasField("integrated_lufs") else None,
        loud.true_peak_dbtp if loud.HasField("true_peak_dbtp") else None,
    )


def loudness_target(preset: str | None, lufs: float | None, peak: float | None) -> LoudnessTarget | None:
    """A dubbed track's loudness from a door's fields: a preset (``PRESETS``), a target of its own in
    LUFS, or both (the target over the preset's); the ceiling given, else the preset's, else -1 dBTP.
    None where nothing is named (a ceiling alone is refused: it says nothing to reach)."""
    if not preset and lufs is None:
        if peak is not None:
            raise InvalidInput("true_peak_dbtp needs a loudness to reach: name loudness (a preset or LUFS) too")
        return None
    base = PRESETS.get(preset or "")
    if preset and base is None:
        raise InvalidInput(
            f"loudness {shown(preset)} is not a preset: use {', '.join(sorted(PRESETS))}, or a number of LUFS (-70..-5)"
        )
    target = lufs if lufs is not None else base.integrated_lufs if base is not None else None
    ceiling = peak if peak is not None else base.true_peak_dbtp if base is not None else DEFAULT_TRUE_PEAK_DBTP
    assert target is not None
    try:
        return LoudnessTarget(target, ceiling)
    except ValueError as e:
        raise InvalidInput(f"loudness: {e}") from None


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _number(value: str, key: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise InvalidInput(f"{key}: a number, or one of the presets {', '.join(sorted(PRESETS))}") from None
    if not math.isfinite(x):
        raise InvalidInput(f"{key}: a finite number")
    return x


def _flag(query: Mapping[str, str], key: str, default: bool) -> bool:
    value = query.get(key)
    if value is None:
        return default
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise InvalidInput(f"{key}: true or false")


def _known(doc: dict[str, Any], keys: frozenset[str], where: str) -> None:
    for key in doc:
        if key not in keys:
            raise InvalidInput(
                f"unknown field {shown(f'{where}{key}', 40)} in a job's request: it takes {', '.join(sorted(keys))}"
            )


def _profanity(value: object) -> Profanity | None:
    """None (unset): the tenant's default."""
    if value is None:
        return None
    try:
        return Profanity(value if isinstance(value, str) else "")
    except ValueError:
        raise InvalidInput(f"profanity is {shown(value)}: use off, mask or remove (or leave it out)") from None


def _speed(value: object) -> float:
    """The dubbed tracks' speaking rate, a JSON number (anything else is refused without being
    echoed: a string may be long); its range is ``OutputOptions``' own check."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"speed must be a JSON number from {SPEED_MIN} to {SPEED_MAX} (1 is the model's own rate)")
    return value


def _fit(value: object, default: DubFit) -> DubFit | None:
    """``fit``: true (the server's bound), false (off, the default), or ``{"slowest", "fastest"}``
    (either left out: the server's), each a JSON number; the bound checks its own rates (``DubFit``)."""
    if value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise InvalidInput('fit: true, false, or {"slowest": 0.85, "fastest": 1.35} (speaking rates, 0.5..2.0)')
    _known(value, FIT_KEYS, "fit.")
    rates = {k: value.get(k, getattr(default, k)) for k in FIT_KEYS}
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in rates.values()):
        raise InvalidInput(f"fit.slowest and fit.fastest: JSON numbers from {SPEED_MIN} to {SPEED_MAX}")
    with options_at("fit."):
        return DubFit(rates["slowest"], rates["fastest"])


def _job_conversation(msg: pb.CreateJobRequest) -> None:
    """A job's ``Conversation`` is its languages: what else the message holds for a clip or a stream
    (a stated language, a voice or rate per party) is refused, never dropped (HTTP's ``conversation``
    refuses any key but ``languages`` the same way)."""
    talk = msg.conversation
    set_ = {"stated_language": bool(talk.stated_language), "voices": bool(talk.voices), "speeds": bool(talk.speeds)}
    given = [name for name, is_set in set_.items() if is_set]
    if given:
        raise InvalidInput(
            f"conversation.{given[0]}: a job's conversation takes its languages only (a stated language, voices "
            "and speeds are a call's): leave it unset"
        )


def _conversation(value: object) -> tuple[str, ...] | None:
    """``conversation``: ``{"languages": [...]}`` (its shape only: the desk checks the languages,
    and that nothing beside it names targets); null or absent: none."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput('conversation: {"languages": ["eng", "spa"]} (two or more language codes)')
    _known(value, CONVERSATION_KEYS, "conversation.")
    languages = value.get("languages", [])
    if not _strings(languages):
        raise InvalidInput("conversation.languages: a list of at most 64 strings of at most 64 characters")
    return tuple(languages)


def _speaker_voices(value: object) -> SpeakerVoices:
    """``speaker_voices``: ``"one"`` (every speaker in ``speaker_id``'s voice), ``"distinct"`` (the
    default with ``speakers`` of 2 or more: a voice each), or an object of labels' voices
    (``{"2": 7}``: label 2 in voice 7, the others a voice each)."""
    if value is None or value == "distinct":
        return SpeakerVoices()
    if value == "one":
        return SpeakerVoices(one=True)
    fix = 'speaker_voices: "distinct" (the default), "one", or an object of speaker labels\' voices, e.g. {"2": 7}'
    if not isinstance(value, dict) or len(value) > 64:
        raise InvalidInput(f"{fix}; got {shown(value)}")
    voices = []
    for label, voice in value.items():
        if not (isinstance(label, str) and label.isdigit() and len(label) < 4 and _whole(voice)):
            raise InvalidInput(f"{fix}: each key a label (a whole number as a string), each value a voice number")
        voices.append((int(label), voice))
    return SpeakerVoices(voices=tuple(sorted(voices)))


def _channel_mode(value: object) -> bool:
    """``channel_mode``: ``separate`` (each channel a party) or ``mixed`` (the default)."""
    if value not in ("mixed", "separate"):
        raise InvalidInput(f"channel_mode is {shown(value)}: use mixed (the default) or separate")
    return value == "separate"


def _vad(value: object) -> tuple[tuple[str, float | int | str], ...]:
    """``vad``: an object of ``VadOptions``' keys (each checked by the desk against its range)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidInput(f"vad: an object of {', '.join(VAD_TYPES)}")
    _known(value, frozenset(VAD_TYPES), "vad.")
    for key, v in value.items():
        if isinstance(v, bool) or not isinstance(v, VAD_TYPES[key]):
            kind = "a string" if key == "eagerness" else "a number" if key == "threshold" else "a whole number"
            raise InvalidInput(f"vad.{key} is {shown(v)}: {kind}")
    return tuple((key, float(v) if key == "threshold" else v) for key, v in value.items())


def _ear(noise: bool, speakers: int) -> EarOptions:
    """The job's ear options; they check their own speaker bound (named ``speakers``)."""
    with options_at():
        return EarOptions(noise_suppression=noise, speakers=speakers)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: object) -> bool:
    return isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) and len(v) <= 64 for v in value)
