"""NVIDIA Riva's wire (``nvidia.riva.nmt``, ``nvidia.riva.asr``) <-> the stream core's requests and events.

The Riva door's only knowledge of Riva's messages besides the servicer's method table (docs/riva-compat.md
maps every field). The protos are those of the ``nvidia-riva-client`` package (its generated
``riva.client.proto`` modules, which load under our protobuf 7 runtime; docs/decisions.md).

- A stream's first message is its config: ``asr_config`` (audio format, source language, interim
  results), ``translation_config`` (languages, ``dnt_phrases`` -> KEEP terms and, for
  ``phrase##translation`` lines, glossary entries), ``tts_config`` (the speech's encoding and
  rate). Language codes go through our BCP-47 mapping (``languages.py``) to the model's codes; a
  code the model lacks is INVALID_ARGUMENT naming it.
- ``audio_content`` is audio in the config's format; an empty ``audio_content`` ends the input (the
  open speech is translated, every result sent, then the call ends), as a half-close does.
- Each segment is answered once: speech (``SynthesizeSpeechResponse``) or a final
  ``StreamingRecognitionResult``; live captions are interim results. What Riva has no field for (the
  segment's span on the stream's timeline, its timing, a failed segment's status) travels in the
  response's own ``id`` (``RequestId.value``) as a URL query string (``segment_fields``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import grpc
from riva.client.proto import riva_asr_pb2 as asr
from riva.client.proto import riva_audio_pb2 as audio
from riva.client.proto import riva_nmt_pb2 as nmt

from translate_svc import words
from translate_svc.audio import ogg, wav
from translate_svc.audio.limits import OPUS_RATE
from translate_svc.errors import ErrorCode, InvalidInput, ServiceError
from translate_svc.languages import bcp47_candidates
from translate_svc.session.events import AudioIn, StreamConfig, StreamEnded, StreamRequest
from translate_svc.session.task.counts import check_counts
from translate_svc.settings import LimitsSettings
from translate_svc.transport.riva.ear import NOISE_KEY, diarization, noise_suppression
from translate_svc.transport.riva.results import STABLE as STABLE
from translate_svc.transport.riva.results import UNSTABLE as UNSTABLE
from translate_svc.transport.riva.results import confidence as confidence
from translate_svc.transport.riva.results import parse_segment_fields as parse_segment_fields
from translate_svc.transport.riva.results import segment_fields as segment_fields
from translate_svc.transport.riva.results import speech_response as speech_response
from translate_svc.transport.riva.results import text_result as text_result
from translate_svc.transport.riva.results import transcript_result as transcript_result
from translate_svc.types import (
    SPEED_MAX,
    SPEED_MIN,
    AudioEncoding,
    AudioFormat,
    EarOptions,
    ModelCard,
    OptionError,
    OutputOptions,
    Profanity,
    SimultaneousOptions,
    Term,
    check_speed,
)
from translate_svc.vad.segmenter import SegmenterConfig

#: live captions every this many ms when a client asks for ``interim_results`` and does not say
#: (``custom_configuration["interim_interval_ms"]``)
DEFAULT_INTERIM_INTERVAL_MS = 1000
INTERIM_INTERVAL_KEY = "interim_interval_ms"
#: StreamingTranslateSpeechToText in simultaneous mode, a step every this many ms (our extension):
#: its captions then carry settled words (``stability`` 1.0) before the words that may change
SIMULTANEOUS_KEY = "simultaneous_step_ms"
#: the most characters of a client's value echoed in a message (docs/design.md pitfall 13)
SHOWN_CHARS = 40

_ENCODINGS = {
    audio.ENCODING_UNSPECIFIED: AudioEncoding.LINEAR16,
    audio.LINEAR_PCM: AudioEncoding.LINEAR16,
    audio.MULAW: AudioEncoding.MULAW,
    audio.ALAW: AudioEncoding.ALAW,
}

#: our error codes as gRPC's (the same names)
STATUS_CODES = {code: grpc.StatusCode[code.name] for code in ErrorCode}


def status_code(err: ServiceError) -> grpc.StatusCode:
    return STATUS_CODES[err.code]


def shown(value: str) -> str:
    v = value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "..."
    return repr(v)


# -- languages -----------------------------------------------------------------------------------


def model_language(tag: str, card: ModelCard, field: str) -> str:
    """A Riva language code (``en-US``, ``es``, or one of the model's codes: ``eng``) as the model's
    code; INVALID_ARGUMENT naming it when the model has no such language. "" stays "" (not given)."""
    tag = tag.strip()
    if not tag:
        return ""
    codes = {lang.code for lang in card.languages}
    if tag in codes:
        return tag
    for code in bcp47_candidates(tag):
        if code in codes:
            return code
    raise InvalidInput(
        f"{field} {shown(tag)}: this server's model has no such language; use a BCP-47 tag of one of its "
        "languages (e.g. en-US, es-ES) or one of the codes ListSupportedLanguagePairs lists"
    )


def language_pairs(card: ModelCard) -> nmt.AvailableLanguageResponse:
    """One entry, the model: every language it hears (``src_lang``) and every one it writes (``tgt_lang``);
    each source can be translated into each target."""
    response = nmt.AvailableLanguageResponse()
    pair = response.languages[card.info.name]
    pair.src_lang.extend(lang.code for lang in card.languages if lang.speech_input)
    pair.tgt_lang.extend(lang.code for lang in card.languages if lang.text_output)
    return response


def term_count(phrases: Sequence[str], contexts: Sequence[asr.SpeechContext], most: int) -> int:
    """How many terms ``dnt_phrases`` and ``speech_contexts`` make, counted without making any
    (security finding F3): each element's comma-separated items (its commas counted by ``str.count``) and
    each context's phrases. A list of more than ``4 * most`` elements is counted by its length; a
    count a little over ``most`` is made exact (blank items, a trailing comma, are not terms)."""
    if len(phrases) > 4 * most or len(contexts) > 4 * most:
        return len(phrases) + len(contexts)
    boosted = sum(len(ctx.phrases) for ctx in contexts)
    n = sum(element.count(",") + 1 for element in phrases) + boosted
    if most < n <= 4 * most:
        n = sum(1 for element in phrases for item in element.split(",") if item.strip()) + boosted
    return n


def check_terms(phrases: Sequence[str], contexts: Sequence[asr.SpeechContext], limits: LimitsSettings) -> None:
    """Riva's terms counted against ``limits.max_terms`` (and its dictionary's custom translations
    against ``max_glossary_entries``) before any is made."""
    most = limits.max_terms + limits.max_glossary_entries
    n = term_count(phrases, contexts, most)
    others, glossary = n, 0
    if n <= most:  # within both together: the items are few, so count them exactly, by kind
        items = list(_items(phrases))
        glossary = sum(map(_custom, items))
        others = len(items) - glossary + sum(len(ctx.phrases) for ctx in contexts)
    check_counts(
        limits, terms=others, glossary=glossary, terms_are="terms (dnt_phrases items and speech_contexts phrases)"
    )


def _items(phrases: Sequence[str]) -> Iterator[tuple[int, str]]:
    """Each comma-separated item of ``dnt_phrases`` with its element's index (blank ones skipped)."""
    for n, element in enumerate(phrases):
        for item in element.split(","):
            if item.strip():
                yield n, item


