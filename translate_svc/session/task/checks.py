"""What a request may ask for: languages, output, texts, captions, resume and answer size, checked once.

Every request check of every call kind lives here: a stream's config and update (``resolve_task``,
``retarget``), a clip's (``resolve_task``, ``check_answer_size``), a text call's (``resolve_text``).
The drivers call them with the manager's card and limits (``StreamDriver``, ``ClipDriver``,
``TextDriver``); the manager checks what opening a stream needs (``check_resume``,
``check_captions``). Pure functions of the request, the model's card and the limits; every refusal
is an InvalidInput whose message tells the caller what to send instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

from translate_svc.audio.denoise import PYRNNOISE
from translate_svc.audio.denoise import installed as denoise_installed
from translate_svc.audio.limits import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, OPUS_RATE
from translate_svc.errors import InvalidInput, NotInstalled, shown
from translate_svc.model_api.requests import TEXT_CHARS_PER_SECOND
from translate_svc.session.events import MAX_LEAD_IN_MS, Resume
from translate_svc.session.task.conversation import check_conversation, needs_identifier
from translate_svc.session.task.counts import ANY_CANDIDATE, check_counts, check_list, examples
from translate_svc.session.task.terms import check_glossary, check_keep, check_terms
from translate_svc.settings import LimitsSettings
from translate_svc.speakers.encoder import RESEMBLYZER
from translate_svc.speakers.encoder import installed as speakers_installed
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    NO_EAR,
    NO_PARTIES,
    EarOptions,
    ModelCard,
    OptionError,
    OutputOptions,
    PartySpeech,
    SimultaneousOptions,
    SpeechEncoding,
    Term,
    TranslationTask,
)

#: Translate refuses speech answers that could outgrow the message limit: this many seconds of
#: speech per second of input audio per target are assumed (SeamlessM4T speaks at about the
#: input's pace; see docs/api.md "Limits")
SPEECH_SECONDS_PER_INPUT_SECOND = 1.5


def resolve_task(
    card: ModelCard,
    limits: LimitsSettings,
    source: str,
    targets: list[str],
    output: OutputOptions,
    detect: list[str] | None = None,
    terms: Sequence[Term] = (),
    simultaneous: SimultaneousOptions | None = None,
    ear: EarOptions = NO_EAR,
    conversation: Sequence[str] | None = None,
    stated: str | None = None,
    parties: PartySpeech = NO_PARTIES,
    listened: Sequence[str] = (),
) -> TranslationTask:
    """Check languages and output options against the loaded model and the limits. No targets:
    ASR only. ``detect``: language detection among these candidates (empty: any).
    ``simultaneous``: a stream's simultaneous mode (``check_simultaneous``); ``ear``: noise
    suppression and speaker labels (``check_ear``). ``conversation``: its languages, in place of
    ``targets``, ``source`` and ``detect`` (``task/conversation.py``): the task then detects among
    them and targets them, and each segment is translated into those not detected; ``stated``:
    the conversation's language stated for the coming audio (empty or None: none); ``parties``:
    its voice and rate per language (``types.PartySpeech``), a conversation's only; ``listened``:
    a conversation's room's listeners' languages, its targets after its own (checked as targets)."""
    check_ear(ear)
    text_codes, speech_codes = card.text_codes, card.speech_codes
    talk = None
    if conversation is not None:
        talk = check_conversation(
            card,
            limits,
            conversation,
            source=source,
            targets=targets,
            detect=detect,
            output=output,
            simultaneous=simultaneous,
            stated=stated or None,
            parties=parties,
        )
        listened = [lang for lang in dict.fromkeys(listened) if lang not in talk]
        targets, detect = [*talk, *listened], list(talk)
    elif listened:
        raise ValueError("languages listened in beside a conversation's own need a conversation (TaskChange.listened)")
    elif parties:
        raise InvalidInput(
            "a voice or rate per party is a conversation's: send it inside `conversation`, or set output.speaker_id "
            "and output.speed for every language"
        )
    if detect is not None:
        check_detection(card, limits, source, detect)
    check_terms(terms, limits)
    check_keep(card, terms, source, targets, detect)
    check_glossary(card, terms, source, targets)
    if not targets and not (source or detect is not None):
        raise InvalidInput(
            'target_languages is empty: name at least one target language (e.g. "spa"), or set '
            "source_language (or language_detection) to get the transcript alone (ASR only)"
        )
    if targets and not (output.text or output.speech or output.transcript):
        raise InvalidInput(
            "output asks for nothing: text, speech and transcript are all false; set at least one "
            "(or leave output unset: all three)"
        )
    if not targets and not output.transcript:
        raise InvalidInput(
            "no target_languages and output.transcript is false: nothing to return; ASR only (no "
            "targets) returns the transcript, so leave output.transcript on"
        )
    check_list("target_languages", "target languages", targets, limits.max_target_languages)
    for t in targets:
        if t not in text_codes:
            raise InvalidInput(
                f"unknown target language {shown(t)}: use a code from ListLanguages "
                f"({len(text_codes)} supported, e.g. {examples(text_codes)})"
            )
        if output.speech and t not in speech_codes:
            raise InvalidInput(
                f"target language {shown(t)} has text output only: set output.speech=false or pick a "
                f"language with speech_output in ListLanguages (e.g. {examples(speech_codes)})"
            )
    if source and source not in text_codes:
        raise InvalidInput(
            f"unknown source language {shown(source)}: use a code from ListLanguages "
            f"({len(text_codes)} supported, e.g. {examples(text_codes)})"
        )
    if not MIN_SAMPLE_RATE_HZ <= output.speech_sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"output.speech_sample_rate_hz is {output.speech_sample_rate_hz}: use {MIN_SAMPLE_RATE_HZ}.."
            f"{MAX_SAMPLE_RATE_HZ} (0 means {MODEL_SAMPLE_RATE})"
        )
    if output.speech_encoding is SpeechEncoding.OPUS and output.speech_sample_rate_hz != OPUS_RATE:
        raise InvalidInput(
            f"output.speech_sample_rate_hz is {output.speech_sample_rate_hz}: Opus speech is {OPUS_RATE // 1000} kHz, "
            f"leave it 0 or set {OPUS_RATE}"
        )
    if not 0 <= output.speaker_id < card.num_speakers:
        raise InvalidInput(f"output.speaker_id is {output.speaker_id}: use 0..{card.num_speakers - 1}")
    if output.fit is not None:
        check_dub_fit(output, simultaneous is not None)
    if simultaneous is not None:
        check_simultaneous(simultaneous, targets, output, limits)
        simultaneous = dataclasses.replace(simultaneous, min_chunk_ms=limits.simultaneous_min_chunk_ms)
    if output.transcript and not source and detect is None:
        # no transcript without its language: say so in the resolved config the client sees
        output = dataclasses.replace(output, transcript=False)
    return TranslationTask(
        source_language=source or None,
        target_languages=tuple(targets),
        output=output,
        detect=tuple(detect) if detect is not None else None,
        conversation=talk,
        listened=tuple(listened),
        stated_language=(stated or None) if talk is not None else None,
        parties=parties,
        terms=tuple(terms),
        simultaneous=simultaneous,
        ear=ear,
    )


