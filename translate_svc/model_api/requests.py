"""The engine's job vocabulary: what a model is asked (``ModelInput``) and answers (``ModelOutput``),
and the types and constants that travel with them.

Every type here is a frozen dataclass of numpy arrays and plain values: safe to hand from the event
loop to the model thread and back, and the remote engine's wire (``engine/remote/wire.py``) carries
them as they are. ``model_api/runner.py`` holds the Protocols a model implements; ``model_api/rows.py``
plans a batch's decode rows from these inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from translate_svc.model_api.turns import TurnPrior
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    NO_PARTIES,
    SPEED_MAX,
    SPEED_MIN,
    PartySpeech,
    Profanity,
    SpokenUnits,
    Term,
    WordTiming,
    is_speed,
)


@dataclass(frozen=True, eq=False)
class Features:
    """One segment's model input features (``Runner.extract_features``), unpadded."""

    values: np.ndarray  # (frames, feature_dim) float32
    mask: np.ndarray  # (frames,) int


#: ``ModelInput.transcript_language`` with ``detect``: the transcript in the language detected
DETECTED = "*"

#: a text's stand-in for seconds of audio (``ModelInput.input_seconds``): about how many
#: characters a second of speech says. The scheduler budgets a batch and the runner bounds a row's
#: text tokens (``TextCap``) by it, as it does a segment's by its length.
TEXT_CHARS_PER_SECOND = 15.0


@dataclass(frozen=True)
class SourceText:
    """Text to translate instead of speech (``TranslateText``): it goes through the
    model's text encoder, then the same decoder, text-to-unit and vocoder rows as a segment."""

    text: str
    #: the text's language, a model code: the tokenizer's ``src_lang`` (the text encoder needs it)
    language: str
    #: spoken as written, not translated: the input's one target is ``language`` and its row's
    #: tokens are the text's own, forced (a dub's edited line, a studio's subtitle): the speech
    #: says exactly the text (``SeamlessRunner.prefill_texts``)
    as_written: bool = False


class WorkKind(str, Enum):
    """What a ``ModelInput`` asks of the model (``ModelInput.kind``): the runner runs each kind of
    a batch as one pass of its stages."""

    #: a whole segment of speech: its translations, transcript and speech
    SEGMENT = "segment"
    #: text in instead of speech (``ModelInput.text``)
    TEXT = "text"
    #: a re-translation of an open segment in simultaneous mode (``ModelInput.simul``): its
    #: hypothesis, what the agreement commits of it, and the committed words' speech (named so:
    #: not a "step", which is one token of the decoder)
    RETRANSLATION = "retranslation"
    #: kept units spoken again at other rates (``ModelInput.respeak``): the vocoder alone
    RESPEAK = "respeak"


@dataclass(frozen=True)
class SpeechFit:
    """Speech fitted to a time (dubbing to the source's clock): the rate of each spoken
    target is the smallest in ``slowest``..``fastest`` at which its speech lasts at most
    ``budget_ms`` (its natural length / ``budget_ms``, clamped); past ``fastest`` the speech is
    longer than the budget (``ModelOutput.speech_rates`` tells the rate used)."""

    #: the time the speech should fit in: the segment's span and the gap before the next segment
    budget_ms: float
    slowest: float = 0.85
    fastest: float = 1.35

    def __post_init__(self) -> None:
        if not self.budget_ms > 0:
            raise ValueError(f"a fit's budget must be > 0 ms, got {self.budget_ms}")
        if not (is_speed(self.slowest) and is_speed(self.fastest) and self.slowest <= self.fastest):
            raise ValueError(
                f"a fit's rates must satisfy {SPEED_MIN} <= slowest <= fastest <= {SPEED_MAX}, "
                f"got {self.slowest}..{self.fastest}"
            )