def _custom(item: tuple[int, str]) -> bool:
    """A dictionary line with a translation of its own (``phrase##other``; compared as terms are,
    ``words.key``)."""
    phrase, sep, translation = item[1].partition("##")
    own = words.key(translation, ignore_case=False)
    return bool(sep and own and own != words.key(phrase, ignore_case=False))


def dnt_terms(phrases: Sequence[str], field: str, target: str) -> tuple[Term, ...]:
    """Riva's dictionary: ``phrase`` or ``phrase##phrase`` (do not translate) as a KEEP term, and
    ``phrase##translation`` with a translation of its own as a glossary entry (TRANSLATE) for the
    stream's one ``target`` (matched in the phrase's case, the glossary default). Riva's client
    sends them as one element ``"a##a,b##b"`` (``add_dnt_phrases_dict``) or one line per element."""
    out: list[Term] = []
    for n, item in _items(phrases):
        phrase, _, translation = item.partition("##")
        phrase, translation = phrase.strip(), translation.strip()
        if not phrase:
            raise InvalidInput(f"{field}[{n}] has an empty phrase in {shown(item.strip())}: name the phrase")
        if _custom((n, item)):
            out.append(Term(phrase, glossary=True, translation=translation, target_language=target))
        else:
            out.append(Term(phrase, keep=True))
    return tuple(out)