def check_dub_fit(output: OutputOptions, simultaneous: bool) -> None:
    """Dubbing to the source's clock (``OutputOptions.fit``): a bound of speaking rates,
    on speech, in place of ``speed`` (a rate given beside it would be silently ignored), for a
    whole file's segments (each is held until the next one starts: not simultaneous mode's)."""
    assert output.fit is not None  # its rates checked as it was made (``DubFit``)
    if not output.speech:
        raise InvalidInput("fit fits the translated speech to the source's clock: leave output.speech on, or drop fit")
    if output.speed != 1.0:
        raise InvalidInput(
            f"fit chooses each segment's speaking rate within fit.slowest..fit.fastest: leave output.speed unset "
            f"(it is {output.speed}), or drop fit"
        )
    if simultaneous:
        raise InvalidInput("fit is for whole files (Translate, jobs), not simultaneous mode")


def check_ear(ear: EarOptions) -> None:
    """What the server needs for the ear options a request asks (their values were checked as they
    were made: ``EarOptions``). Either option on a server without its library (pyrnnoise,
    Resemblyzer) is FAILED_PRECONDITION saying what is missing: the server starts without them."""
    if ear.noise_suppression and not denoise_installed():
        raise NotInstalled(
            "noise suppression needs RNNoise (the pyrnnoise wheel's librnnoise), which this server lacks: its "
            f"operator installs it (pip install '{PYRNNOISE}'); ask without noise suppression meanwhile "
            "(noise_suppression, noise_reduction, x_noise_reduction)"
        )
    if ear.speakers and not speakers_installed():
        raise NotInstalled(
            "speaker labels need the Resemblyzer wheel's speaker encoder, which this server lacks: its operator "
            f"installs it (pip install --no-deps {RESEMBLYZER}); ask without speakers meanwhile"
        )