@dataclass(frozen=True, eq=False)
class ModelInput:
    """One segment: 16 kHz mono float32 samples and what to produce from them (or a text, or a
    simultaneous step: ``kind``)."""

    audio: np.ndarray
    #: empty: ASR only (the transcript row alone)
    targets: tuple[str, ...]
    #: the transcript's language (a model code, or DETECTED); None: no transcript
    transcript_language: str | None = None
    speech: bool = True
    speaker_id: int = 0
    #: detect the spoken language among these (empty: any the identifier can pick); the transcript
    #: is then decoded in the language chosen; None: no detection
    detect: tuple[str, ...] | None = None
    #: phrases to boost or keep (``types.Term``); empty: the plain greedy decode
    terms: tuple[Term, ...] = ()
    #: computed ahead (off the model thread) when given; else computed in ``run``
    features: Features | None = None
    #: a simultaneous step of an open segment (``audio``: its speech so far) instead of a whole
    #: segment's translation; ``targets`` name the same languages as ``simul.targets``, in order
    simul: SimulRequest | None = None
    #: text in instead of speech (``audio`` then empty): no transcript, detection or simultaneous step
    text: SourceText | None = None
    #: word timings: each spoken translation's words in its speech, the transcript's on the input
    #: (``ModelOutput.words``, ``transcript_words``); in a simultaneous step, each chunk's words
    #: (``SimulRowOutput.chunk_words``) and a final step's transcript words
    words: bool = False
    #: the profanity filter on the transcript and every translation (model/finish/profanity.py); the
    #: speech is made from the decoded tokens without the listed words
    profanity: Profanity = Profanity.OFF
    #: the speaking rate (``types.OutputOptions.speed``): every spoken row's frames per
    #: unit scaled by 1/speed before HiFi-GAN, word timings following; 1: the model's own rate
    speed: float = 1.0
    #: dubbing to the source's clock: each spoken target's rate chosen to fit its speech
    #: into ``fit.budget_ms`` (``SpeechFit``), instead of ``speed``; None: ``speed`` as given
    fit: SpeechFit | None = None
    #: a target's speech again at other rates (a room's listeners who chose a rate),
    #: (target, rate) each: one more vocoder row from the same text-to-unit pass, not a decoder row
    #: (``ModelOutput.renditions``); a segment with speech only, never with ``fit``. With
    #: ``respeak``: the (language, rate) pairs to speak its units at
    renditions: tuple[tuple[str, float], ...] = ()
    #: keep each spoken target's units (``ModelOutput.units``: a final segment's, so that its speech
    #: can be made again later at other rates, as optional work: ``respeak``)
    keep_units: bool = False
    #: units kept from earlier segments (``ModelOutput.units``), spoken again at the rates
    #: ``renditions`` name: the vocoder alone (``WorkKind.RESPEAK``; ``audio`` empty, ``targets``
    #: their languages)
    respeak: tuple[SpokenUnits, ...] = ()
    #: a conversation's segment: ``detect`` is the conversation's languages, ``targets`` those
    #: (then any a room's listeners add: never identified, always translated into) and the
    #: transcript in the one detected: that language's row is the transcript (heard), not a
    #: translation, and the segment is translated into the others (``translated``), so it takes one
    #: row per target whichever is detected (``text_rows``). A stated language (the client's
    #: push-to-talk): no ``detect``, the transcript in that language, one of ``targets``
    conversation: bool = False
    #: a conversation's segment: the previous turn's language, which a short segment or an unsure
    #: identification keeps (``model_api/turns.py``); None: the identifier's top language
    prior: TurnPrior | None = None
    #: a conversation's voice and rate per language spoken (``types.PartySpeech``): the speech made
    #: in a language named there takes its voice and rate instead of ``speaker_id`` and ``speed``
    parties: PartySpeech = NO_PARTIES

    def __post_init__(self) -> None:
        if not is_speed(self.speed):
            raise ValueError(f"speed must be from {SPEED_MIN} to {SPEED_MAX}, got {self.speed}")
        if self.respeak:
            _check_respeak(self)
        elif self.renditions:
            _check_renditions(self)
        if self.simul is not None and tuple(t.language for t in self.simul.targets) != tuple(self.targets):
            raise ValueError("a simultaneous step's targets must be the ModelInput's targets, in order")
        if self.conversation:
            _check_conversation(self)
        elif self.prior is not None or self.parties:
            raise ValueError("a turn prior, a party's voice or rate: a conversation's (ModelInput.conversation)")
        if self.text is not None:
            if self.simul is not None or self.detect is not None or self.transcript_language is not None:
                raise ValueError("a text input has no transcript, detection or simultaneous step")
            if len(self.audio) or not self.targets:
                raise ValueError("a text input has no audio and at least one target")
            if self.text.as_written and (self.targets != (self.text.language,) or self.terms):
                raise ValueError("a text spoken as written has its own language as its one target and no terms")

    def voice(self, language: str) -> int:
        """The voice of the speech made in ``language``: its party's, else ``speaker_id``."""
        return self.parties.voice(language, self.speaker_id)

    def rate(self, language: str) -> float:
        """The speaking rate of the speech made in ``language``: its party's, else ``speed``."""
        return self.parties.speed(language, self.speed)

    @property
    def kind(self) -> WorkKind:
        """The kind of work, read from the fields (``simul``, ``text``; ``__post_init__`` allows
        at most one), so it crosses the workers' wire with them."""
        if self.simul is not None:
            return WorkKind.RETRANSLATION
        if self.text is not None:
            return WorkKind.TEXT
        if self.respeak:
            return WorkKind.RESPEAK
        return WorkKind.SEGMENT

    @property
    def input_seconds(self) -> float:
        """The input's length in seconds: the audio's, or a text's stand-in for it
        (``TEXT_CHARS_PER_SECOND``); what batches are budgeted and text tokens bounded by."""
        if self.text is not None:
            return len(self.text.text) / TEXT_CHARS_PER_SECOND
        if self.respeak:  # the longest speech it makes (the vocoder's cost follows its samples)
            seconds = {u.language: u.seconds for u in self.respeak}
            return max(seconds.get(lang, 0.0) / rate for lang, rate in self.renditions)
        return len(self.audio) / MODEL_SAMPLE_RATE

    @property
    def text_rows(self) -> int:
        """Text decoder rows this input takes (what the scheduler budgets; ``model_api/rows.py``
        plans them), without detecting anything: one per language, the transcript's included (its
        own row in a simultaneous step)."""
        if self.kind is WorkKind.RETRANSLATION:
            return len(self.targets) + int(self.transcript_language is not None)
        if self.respeak:  # no text row: one vocoder row per rendition, budgeted as a row
            return len(self.renditions)
        if self.conversation:  # the detected language's row is the transcript: one row per language
            return len(self.targets)
        extra = self.transcript_language is not None and self.transcript_language not in self.targets
        return len(set(self.targets)) + int(extra)

    def translated(self, spoken: str | None) -> tuple[str, ...]:
        """The languages this input is translated into once its spoken language is known
        (``spoken``: its transcript's, the detected one's where it detects): its targets, less
        ``spoken`` in a conversation (the language heard is the transcript's, not a target)."""
        if self.conversation:
            return tuple(lang for lang in self.targets if lang != spoken)
        return tuple(self.targets)