# -- the stream's config ---------------------------------------------------------------------------


def audio_format(cfg: asr.RecognitionConfig, field: str) -> AudioFormat:
    if cfg.encoding == audio.OGGOPUS:  # Ogg pages in; their Opus packets are our OPUS stream's (OggOpusPackets)
        if cfg.audio_channel_count not in (0, 1, 2):
            raise InvalidInput(f"{field}.audio_channel_count is {cfg.audio_channel_count}: Opus streams are 1 or 2")
        return AudioFormat(AudioEncoding.OPUS, OPUS_RATE, cfg.audio_channel_count or 1)
    if cfg.encoding not in _ENCODINGS:
        name = audio.AudioEncoding.Name(cfg.encoding) if cfg.encoding in audio.AudioEncoding.values() else cfg.encoding
        raise InvalidInput(
            f"{field}.encoding {name} is not taken in a stream: send LINEAR_PCM (or MULAW, ALAW) "
            "raw samples, or OGGOPUS; FLAC is not streamed here"
        )
    if cfg.sample_rate_hertz <= 0:
        raise InvalidInput(f"{field}.sample_rate_hertz is unset: set the audio's sample rate (e.g. 16000)")
    return AudioFormat(_ENCODINGS[cfg.encoding], cfg.sample_rate_hertz, cfg.audio_channel_count or 1)


class OggOpusPackets:
    """OGGOPUS: an Ogg Opus stream's bytes in, however they are cut into messages (Riva's file
    iterator cuts a file anywhere), its Opus packets out (``audio.ogg``), each one OPUS message;
    the ``OpusHead``'s channel count must be the config's. The reader's refusals in this door's words."""

    def __init__(self, channels: int, field: str) -> None:
        self._reader = ogg.OggOpusPackets(channels)
        self._field = field

    def feed(self, data: bytes) -> list[bytes]:
        field = self._field
        try:
            return self._reader.feed(data)
        except ogg.NotAtPage:
            raise InvalidInput(
                f"{field} is not an Ogg stream where a page should begin: send the Ogg Opus file's "
                "bytes in order, from its first byte (encoding OGGOPUS)"
            ) from None
        except ogg.PacketTooLarge as e:
            raise InvalidInput(f"{field} holds an Ogg packet over {e.limit} bytes") from None
        except ogg.NotOpus:
            raise InvalidInput(f"{field} is an Ogg stream without Opus in it: send Ogg Opus (OGGOPUS)") from None
        except ogg.OpusChannelsDiffer as e:
            raise InvalidInput(
                f"{field} is Opus of {e.head.channels} channel(s) (mapping family {e.head.mapping_family}), but the "
                f"config says {e.expected}: set audio_channel_count to it (1 or 2)"
            ) from None

    @property
    def unfinished(self) -> int:
        """Bytes held that are not yet a whole packet (at the stream's end: a file cut short)."""
        return self._reader.unfinished