def resolve_text(
    card: ModelCard,
    limits: LimitsSettings,
    texts: Sequence[str],
    source: str,
    targets: list[str],
    output: OutputOptions,
    terms: Sequence[Term] = (),
) -> TranslationTask:
    """Check a text request (``TranslateText``) against the loaded model and the limits: the task
    every text is translated with (its ``source_language`` always set). Counts and lengths come
    first, so that nothing else is looked at in a request over them."""
    if not texts:
        raise InvalidInput("texts is empty: send at least one text to translate")
    check_counts(limits, texts=len(texts))
    for k, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise InvalidInput(
                f"texts[{k}] has {len(text)} characters: at most {limits.max_text_chars} "
                "(ServerLimits.max_text_chars); split it into sentences or paragraphs"
            )
        if not text.strip():
            raise InvalidInput(f"texts[{k}] is blank: every text needs something to translate")
    total = sum(len(t) for t in texts)
    if total > limits.max_text_request_chars:
        raise InvalidInput(
            f"the texts have {total} characters together: at most {limits.max_text_request_chars} per request "
            "(ServerLimits.max_text_request_chars); split them over several calls"
        )
    if not source:
        raise InvalidInput(
            'source_language is empty: name the texts\' language (e.g. "eng"); the text encoder needs it '
            "(there is no language detection for text)"
        )
    if not targets:
        raise InvalidInput('target_languages is empty: name at least one target language (e.g. "spa")')
    if not (output.text or output.speech):
        raise InvalidInput("output asks for nothing: text and speech are both false; set at least one")
    output = dataclasses.replace(output, transcript=False)  # the texts are their own transcript
    task = resolve_task(card, limits, source, targets, output, None, terms)
    _check_text_answer_size(total, task, limits)
    return task


def check_simultaneous(
    options: SimultaneousOptions, targets: Sequence[str], output: OutputOptions, limits: LimitsSettings
) -> None:
    """Simultaneous mode commits translations (text, speech) while speech is open: it needs a
    target, and its step and agreement within the server's limits. Live captions may come with it
    (they show the open speech's tentative words; commits are the words that stay)."""
    least, most = limits.min_simultaneous_step_ms, limits.max_simultaneous_step_ms
    if not least <= options.step_ms <= most:
        raise InvalidInput(
            f"simultaneous.step_ms is {options.step_ms}: use {least}..{most} (this server's limits; the audio "
            "between two translations of the open speech, 1000 is typical)"
        )
    n = limits.max_simultaneous_agreement
    if not 1 <= options.agreement <= n:
        raise InvalidInput(
            f"simultaneous.agreement is {options.agreement}: use 1..{n} (how many consecutive "
            "translations must agree on a word before it is committed; 2 is typical)"
        )
    if not targets:
        raise InvalidInput(
            "simultaneous mode commits translations while speech is open, and target_languages is "
            "empty (ASR only): name a target language, or leave simultaneous unset"
        )
    if not (output.text or output.speech):
        raise InvalidInput(
            "simultaneous mode commits translated text and speech, and output asks for neither: set "
            "output.text or output.speech, or leave simultaneous unset"
        )


def check_detection(card: ModelCard, limits: LimitsSettings, source: str, candidates: list[str]) -> None:
    needs_identifier(card, "language_detection", "source_language")
    if source:
        raise InvalidInput(
            f"source_language is {shown(source)} and language_detection is on: send one of them "
            "(detection picks each segment's source language)"
        )
    check_list(
        "language_detection.candidates",
        "candidate languages",
        candidates,
        limits.max_candidate_languages,
        ANY_CANDIDATE,
    )
    detectable = card.detectable_codes
    for c in candidates:
        if c not in detectable:
            raise InvalidInput(
                f"language_detection.candidates: {shown(c)} is not a language the identifier can pick: "
                f"use codes ListLanguages marks detectable ({len(detectable)}, e.g. {examples(detectable)})"
            )