def _check_conversation(item: ModelInput) -> None:
    """A conversation's segment: two or more distinct languages, identified among those
    (``detect``: each one of its targets), its transcript in the one detected; a whole segment (no
    text, simultaneous step, respeak, renditions or kept units: each has one fixed set of targets)."""
    langs = item.targets
    if len(langs) < 2 or len(set(langs)) != len(langs):
        raise ValueError(f"a conversation has two or more distinct languages (its targets), got {langs}")
    if item.detect is None:  # a stated language: no identification, nothing to lean on
        if item.transcript_language not in langs or item.prior is not None:
            raise ValueError(f"a stated language is one of the conversation's {langs}, without a prior")
    elif len(set(item.detect)) < 2 or not set(item.detect) <= set(langs):
        raise ValueError(f"a conversation detects among two or more of its targets {langs}, got detect={item.detect}")
    elif item.transcript_language != DETECTED:
        raise ValueError("a conversation's transcript is in the language detected (transcript_language DETECTED)")
    if item.prior is not None and item.prior.language not in (item.detect or ()):
        raise ValueError(f"a turn prior's language is one it detects among {item.detect}, got {item.prior.language}")
    if item.kind is not WorkKind.SEGMENT or item.renditions or item.keep_units:
        raise ValueError("a conversation's input is a whole segment, without renditions or kept units")
    for named in ([lang for lang, _ in item.parties.voices], [lang for lang, _ in item.parties.speeds]):
        if any(lang not in langs for lang in named) or len(set(named)) != len(named):
            raise ValueError(f"a party's voice or rate names one of the conversation's {langs} once, got {named}")
    if not all(is_speed(rate) for _, rate in item.parties.speeds) or (item.parties.speeds and item.fit is not None):
        raise ValueError(f"a party's rate is from {SPEED_MIN} to {SPEED_MAX}, and not beside a fit")


def _check_respeak(item: ModelInput) -> None:
    """Kept units spoken again: the vocoder alone, at other rates (a room's listeners'), or at their
    own in another voice (the units' ``speaker_id`` changed: a job's speaker re-voiced)."""
    if (
        len(item.audio)
        or item.simul is not None
        or item.text is not None
        or item.detect is not None
        or item.transcript_language is not None
        or item.fit is not None
        or not item.speech
    ):
        raise ValueError("a respeak has no audio, transcript, detection, text, simultaneous step or fit, and speech")
    spoken = tuple(u.language for u in item.respeak)
    if len(set(spoken)) != len(spoken) or tuple(item.targets) != spoken:
        raise ValueError("a respeak's targets are its units' languages, one each, in order")
    if not item.renditions or len(set(item.renditions)) != len(item.renditions):
        raise ValueError("a respeak names each (language, rate) it makes once, and at least one")
    for lang, rate in item.renditions:
        if lang not in spoken or not is_speed(rate):
            raise ValueError(
                f"a respeak's rendition must be one of its units' languages at a rate from {SPEED_MIN} to "
                f"{SPEED_MAX}, got {lang} at {rate}"
            )