def wav_payload(data: bytes, fmt: AudioFormat, field: str) -> bytes:
    """A stream's first LINEAR_PCM chunk as Riva's ``AudioChunkFileIterator`` sends it, a WAV file's
    bytes from its start: the samples after the header (a chunk without one is returned as it is).
    The header (``audio.wav``) must describe the config's audio (PCM 16-bit, its rate and channels)
    and its data chunk must begin in this message, else InvalidInput: its bytes are never taken for samples."""
    if not wav.is_wav(data):
        return data
    header = wav.read_header(data)
    if header is None:
        raise InvalidInput(
            f"{field} starts with a WAV header whose format and samples do not both begin in this message: send "
            "the header with the first samples in one message, or raw samples"
        )
    f = header.format
    tag, channels, rate, bits = f.format_tag, f.channels, f.sample_rate_hz, f.bits_per_sample
    pcm = tag in (wav.WAVE_FORMAT_PCM, wav.WAVE_FORMAT_EXTENSIBLE)
    if not pcm or (bits, rate, channels) != (16, fmt.sample_rate_hz, fmt.channels):
        raise InvalidInput(
            f"{field} is a WAV file of {bits}-bit samples (format {tag}) at {rate} Hz, {channels} "
            f"channel(s), but the config says LINEAR_PCM (16-bit) at {fmt.sample_rate_hz} Hz, "
            f"{fmt.channels} channel(s): make them agree"
        )
    return data[header.data_offset :]


def boost_terms(contexts: Sequence[asr.SpeechContext], field: str) -> tuple[Term, ...]:
    """``speech_contexts`` (word boosting) as BOOST terms (the weight is checked when the task resolves)."""
    out: list[Term] = []
    for n, ctx in enumerate(contexts):
        if ctx.boost < 0:
            raise InvalidInput(f"{field}[{n}].boost is {ctx.boost:g}: negative boosts are not supported")
        out.extend(Term(p, keep=False, weight=ctx.boost or 3.0) for p in ctx.phrases)
    return tuple(out)


def interim_interval(scfg: asr.StreamingRecognitionConfig, field: str) -> int:
    """Live captions' interval: 0 without ``interim_results``; else ``custom_configuration``'s
    ``interim_interval_ms``, or ``DEFAULT_INTERIM_INTERVAL_MS``."""
    given = scfg.config.custom_configuration.get(INTERIM_INTERVAL_KEY)
    if not scfg.interim_results:
        if given is not None:
            raise InvalidInput(f"{field}.config.custom_configuration[{INTERIM_INTERVAL_KEY}] needs interim_results")
        return 0
    if given is None:
        return DEFAULT_INTERIM_INTERVAL_MS
    try:
        return int(given)
    except ValueError:
        raise InvalidInput(
            f"{field}.config.custom_configuration[{INTERIM_INTERVAL_KEY}] is {shown(given)}: give milliseconds"
        ) from None


def _unknown_custom(scfg: asr.StreamingRecognitionConfig, field: str, known: tuple[str, ...]) -> None:
    custom = scfg.config.custom_configuration
    names = " and ".join(known)
    if len(custom) > 8:  # counted before its keys are sorted: few keys are known
        raise InvalidInput(
            f"{field}.config.custom_configuration has {len(custom)} keys: this server reads only {names}"
        )
    unknown = sorted(k for k in custom if k not in known)
    if unknown:
        raise InvalidInput(
            f"{field}.config.custom_configuration has {shown(unknown[0])}: this server reads only {names}"
        )


def simultaneous_step(scfg: asr.StreamingRecognitionConfig, field: str) -> SimultaneousOptions | None:
    """``custom_configuration["simultaneous_step_ms"]``: simultaneous mode with that step (its
    range is checked with the task); absent: segment mode."""
    given = scfg.config.custom_configuration.get(SIMULTANEOUS_KEY)
    if given is None:
        return None
    try:
        return SimultaneousOptions(step_ms=int(given))
    except ValueError:
        raise InvalidInput(
            f"{field}.config.custom_configuration[{SIMULTANEOUS_KEY}] is {shown(given)}: give milliseconds"
        ) from None


