"""Domain objects that cross module boundaries (never protobuf messages).

All are frozen dataclasses: safe to share between the event loop and the model thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

#: The model's input and output sample rate (SeamlessM4T v2 feature extractor and vocoder).
MODEL_SAMPLE_RATE = 16_000


class AudioEncoding(str, Enum):
    LINEAR16 = "LINEAR16"
    FLOAT32 = "FLOAT32"
    MULAW = "MULAW"
    ALAW = "ALAW"
    CONTAINER = "CONTAINER"
    OPUS = "OPUS"  # streams: one Opus packet per message, 48 kHz timeline


class SpeechEncoding(str, Enum):
    """How translated speech is returned."""

    LINEAR16 = "LINEAR16"
    OPUS = "OPUS"  # 48 kHz mono Opus, 20 ms packets (for publishing into a call)


class Profanity(str, Enum):
    """The profanity filter: listed words (model/finish/profanity.py) in the transcript and
    every translation are left, masked (first letter kept, the rest ``*``) or removed; the speech
    is made from the text without them."""

    OFF = "off"
    MASK = "mask"
    REMOVE = "remove"


@dataclass(frozen=True)
class AudioFormat:
    encoding: AudioEncoding
    sample_rate_hz: int = 0  # 0 only for CONTAINER (read from the bytes)
    channels: int = 1

    @property
    def heard_rate(self) -> int:
        """The rate a stream's audio is decoded to (and recorded at): OPUS packets straight at the
        model's 16 kHz (libopus decodes any packet to it: no resampler after it), raw samples at
        their own rate. Timestamps and durations stay on ``sample_rate_hz`` (Opus's 48 kHz clock)."""
        return MODEL_SAMPLE_RATE if self.encoding is AudioEncoding.OPUS else self.sample_rate_hz


@dataclass(frozen=True)
class OutputOptions:
    text: bool = True
    speech: bool = True
    transcript: bool = True
    speech_sample_rate_hz: int = MODEL_SAMPLE_RATE
    speaker_id: int = 0
    speech_encoding: SpeechEncoding = SpeechEncoding.LINEAR16
    #: each word's start and end in final results; off by default: aligning the
    #: transcript costs one more decoder pass per segment
    word_timings: bool = False
    #: the profanity filter; None: the tenant's default (its tokens-file ``profanity=``), else off
    profanity: Profanity | None = None
    #: the speaking rate of the translated speech: 1.5 speaks in 1/1.5 of the time, at
    #: the same pitch (the vocoder's frames per unit scaled, model/stages/vocoder.py);
    #: ``SPEED_MIN``..``SPEED_MAX`` (``check_speed``)
    speed: float = 1.0
    #: dubbing to the source's clock (clips and jobs only): each segment's speech made
    #: at the rate within ``DubFit``'s bound that fits it before the next segment starts (``speed``
    #: then stays 1); None: off
    fit: DubFit | None = None

    def __post_init__(self) -> None:
        """A speaking rate out of range is refused as the options are made (``OptionError``
        naming ``speed``; a door renames it to its own field); an integer rate is kept as a float."""
        object.__setattr__(self, "speed", check_speed(self.speed, "speed"))


@dataclass(frozen=True)
class DubFit:
    """The bound of dubbing to the source's clock (``OutputOptions.fit``): each segment's speech
    is made at the slowest rate in ``slowest``..``fastest`` at which it ends by the next segment's
    start (the last one's: by the audio's end); past ``fastest`` it runs over, and its
    ``Translation.overlap_ms`` says by how much. ``check_fit`` checks it."""

    slowest: float = 0.85
    fastest: float = 1.35

    def __post_init__(self) -> None:
        """Each rate a speaking rate, ``slowest`` not above ``fastest`` (``check_fit``), as the
        bound is made: ``OptionError`` naming ``slowest`` or ``fastest``; whole rates kept as floats."""
        object.__setattr__(self, "slowest", check_speed(self.slowest, "slowest"))
        object.__setattr__(self, "fastest", check_speed(self.fastest, "fastest"))
        check_fit(self, "")


#: the speaking rates a client may ask for (``OutputOptions.speed``): OpenAI's realtime ``speed``
#: stops at 1.5, Azure's prosody rate at 2x; below 0.5 the vocoder's repeated frames sound stretched
SPEED_MIN = 0.5
SPEED_MAX = 2.0


class OptionError(ValueError):
    """An option's value out of its range, found as the options were made: ``field`` its path
    inside them (``speed``, ``fit.slowest``, ``speakers``), ``problem`` what is wrong and what to
    send. Each door renames the field to its wire's (``under``: the path of the options in its
    message) and answers with its own bad-request status. ``{prefix}`` in ``problem`` stands where
    another field of the same options is named, so that it is renamed too."""

    def __init__(self, field: str, problem: str, prefix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.prefix = prefix
        super().__init__(f"{prefix}{field} {problem.replace('{prefix}', prefix)}")

    def under(self, prefix: str) -> OptionError:
        """The same error for options found at ``prefix`` (``output.``): ``output.fit.slowest``."""
        return OptionError(self.field, self.problem, prefix + self.prefix)


def is_speed(value: float) -> bool:
    """Whether ``value`` is a speaking rate (``SPEED_MIN``..``SPEED_MAX``; NaN is not): the one
    definition of the range, which ``check_speed`` and the model's own input checks read."""
    return SPEED_MIN <= value <= SPEED_MAX


def check_speed(value: float, field: str) -> float:
    """``value`` as a speaking rate, or ``OptionError`` naming ``field`` and the range (each door
    maps it to its own bad-request status). A number is echoed (``%g``: short whatever its size); any
    other value only by its type, so no caller text comes back. Any value of any size gives the
    ValueError, never another exception: a JSON integer beyond a float's range (``10**400``) is
    compared exactly and echoed by its digits (``%g`` would raise OverflowError on it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = type(value).__name__
    elif not is_speed(value):
        got = _number_words(value)
    else:
        return float(value)
    raise OptionError(field, f"must be a number from {SPEED_MIN} to {SPEED_MAX} (1 is the model's own rate), got {got}")


@dataclass(frozen=True)
class PartySpeech:
    """A conversation's speech per party, keyed by the language the party hears (a party's own
    language is the one the others' turns are spoken to it in): the voice (``OutputOptions.speaker_id``)
    and the speaking rate (``OutputOptions.speed``) of the speech made in that language, so the
    two directions sound apart and a slower listener gets slower speech. A language not named
    takes the output's. Pairs in the order sent; each language at most once (``check_parties``)."""

    voices: tuple[tuple[str, int], ...] = ()
    speeds: tuple[tuple[str, float], ...] = ()

    def voice(self, language: str, default: int) -> int:
        return next((v for lang, v in self.voices if lang == language), default)

    def speed(self, language: str, default: float) -> float:
        return next((r for lang, r in self.speeds if lang == language), default)

    def __bool__(self) -> bool:
        return bool(self.voices or self.speeds)


#: no voice or rate of its own for any party: every language speaks as the output says
NO_PARTIES = PartySpeech()


def _number_words(value: float) -> str:
    """A number for an error message, short whatever its size: ``%g``, or an integer too large for
    a float by its count of digits (from its bit length: ``str`` of a huge integer is refused past
    4,300 digits and costs time quadratic in them)."""
    try:
        return f"{value:g}"
    except OverflowError:
        digits = int(int(value).bit_length() * 0.30103) + 1
        return f"an integer of about {digits} digits"


def check_fit(fit: DubFit, field: str) -> DubFit:
    """``fit``'s rates each a speaking rate (``check_speed``), ``slowest`` not above ``fastest``;
    else ``OptionError`` naming ``field``'s parts (``field`` empty: the bound's own names)."""
    at = f"{field}." if field else ""
    check_speed(fit.slowest, f"{at}slowest")
    check_speed(fit.fastest, f"{at}fastest")
    if fit.slowest > fit.fastest:
        raise OptionError(f"{at}slowest", f"({fit.slowest}) must not be above {{prefix}}{at}fastest ({fit.fastest})")
    return fit


#: a BOOST term's weight when none is given, and the most it may be
DEFAULT_TERM_WEIGHT = 3.0
MAX_TERM_WEIGHT = 10.0


@dataclass(frozen=True)
class Term:
    """A phrase to get right. ``keep``: do not translate (carried verbatim into the translations
    where the transcript has it); ``glossary``: translate it as ``translation`` into
    ``target_language`` where the source says it (case-sensitive unless ``ignore_case``); else
    boosted by ``weight`` (added to its tokens' logits)."""

    phrase: str
    keep: bool = False
    weight: float = DEFAULT_TERM_WEIGHT
    glossary: bool = False
    translation: str = ""
    target_language: str = ""
    ignore_case: bool = False

    @property
    def boost(self) -> bool:
        return not (self.keep or self.glossary)

    @property
    def folds_case(self) -> bool:
        """Whether the source is searched for the phrase in any case: a KEEP term's is, a glossary
        entry's only with ``ignore_case`` (``model/stages/terms.py``'s ``said_in``, ``words.py``)."""
        return self.keep or self.ignore_case


@dataclass(frozen=True)
class SimultaneousOptions:
    """Simultaneous interpretation of a stream: while speech is open, every ``step_ms``
    of new audio its speech so far is translated again per target, and the words the last
    ``agreement`` translations agree on are committed (``Commit``), with their speech; committed
    text is never retracted. Checked against ``LimitsSettings`` when a stream opens."""

    step_ms: int = 1000
    #: LocalAgreement's n: consecutive translations that must agree on a word before it is committed
    agreement: int = 2
    #: the least new speech a commit's chunk carries (the segment's last one: any); the server's
    #: ``limits.simultaneous_min_chunk_ms``, set when the stream's task is resolved
    min_chunk_ms: int = 400


#: the most speakers one stream may ask to be told apart (``speakers/cluster.py``)
MAX_SPEAKERS = 8


@dataclass(frozen=True)
class EarOptions:
    """What is done to a stream's input before and beside recognition:
    ``noise_suppression``: RNNoise before the VAD (``audio/denoise.py``); ``speakers``: label each
    segment (and its words) with a speaker, telling apart at most this many (0: no labels;
    ``speakers/``)."""

    noise_suppression: bool = False
    speakers: int = 0

    def __post_init__(self) -> None:
        """The speaker bound, as the options are made: ``OptionError`` naming ``speakers``."""
        if (
            isinstance(self.speakers, bool)
            or not isinstance(self.speakers, int)
            or not 0 <= self.speakers <= MAX_SPEAKERS
        ):
            raise OptionError(
                "speakers",
                f"is {self.speakers}: use 0 (no speaker labels) or the most speakers to tell apart, 1..{MAX_SPEAKERS}",
            )


#: no noise suppression, no speaker labels
NO_EAR = EarOptions()


@dataclass(frozen=True)
class TranslationTask:
    """What to do with every segment of one request or stream."""

    source_language: str | None
    #: empty: ASR only (the transcript alone)
    target_languages: tuple[str, ...]
    output: OutputOptions = field(default_factory=OutputOptions)
    #: detect each segment's spoken language among these model codes (empty: any the identifier
    #: can pick) instead of taking ``source_language``; None: no detection
    detect: tuple[str, ...] | None = None
    terms: tuple[Term, ...] = ()
    #: the last ``stored_terms`` of ``terms`` came from stored glossaries (``glossaries/``): checked
    #: when they were stored, not counted against a request's own term caps
    stored_terms: int = 0
    #: None: segment mode (a segment is translated once it closed)
    simultaneous: SimultaneousOptions | None = None
    ear: EarOptions = NO_EAR
    #: a room's listeners' speaking rates (``session/rooms/room.py``): (target, rate)
    #: pairs; while there are any, each final segment keeps its spoken units
    #: (``SegmentResult.spoken``) and its room speaks them again at the rates its listeners then
    #: want, as optional work after the result (``session/calls/renditions.py``); set by a room on its
    #: speaker's task, never by a client, kept by the client's own updates
    renditions: tuple[tuple[str, float], ...] = ()
    #: a conversation's languages (two or more people, one language each, through one input):
    #: ``detect`` is then these, ``target_languages`` these and then ``listened``, and each segment
    #: is translated into the targets other than the one detected (its transcript's); None: fixed targets
    conversation: tuple[str, ...] | None = None
    #: a conversation speaking into a room: the languages its room's listeners hear beside the
    #: conversation's own (``session/rooms/``), translated into but never identified; set by its
    #: room, never by a client, kept by the client's own updates (as ``renditions``)
    listened: tuple[str, ...] = ()
    #: a conversation's language stated by the client for the coming audio (a push-to-talk): its
    #: segments skip identification and are translated from it into the others; None: identified
    stated_language: str | None = None
    #: a conversation's voice and rate per party (per language heard); NO_PARTIES: the output's
    parties: PartySpeech = NO_PARTIES
    #: each final segment keeps its spoken units (``SegmentResult.spoken``) to be spoken again in
    #: another voice: a job whose speakers each get a voice, re-voiced once its file's labels are
    #: final (``jobs/voices.py``); set by the job, never by a client
    keep_spoken: bool = False

    @property
    def asr_only(self) -> bool:
        return not self.target_languages


@dataclass(frozen=True, eq=False)
class Segment:
    """A span of input audio, 16 kHz mono float32, ``[start_ms, end_ms)`` of the input."""

    segment_id: int
    start_ms: int
    end_ms: int
    samples: np.ndarray


@dataclass(frozen=True)
class WordTiming:
    """One word and where it is, in whole milliseconds: a transcript's word on the stream's
    timeline, or a translated word in its own speech (from the speech's first sample)."""

    word: str
    start_ms: int
    end_ms: int
    #: the speaker label of its segment (``EarOptions.speakers``; 0: none)
    speaker: int = 0
    #: confidence: the mean log-probability of the word's tokens as the model chose
    #: them (<= 0); None: not computed. Not compared: the same word from two runners is equal
    logprob: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Transcript:
    language: str
    text: str
    #: each word of ``text`` on the stream's timeline (empty: not computed, e.g. in captions)
    words: tuple[WordTiming, ...] = ()
    #: confidence: the mean log-probability of the tokens the model chose for ``text``
    #: (<= 0); None: not computed (captions, simultaneous mode)
    avg_logprob: float | None = None
    #: each text token of ``text`` and its log-probability (``ModelOutput.transcript_tokens``)
    tokens: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, eq=False)
class Translation:
    target_language: str
    text: str
    #: float32 mono at ``sample_rate_hz``; None when speech was not asked for or not available.
    audio: np.ndarray | None = None
    sample_rate_hz: int = MODEL_SAMPLE_RATE
    #: the same speech as Opus packets, when asked for (``audio`` is then at 48 kHz)
    opus: OpusSpeech | None = None
    #: a live caption's settled start of ``text`` (``text`` starts with it): words simultaneous
    #: mode committed, which no later caption or the final changes; the rest of ``text`` may
    #: still change. Empty outside captions, and in captions of a stream in segment mode.
    stable_text: str = ""
    #: each word of ``text`` in ``audio`` (ms from its first sample; empty without speech)
    words: tuple[WordTiming, ...] = ()
    #: confidence: as ``Transcript.avg_logprob``, of this translation's text
    avg_logprob: float | None = None
    #: the rate ``audio`` was spoken at: ``OutputOptions.speed``, or the one dubbing to
    #: the source's clock chose; None: no speech, or not told by the model
    speech_rate: float | None = None
    #: with ``OutputOptions.fit``: how far (ms) the speech runs past the next segment's start (the
    #: audio's end, for the last segment), 0 when it fits; None: not fitted
    overlap_ms: int | None = None


@dataclass(frozen=True, eq=False)
class OpusSpeech:
    """Speech encoded as Opus for publishing into a call: 48 kHz mono, one 20 ms packet each.

    Decoding ``packets`` in order gives ``len(packets) * 960`` samples, of which
    ``decoded[pre_skip : pre_skip + num_samples]`` is the speech: the encoder's delay comes first
    (a player skips it, as Ogg's pre-skip says) and zeros pad the last packet. The packets are the
    fewest that cover ``pre_skip + num_samples``. Empty speech has no packets at all. (libopus's
    real delay in its SILK/hybrid speech modes is a few samples under its stated pre-skip: 308 vs
    312 measured; inaudible, and the pre-skip is what every player uses.)
    """

    packets: tuple[bytes, ...]
    #: encoder delay at the start of the decoded audio, in 48 kHz samples (from the OpusHead)
    pre_skip: int
    #: the speech's length in 48 kHz samples
    num_samples: int


@dataclass(frozen=True)
class Timing:
    queue_ms: float = 0.0
    model_ms: float = 0.0
    total_ms: float = 0.0
    #: audio received past the segment's end before the VAD closed it (see the proto's Timing)
    vad_wait_ms: float = 0.0
    #: of ``model_ms``: the batch's text-to-unit and vocoder, and its language identification
    speech_ms: float = 0.0
    language_id_ms: float = 0.0
    #: resampling and Opus-encoding the translated speech, after ``total_ms`` (not on the wire: the
    #: trace's segment span carries it)
    encode_ms: float = 0.0
    #: of ``queue_ms``: the model time of the optional batch (live captions, simultaneous steps)
    #: this final waited behind, at most one, bounded by ``engine.optional_batch_audio_s`` (not
    #: on the wire: the trace's segment span and ``translate_svc_final_optional_wait_ms`` carry it)
    optional_ms: float = 0.0


@dataclass(frozen=True)
class TraceRef:
    """A span elsewhere, as plain ids (OpenTelemetry's, when tracing is on): a segment's result
    carries the engine batch span that computed it, so the segment's span can link to it, across
    the engine process's wire too (``engine/remote/wire.py``)."""

    trace_id: int  # 128 bits
    span_id: int  # 64 bits


class LanguageSource(str, Enum):
    """What chose a conversation's segment's language (``DetectedLanguage.source``;
    ``model_api/turns.py``)."""

    #: the spoken-language identifier's top score
    IDENTIFIED = "identified"
    #: the previous turn's language, kept on a short segment or an unsure identification
    PREVIOUS_TURN = "previous_turn"
    #: the language the client stated for the coming audio (no identification ran)
    STATED = "stated"


@dataclass(frozen=True)
class DetectedLanguage:
    """A segment's spoken language: the one chosen and each candidate's probability, highest first
    (none where the language was stated), and what chose it."""

    language: str
    scores: tuple[tuple[str, float], ...]
    source: LanguageSource = LanguageSource.IDENTIFIED


@dataclass(frozen=True, eq=False)
class InterimResult:
    """Live caption: the open segment's speech so far, as text; superseded by its SegmentResult."""

    segment_id: int
    start_ms: int
    end_ms: int
    transcript: Transcript | None = None
    translations: tuple[Translation, ...] = ()
    timing: Timing = field(default_factory=Timing)
    #: the channel it is heard on, 1.., in a stream of separate channels; 0: the channels mixed
    channel: int = 0


@dataclass(frozen=True)
class SegmentError:
    """Why one segment failed; the transport maps ``code`` to a google.rpc status code."""

    code: str  # an ErrorCode value
    message: str


@dataclass(frozen=True, eq=False)
class SegmentResult:
    segment_id: int
    start_ms: int
    end_ms: int
    transcript: Transcript | None = None
    translations: tuple[Translation, ...] = ()
    timing: Timing = field(default_factory=Timing)
    error: SegmentError | None = None
    detected: DetectedLanguage | None = None
    #: the engine batch that computed it (tracing on only; ``observability/tracing.py``)
    batch_trace: TraceRef | None = None
    #: simultaneous mode: the translations' speech was already sent in this segment's ``Commit``s
    #: (their chunks, back to back, are ``translations[].audio``): a client must not play it again
    speech_in_commits: bool = False
    #: its speaker's label, 1.. (``EarOptions.speakers``, or its channel; 0: not labelled)
    speaker: int = 0
    #: the clip's channel it was spoken on, 1.., where each channel is translated on its own
    #: (``ClipRequest.separate_channels``); 0: the channels mixed
    channel: int = 0
    #: a stream's revisions of earlier segments' labels that this segment's voice brought, each
    #: (segment id, its label now), in segment order (``speakers/cluster.py``)
    speakers_revised: tuple[tuple[int, int], ...] = ()
    #: ``TranslationTask.renditions`` spoken: a translation's text and speech again at another
    #: rate (``speech_rate``), for a room's listeners who chose it; never sent to the stream's client
    renditions: tuple[Translation, ...] = ()
    #: each spoken translation's units, kept where ``TranslationTask.renditions`` asks for speech
    #: at other rates (``SpokenUnits``): a room speaks them again as optional work after the
    #: result is out (``session/calls/renditions.py``); never sent to a client
    spoken: tuple[SpokenUnits, ...] = ()
    #: a conversation's segment with speech: its own audio (16 kHz mono float32, the segment's
    #: span), which a room gives the listeners of the language it was heard in who asked for the
    #: original (``Room.publish``); never sent to the stream's client
    heard_audio: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class SpokenUnits:
    """One spoken translation's text-to-unit result, kept so that its speech can be made again at
    another rate from the same units (a room's listeners' rates): vocoder work alone, no decoder
    row and no second text-to-unit pass (``ModelInput.respeak``). Host values, small (50 units a
    second of speech); crosses the engine's wire as it is. Immutable: safe on any thread."""

    language: str
    #: the voice it was spoken in (``OutputOptions.speaker_id``)
    speaker_id: int
    #: the vocoder's unit ids (int64), the row's own count
    units: np.ndarray
    #: text-to-unit's units per character of the spoken text (int64; 0 past its characters):
    #: the word timings of the speech made again
    char_durations: np.ndarray
    #: the text row's token ids as spoken (``[start, language, text..., end]``, after the
    #: profanity filter): which characters make which word
    tokens: tuple[int, ...]
    #: the rate it was spoken at (``Translation.speech_rate``)
    rate: float = 1.0

    @property
    def seconds(self) -> float:
        """Its speech's length at the model's own rate (20 ms a unit)."""
        return len(self.units) * 0.02


@dataclass(frozen=True, eq=False)
class Commit:
    """Simultaneous mode: words committed for one target of an open (or just closed) segment, and
    the speech of the words committed so far that was not spoken yet. Never retracted: a
    segment's commits, joined in order, are its final translation (text and speech)."""

    segment_id: int
    #: ``text``: the committed words (a delta: to append); ``audio``/``opus``: the chunk (None:
    #: none in this commit), in the stream's output format
    translation: Translation
    #: the stream's audio received (timeline ms) when the commit was made
    source_ms: int
    #: the segment's last commit (the segment closed); its SegmentResult follows
    final: bool = False
    #: the channel it is heard on, 1.., in a stream of separate channels; 0: the channels mixed
    channel: int = 0


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    speech_input: bool
    text_output: bool
    speech_output: bool
    #: the language identifier can pick it
    detectable: bool = False


@dataclass(frozen=True)
class ModelInfo:
    name: str
    revision: str
    is_test_model: bool


@dataclass(frozen=True)
class ModelCard:
    """What the loaded model offers, read once at load: languages, voices, identity. Read-only.
    Here, below the engine, so that sessions and doors name it without importing the engine."""

    info: ModelInfo
    languages: tuple[Language, ...]
    num_speakers: int
    #: the spoken-language identifier, when one is installed (``Language.detectable`` says what it picks)
    identifier: ModelInfo | None = None
    #: the watermark every speech output carries (scheme and trained checkpoint, e.g.
    #: ``perth-implicit@250000``); "": speech unmarked (``model.watermark`` off)
    speech_watermark: str = ""

    @property
    def detectable_codes(self) -> frozenset[str]:
        return frozenset(lang.code for lang in self.languages if lang.detectable)

    @property
    def text_codes(self) -> frozenset[str]:
        """Languages the text decoder can write (targets, and the transcript's language)."""
        return frozenset(lang.code for lang in self.languages if lang.text_output)

    @property
    def speech_codes(self) -> frozenset[str]:
        """Languages the vocoder can speak."""
        return frozenset(lang.code for lang in self.languages if lang.speech_output)


@dataclass(frozen=True)
class BatchStats:
    """What one engine batch reports to its observers (metrics, tracing, tests). Here, below the
    engine, so that ``observability/`` reads it without importing the engine."""

    size: int
    padded_audio_s: float
    model_ms: float
    queue_ms: tuple[float, ...]
    #: text decoder rows: one per (segment, language), the transcript's included
    text_rows: int = 0