def _check_renditions(item: ModelInput) -> None:
    if item.kind is not WorkKind.SEGMENT or item.fit is not None:
        raise ValueError("renditions are a segment's, without fit")
    if len(set(item.renditions)) != len(item.renditions):
        raise ValueError("a rendition is asked for twice")
    for lang, rate in item.renditions:
        if lang not in item.targets or not is_speed(rate) or rate == item.speed:
            raise ValueError(
                f"a rendition must be a target at a rate from {SPEED_MIN} to {SPEED_MAX} other than speed, "
                f"got {lang} at {rate}"
            )


#: new units before a step's chunk is spoken (Meta's default: 50 units, about 1 s at 50 units/s);
#: the session sets its own (``limits.simultaneous_min_chunk_ms``)
MIN_UNITS = 50
#: the vocoder's units run at 50 a second: 20 ms of speech each
UNIT_MS = 20


def speak_now(new_units: int, min_units: int, final: bool) -> bool:
    """Whether a step's new units make a chunk: at least ``min_units`` of them, or any at the end."""
    return new_units > 0 and (final or new_units >= min_units)


@dataclass(frozen=True)
class SimulTarget:
    """One target language of a simultaneous step and its policy state, kept by the session
    between steps (data, so it crosses the workers' wire): what the listener already has of it,
    and the segment's previous hypotheses that the local agreement compares with this step's."""

    language: str
    #: token ids committed so far (after the language token); the decode starts with them
    committed: tuple[int, ...] = ()
    #: how many of the committed tokens have been spoken (their units were in earlier chunks)
    spoken_tokens: int = 0
    #: how many units the earlier chunks held: the next chunk is the units of t2u over the
    #: committed text from this one on (a segment's chunks add up to t2u over its whole text)
    spoken_units: int = 0
    #: the segment's previous hypotheses' token ids for this target, oldest first (the last
    #: ``agreement - 1`` are used; each starts with ``committed`` when the policy made them)
    recent: tuple[tuple[int, ...], ...] = ()
    #: confidence: each committed token's log-probability from the step that chose it
    #: (``len(committed)`` values); empty: not known (a final's value is then not computed)
    logprobs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.logprobs and len(self.logprobs) != len(self.committed):
            raise ValueError(f"{len(self.logprobs)} logprobs for {len(self.committed)} committed tokens")
        if not 0 <= self.spoken_tokens <= len(self.committed):
            raise ValueError(f"spoken_tokens {self.spoken_tokens} outside 0..{len(self.committed)} committed tokens")
        if self.spoken_units < 0:
            raise ValueError(f"spoken_units must be >= 0, got {self.spoken_units}")


@dataclass(frozen=True)
class SimulRequest:
    """A simultaneous step: re-translate the open speech per target with its committed
    tokens forced, commit by local agreement (``model_api/agreement.py``) inside the step, and speak
    the newly committed tokens once ``min_units`` units are new. ``final``: the segment closed:
    commit each target's whole hypothesis and speak the rest."""

    targets: tuple[SimulTarget, ...]
    final: bool = False
    min_units: int = MIN_UNITS
    #: LocalAgreement's n: consecutive hypotheses that must agree on a word
    agreement: int = 2
    hold_last_word: bool = True

    def __post_init__(self) -> None:
        if self.min_units < 0:
            raise ValueError(f"min_units must be >= 0, got {self.min_units}")
        if isinstance(self.agreement, bool) or self.agreement < 1:
            raise ValueError(f"agreement must be an integer >= 1, got {self.agreement!r}")
        if len({t.language for t in self.targets}) != len(self.targets):
            raise ValueError("a simultaneous step names each target language once")