def check_captions(interim_interval_ms: int, task: TranslationTask, limits: LimitsSettings) -> None:
    least = limits.min_interim_interval_ms
    if interim_interval_ms and not least <= interim_interval_ms <= 60_000:
        raise InvalidInput(f"interim_interval_ms is {interim_interval_ms}: use 0 (no live captions) or {least}..60000")
    if interim_interval_ms and not (task.output.text or task.output.transcript):
        raise InvalidInput("interim_interval_ms needs text: set output.text or output.transcript")


def check_resume(resume: Resume, limits: LimitsSettings) -> None:
    if not (len(resume.token) == 32 and all(c in "0123456789abcdef" for c in resume.token)):
        raise InvalidInput(
            f"resume.resume_token {shown(resume.token)} is not a resume token (32 hex digits): give back "
            "StreamStarted.resume_token of the stream's first call"
        )
    if resume.next_segment_id < 0 or resume.offset_ms < 0:
        raise InvalidInput("resume.next_segment_id and resume.offset_ms must not be negative")
    if not 0 <= resume.lead_in_ms <= MAX_LEAD_IN_MS:
        raise InvalidInput(
            f"resume.lead_in_ms {resume.lead_in_ms} is out of range: use 0..{MAX_LEAD_IN_MS} ms (the SDK sends "
            "1000: enough for the VAD to enter speech in progress as the lost call's did)"
        )
    # a stream is at most max_stream_seconds long, and has at most one segment per millisecond
    most = int(limits.max_stream_seconds * 1000)
    if resume.offset_ms > most or resume.next_segment_id > most:
        raise InvalidInput(
            f"resume.offset_ms {resume.offset_ms} / next_segment_id {resume.next_segment_id}: a stream is at most "
            f"{most} ms long (ServerLimits.max_stream_seconds), so neither can be larger; give back the "
            "values of the stream's last result"
        )


def check_answer_size(duration_s: float, task: TranslationTask, limits: LimitsSettings) -> None:
    """Refuse up front a Translate whose speech could not fit one response message."""
    out = task.output
    if not out.speech:
        return
    speed = out.fit.slowest if out.fit is not None else out.speed  # fitted: at most natural / slowest
    # a conversation's segment is spoken in all its languages but the one detected
    spoken = len(task.target_languages) - (task.conversation is not None)
    per_s = 2 * out.speech_sample_rate_hz * SPEECH_SECONDS_PER_INPUT_SECOND * spoken / speed
    budget = limits.max_message_bytes - 64 * 1024  # room for texts and framing
    if duration_s * per_s > budget:
        fits = budget / per_s
        raise InvalidInput(
            f"a {duration_s:.0f} s clip with speech in {spoken} language(s) at "
            f"{out.speech_sample_rate_hz} Hz may not fit one {limits.max_message_bytes}-byte response: "
            f"send at most {fits:.0f} s, fewer targets or a lower speech_sample_rate_hz, or use StreamingTranslate"
        )


def _check_text_answer_size(chars: int, task: TranslationTask, limits: LimitsSettings) -> None:
    """Refuse up front a text request whose speech could not fit one response message: speech is
    estimated from the texts' stand-in seconds (``TEXT_CHARS_PER_SECOND``) as a clip's from its audio."""
    out = task.output
    if not out.speech:
        return
    per_char = (
        2 * out.speech_sample_rate_hz * SPEECH_SECONDS_PER_INPUT_SECOND * len(task.target_languages) / out.speed
    ) / TEXT_CHARS_PER_SECOND
    budget = limits.max_message_bytes - 64 * 1024  # room for texts and framing
    if chars * per_char > budget:
        raise InvalidInput(
            f"{chars} characters with speech in {len(task.target_languages)} language(s) at "
            f"{out.speech_sample_rate_hz} Hz may not fit one {limits.max_message_bytes}-byte response: send at most "
            f"{int(budget // per_char)} characters per request, fewer targets or a lower speech_sample_rate_hz"
        )


@contextlib.contextmanager
def options_at(prefix: str = "") -> Iterator[None]:
    """Options made in the block (``OutputOptions``, ``DubFit``, ``EarOptions`` check their own
    values) refused as a door's bad input: an ``OptionError`` becomes ``InvalidInput`` naming the
    field where the door's message holds it (``prefix``: ``output.`` makes ``speed`` read
    ``output.speed``)."""
    try:
        yield
    except OptionError as e:
        raise InvalidInput(str(e.under(prefix))) from None