def _source(scfg: asr.StreamingRecognitionConfig, tcfg: nmt.TranslationConfig | None, card: ModelCard) -> str:
    asr_lang = model_language(scfg.config.language_code, card, "asr_config.config.language_code")
    if tcfg is None:
        return asr_lang
    source = model_language(tcfg.source_language_code, card, "translation_config.source_language_code")
    if source and asr_lang and source != asr_lang:
        raise InvalidInput(
            f"translation_config.source_language_code {shown(tcfg.source_language_code)} and "
            f"asr_config.config.language_code {shown(scfg.config.language_code)} name different languages: "
            "name one (or the same in both)"
        )
    return source or asr_lang


def _target(tcfg: nmt.TranslationConfig, card: ModelCard) -> str:
    if not tcfg.target_language_code.strip():
        raise InvalidInput("translation_config.target_language_code is empty: name the language to translate into")
    return model_language(tcfg.target_language_code, card, "translation_config.target_language_code")


def _speech_output(tts_cfg: nmt.SynthesizeSpeechConfig, target: str, card: ModelCard) -> OutputOptions:
    if tts_cfg.encoding not in (audio.ENCODING_UNSPECIFIED, audio.LINEAR_PCM):
        name = (
            audio.AudioEncoding.Name(tts_cfg.encoding)
            if tts_cfg.encoding in audio.AudioEncoding.values()
            else tts_cfg.encoding
        )
        raise InvalidInput(f"tts_config.encoding {name} is not produced here: ask for LINEAR_PCM")
    if model_language(tts_cfg.language_code, card, "tts_config.language_code") not in ("", target):
        raise InvalidInput(
            f"tts_config.language_code {shown(tts_cfg.language_code)} is not the target language: "
            "the speech is in translation_config.target_language_code (leave it empty or name the same)"
        )
    rate = tts_cfg.sample_rate_hz or OutputOptions().speech_sample_rate_hz
    speed = prosody_rate(tts_cfg.prosody_rate, "tts_config.prosody_rate")
    return OutputOptions(text=True, speech=True, transcript=False, speech_sample_rate_hz=rate, speed=speed)


#: ``prosody_rate`` values that mean the model's own rate (SSML's and Riva's names for it)
_OWN_RATE = frozenset({"", "default", "medium"})


def prosody_rate(value: str, field: str) -> float:
    """Riva's ``prosody_rate`` (its SSML ``<prosody rate>``, a string) as our speaking rate: a
    percentage of the model's own rate (``"150%"``: 1.5), as SSML 1.1 and Riva's docs write it, from
    50% to 200% (``SPEED_MIN``..``SPEED_MAX``); empty, ``default`` or ``medium``: 1. A signed
    percentage (``"+50%"``: SSML 1.0's relative change, which Riva's docs write for an absolute one)
    and the named rates (``x-low``..``x-high``, whose factors neither Riva nor SSML fixes) are
    refused saying what to send: a rate never means something other than the client meant."""
    text = value.strip().lower()
    if text in _OWN_RATE:
        return 1.0
    number = text[:-1].strip() if text.endswith("%") else ""
    if not number or number[0] in "+-" or len(number) > 12:
        raise InvalidInput(
            f"{field} {shown(value)}: give the speaking rate as a percentage of the model's own rate, from "
            f"{SPEED_MIN:.0%} to {SPEED_MAX:.0%} (e.g. '150%'), or leave it empty (100%)"
        )
    try:
        percent = float(number)
    except ValueError:
        percent = -1.0
    try:
        return check_speed(percent / 100, field)
    except OptionError:
        raise InvalidInput(
            f"{field} {shown(value)}: the speaking rate is a percentage of the model's own rate from "
            f"{SPEED_MIN:.0%} to {SPEED_MAX:.0%} (e.g. '150%')"
        ) from None