@dataclass(frozen=True, eq=False)
class SimulRowOutput:
    """One target's result of a simultaneous step."""

    language: str
    #: this step's hypothesis: the committed tokens, then the greedy continuation (no EOS)
    token_ids: tuple[int, ...]
    #: the hypothesis as the runner writes text (special tokens skipped)
    text: str
    #: indices into ``token_ids`` where a word starts: where a commit may end
    word_starts: tuple[int, ...]
    #: the committed tokens after this step (the input's, the policy's, or all when final)
    committed: tuple[int, ...]
    committed_text: str
    #: units of t2u over ``committed`` (0 without speech)
    units_total: int
    #: the chunk: units ``[the target's spoken_units, units_total)`` of that t2u run; empty
    #: when nothing is spoken in this step
    chunk_units: tuple[int, ...]
    #: the chunk's float32 waveform at the model's rate; None when nothing is spoken
    chunk: np.ndarray | None
    #: committed tokens spoken after this step (``len(committed)`` once a chunk is spoken)
    spoken_tokens: int
    #: units spoken after this step (``units_total`` once a chunk is spoken)
    spoken_units: int = 0
    #: with ``ModelInput.words``: the words spoken in ``chunk`` (ms from its first sample, from
    #: t2u's and the vocoder's durations: model/finish/timings.py ``chunk_words``): the committed words
    #: past the ``spoken_tokens`` the step started from, so each committed word is in one chunk
    chunk_words: tuple[WordTiming, ...] = ()
    #: confidence: each of ``committed``'s log-probability from the step that chose it
    #: (the target's ``logprobs``, then this step's values of the tokens it committed); empty: not known
    logprobs: tuple[float, ...] = ()
    #: a final step's: the log-probability of the end of text its decode chose (None: it stopped
    #: at its length cap, or not computed); the final's mean counts it as a segment's does
    end_logprob: float | None = None
    #: the speaking rate ``chunk`` was made at (its step's ``ModelInput.speed``); None:
    #: no chunk, or a runner that does not apply rates
    chunk_rate: float | None = None


@dataclass(frozen=True, eq=False)
class Rendition:
    """A target's speech again at another rate (``ModelInput.renditions``), from the same units."""

    language: str
    rate: float
    #: float32 at MODEL_SAMPLE_RATE
    waveform: np.ndarray
    #: with ``ModelInput.words``: each word of the target's text in ``waveform``
    words: tuple[WordTiming, ...] = ()


@dataclass(frozen=True, eq=False)
class ModelOutput:
    transcript: str | None
    texts: dict[str, str]
    #: language -> float32 waveform at MODEL_SAMPLE_RATE (absent when speech was not asked for)
    waveforms: dict[str, np.ndarray] = field(default_factory=dict)
    #: with ``detect``: each candidate's probability (the chosen one is the highest, unless a
    #: conversation's turn prior kept another: ``spoken``)
    detected: dict[str, float] | None = None
    #: the language the transcript was decoded in (a detected one as chosen: ``RowPlan.spoken``);
    #: None: no transcript, or a model that does not say
    spoken: str | None = None
    #: the batch's time in text-to-unit and the vocoder, and in language identification
    speech_ms: float = 0.0
    language_id_ms: float = 0.0
    #: a simultaneous step's result per target (``ModelInput.simul``); then ``texts`` hold each
    #: target's committed text (a final step's: the whole text), ``waveforms`` stay empty (the
    #: chunks are in here) and ``transcript`` is the unforced transcript row's
    simul: dict[str, SimulRowOutput] | None = None
    #: with ``ModelInput.words``: per target with speech, each word of its text in its waveform
    #: (ms from its first sample, from the model's durations: model/finish/timings.py)
    words: dict[str, tuple[WordTiming, ...]] = field(default_factory=dict)
    #: with ``ModelInput.words``: the transcript's words, ms from the input's first sample
    transcript_words: tuple[WordTiming, ...] = ()
    #: confidence: the transcript's mean token log-probability (the tokens the decode
    #: chose, EOS included, under the model's own distribution); None: not computed
    transcript_logprob: float | None = None
    #: the same per target language (absent: not computed)
    logprobs: dict[str, float] = field(default_factory=dict)
    #: the transcript's text tokens as the model chose them: each token's text (SentencePiece's
    #: word marker as a space) and log-probability (OpenAI's ``logprobs``); empty where not
    #: computed or where the profanity filter is on (a token would show a listed word)
    transcript_tokens: tuple[tuple[str, float], ...] = ()
    #: the rate each spoken target's speech was made at: ``ModelInput.speed``, or the
    #: rate ``ModelInput.fit`` chose; absent: no speech for that target
    speech_rates: dict[str, float] = field(default_factory=dict)
    #: each ``ModelInput.renditions`` spoken (absent: its target had no speech)
    renditions: tuple[Rendition, ...] = ()
    #: with ``ModelInput.keep_units``: each spoken target's units, to speak again later (``respeak``)
    units: tuple[SpokenUnits, ...] = ()