def profanity(cfg: asr.RecognitionConfig) -> Profanity | None:
    """Riva's ``profanity_filter``: true masks listed words (as Riva does); false (proto3 cannot
    tell it from unset) leaves the tenant's default (off unless its tokens-file line says)."""
    return Profanity.MASK if cfg.profanity_filter else None


def s2s_config(
    msg: nmt.StreamingTranslateSpeechToSpeechConfig, card: ModelCard, vad: SegmenterConfig, limits: LimitsSettings
) -> StreamConfig:
    return _translate_config(msg.asr_config, msg.translation_config, card, vad, limits, tts_cfg=msg.tts_config)


def s2t_config(
    msg: nmt.StreamingTranslateSpeechToTextConfig, card: ModelCard, vad: SegmenterConfig, limits: LimitsSettings
) -> StreamConfig:
    return _translate_config(msg.asr_config, msg.translation_config, card, vad, limits)


def _translate_config(
    scfg: asr.StreamingRecognitionConfig,
    tcfg: nmt.TranslationConfig,
    card: ModelCard,
    vad: SegmenterConfig,
    limits: LimitsSettings,
    *,
    tts_cfg: nmt.SynthesizeSpeechConfig | None = None,
) -> StreamConfig:
    check_terms(tcfg.dnt_phrases, scfg.config.speech_contexts, limits)
    if scfg.config.enable_word_time_offsets:
        # a translated word is timed in its speech: this call returns none (S2T) or no words (S2S)
        raise InvalidInput(
            "asr_config.config.enable_word_time_offsets is not served on translation streams: their results "
            "carry no word timings; use StreamingRecognize for the transcript's words"
        )
    _unknown_custom(
        scfg,
        "asr_config",
        (INTERIM_INTERVAL_KEY, NOISE_KEY) if tts_cfg else (INTERIM_INTERVAL_KEY, SIMULTANEOUS_KEY, NOISE_KEY),
    )
    target = _target(tcfg, card)
    if tts_cfg is None:
        output = OutputOptions(text=True, speech=False, transcript=False)
    else:
        output = _speech_output(tts_cfg, target, card)
    return StreamConfig(
        format=audio_format(scfg.config, "asr_config.config"),
        source_language=_source(scfg, tcfg, card),
        target_languages=(target,),
        output=replace(output, profanity=profanity(scfg.config)),
        vad=vad,
        interim_interval_ms=interim_interval(scfg, "asr_config") if tts_cfg is None else 0,
        terms=dnt_terms(tcfg.dnt_phrases, "translation_config.dnt_phrases", target)
        + boost_terms(scfg.config.speech_contexts, "asr_config.config.speech_contexts"),
        simultaneous=simultaneous_step(scfg, "asr_config") if tts_cfg is None else None,
        ear=EarOptions(noise_suppression=noise_suppression(scfg.config, "asr_config.config")),
    )


def asr_config(
    scfg: asr.StreamingRecognitionConfig, card: ModelCard, vad: SegmenterConfig, limits: LimitsSettings
) -> StreamConfig:
    """StreamingRecognize: our transcript (no target language), captions for ``interim_results``."""
    check_terms((), scfg.config.speech_contexts, limits)
    _unknown_custom(scfg, "streaming_config", (INTERIM_INTERVAL_KEY, NOISE_KEY))
    source = model_language(scfg.config.language_code, card, "streaming_config.config.language_code")
    if not source:
        raise InvalidInput("streaming_config.config.language_code is empty: name the spoken language (e.g. en-US)")
    speakers = diarization(scfg.config, "streaming_config.config")  # labels ride on words: word timings on
    word_timings = scfg.config.enable_word_time_offsets or bool(speakers)
    return StreamConfig(
        format=audio_format(scfg.config, "streaming_config.config"),
        source_language=source,
        target_languages=(),
        output=OutputOptions(
            text=False, speech=False, transcript=True, word_timings=word_timings, profanity=profanity(scfg.config)
        ),
        ear=EarOptions(noise_suppression=noise_suppression(scfg.config, "streaming_config.config"), speakers=speakers),
        vad=vad,
        interim_interval_ms=interim_interval(scfg, "streaming_config"),
        terms=boost_terms(scfg.config.speech_contexts, "streaming_config.config.speech_contexts"),
    )


def translate_request(
    msg: nmt.StreamingTranslateSpeechToSpeechRequest | nmt.StreamingTranslateSpeechToTextRequest,
    card: ModelCard,
    vad: SegmenterConfig,
    limits: LimitsSettings,
) -> StreamRequest | None:
    """One message of a translation stream; None: an empty buffer (the end of the input)."""
    if msg.HasField("config"):
        if msg.audio_content:
            raise InvalidInput("a message carries config and audio_content: send the config alone, first")
        if isinstance(msg, nmt.StreamingTranslateSpeechToSpeechRequest):
            return s2s_config(msg.config, card, vad, limits)
        return s2t_config(msg.config, card, vad, limits)
    return AudioIn(msg.audio_content, field="audio_content") if msg.audio_content else None


def recognize_request(
    msg: asr.StreamingRecognizeRequest, card: ModelCard, vad: SegmenterConfig, limits: LimitsSettings
) -> StreamRequest | None:
    """One StreamingRecognize message; None: an empty buffer (the end of the input)."""
    if msg.runtime_config:
        raise InvalidInput("runtime_config is not supported by this server: leave it empty")
    if msg.HasField("streaming_config"):
        if msg.audio_content:
            raise InvalidInput("a message carries streaming_config and audio_content: send the config alone, first")
        return asr_config(msg.streaming_config, card, vad, limits)
    return AudioIn(msg.audio_content, field="audio_content") if msg.audio_content else None


# -- TranslateText ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RivaTextRequest:
    """A TranslateText call as the door parsed it: the model's language codes and KEEP terms."""

    texts: tuple[str, ...]
    source_language: str
    target_language: str
    terms: tuple[Term, ...]


def text_request(msg: nmt.TranslateTextRequest, card: ModelCard, limits: LimitsSettings) -> RivaTextRequest:
    """The texts, languages and terms, each list counted before any of it is converted."""
    check_counts(limits, texts=len(msg.texts))
    check_terms(msg.dnt_phrases, (), limits)
    if not msg.texts:
        raise InvalidInput("texts is empty: send at least one text to translate")
    if not msg.target_language.strip():
        raise InvalidInput("target_language is empty: name the language to translate into")
    if not msg.source_language.strip():
        raise InvalidInput("source_language is empty: name the texts' language")
    target = model_language(msg.target_language, card, "target_language")
    return RivaTextRequest(
        texts=tuple(msg.texts),
        source_language=model_language(msg.source_language, card, "source_language"),
        target_language=target,
        terms=dnt_terms(msg.dnt_phrases, "dnt_phrases", target),
    )


def text_response(translations: Sequence[str], target_tag: str) -> nmt.TranslateTextResponse:
    return nmt.TranslateTextResponse(translations=[nmt.Translation(text=t, language=target_tag) for t in translations])


#: the stream's end in the trailing metadata (and its session in the initial metadata)
SESSION_ID = "x-session-id"
SEGMENTS_TOTAL = "x-segments-total"
AUDIO_RECEIVED_MS = "x-audio-received-ms"
END_REASON = "x-end-reason"


def end_metadata(ev: StreamEnded) -> tuple[tuple[str, str], ...]:
    return (
        (SEGMENTS_TOTAL, str(ev.segments_total)),
        (AUDIO_RECEIVED_MS, str(ev.audio_received_ms)),
        (END_REASON, ev.reason or "half_close"),
    )
