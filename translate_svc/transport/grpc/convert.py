"""protobuf <-> domain conversion: every wire message is parsed into, or built from, a domain object here.

The gRPC door's only knowledge of the wire types besides the servicer's method table, and the
option messages it shares with the jobs door's gRPC service (``../proto_options.py``: output
options, a dub's fit, the ear's fields).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from google.rpc import code_pb2, status_pb2

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.limits import OPUS_RATE  # Opus's clock: the OPUS stream timeline, Opus speech
from translate_svc.errors import ErrorCode, InvalidInput
from translate_svc.glossaries.naming import glossary_ids
from translate_svc.session.events import (
    AudioIn,
    Draining,
    EagerEndOfTurn,
    Flush,
    Resume,
    RoomJoin,
    SpeechEvent,
    StreamConfig,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
    TurnResumed,
    Update,
    Updated,
)
from translate_svc.session.rooms.listener import ListenEvent, ListenStarted, OutputDropped, RoomOutput
from translate_svc.session.task.counts import check_counts, split_term_counts
from translate_svc.settings import LimitsSettings
from translate_svc.transport.grpc.server_info import limits_to_pb, model_card_to_pb
from translate_svc.transport.proto_options import (
    channel_mode,
    ear_options,
    ear_to_pb,
    output_options,
    output_options_to_pb,
)
from translate_svc.transport.rpc_errors import RPC_CODES, error_status
from translate_svc.types import (
    DEFAULT_TERM_WEIGHT,
    NO_PARTIES,
    AudioEncoding,
    AudioFormat,
    Commit,
    InterimResult,
    LanguageSource,
    PartySpeech,
    SegmentResult,
    SimultaneousOptions,
    Term,
    Transcript,
    Translation,
    WordTiming,
)
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.wire.pcm import float_to_pcm16

_ENCODINGS = {
    pb.LINEAR16: AudioEncoding.LINEAR16,
    pb.FLOAT32: AudioEncoding.FLOAT32,
    pb.MULAW: AudioEncoding.MULAW,
    pb.ALAW: AudioEncoding.ALAW,
    pb.CONTAINER: AudioEncoding.CONTAINER,
    pb.OPUS: AudioEncoding.OPUS,
}
_ENCODINGS_BACK = {v: k for k, v in _ENCODINGS.items()}

#: google.rpc.Code for each domain error code (also used for per-segment status).


def audio_format(msg: pb.AudioFormat, field: str) -> AudioFormat:
    if msg.encoding not in _ENCODINGS:
        names = ", ".join(pb.AudioEncoding.Name(k) for k in _ENCODINGS)
        raise InvalidInput(f"{field}.encoding is {'unset' if msg.encoding == 0 else msg.encoding}: set one of {names}")
    encoding = _ENCODINGS[msg.encoding]
    rate = msg.sample_rate_hz or (OPUS_RATE if encoding is AudioEncoding.OPUS else 0)
    return AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=msg.channels or 1)


def audio_format_to_pb(fmt: AudioFormat) -> pb.AudioFormat:
    return pb.AudioFormat(
        encoding=_ENCODINGS_BACK[fmt.encoding], sample_rate_hz=fmt.sample_rate_hz, channels=fmt.channels
    )


def detection(msg: pb.LanguageDetection, has: bool) -> list[str] | None:
    """The candidates of an enabled LanguageDetection (empty: any); None when off."""
    return list(msg.candidates) if has and msg.enabled else None


def detection_to_pb(detect: tuple[str, ...] | None) -> pb.LanguageDetection | None:
    return None if detect is None else pb.LanguageDetection(enabled=True, candidates=detect)


def conversation(msg: pb.TranslateRequest | pb.StreamingConfig | pb.StreamUpdate) -> tuple[str, ...] | None:
    """A request's conversation languages (checked in ``session/task/conversation.py``); None: unset."""
    return tuple(msg.conversation.languages) if msg.HasField("conversation") else None


def stated_language(msg: pb.TranslateRequest | pb.StreamingConfig | pb.StreamUpdate) -> str | None:
    """A conversation's stated language (checked with its languages); None: unset or empty."""
    return (msg.conversation.stated_language or None) if msg.HasField("conversation") else None


def parties(msg: pb.TranslateRequest | pb.StreamingConfig | pb.StreamUpdate) -> PartySpeech:
    """A conversation's voices and rates per language (checked with its languages), sorted by
    language (a map has no order of its own); a rate rounded as ``output.speed`` is; no more of
    either than the conversation has languages (counted before any is read)."""
    if not msg.HasField("conversation"):
        return NO_PARTIES
    talk = msg.conversation
    for name, named in (("voices", talk.voices), ("speeds", talk.speeds)):
        if len(named) > len(talk.languages):
            raise InvalidInput(
                f"conversation.{name} has {len(named)} entries for {len(talk.languages)} languages: "
                "one a language at most"
            )
    return PartySpeech(
        tuple(sorted(talk.voices.items())), tuple((lang, round(rate, 6)) for lang, rate in sorted(talk.speeds.items()))
    )


#: ``DetectedLanguage.source`` on the wire
SOURCES = {
    LanguageSource.IDENTIFIED: pb.DetectedLanguage.IDENTIFIED,
    LanguageSource.PREVIOUS_TURN: pb.DetectedLanguage.PREVIOUS_TURN,
    LanguageSource.STATED: pb.DetectedLanguage.STATED,
}


def check_lists(
    msg: pb.StreamingConfig | pb.TranslateRequest | pb.TranslateTextRequest, limits: LimitsSettings
) -> None:
    """A request's lists (texts, targets, detection candidates, terms) counted against their
    limits before any element is converted (``session.task.check_counts``; security finding F3)."""
    detect = None if isinstance(msg, pb.TranslateTextRequest) else msg.language_detection
    talk = None if isinstance(msg, pb.TranslateTextRequest) else msg.conversation
    others, glossary = split_term_counts(
        limits, len(msg.terms), lambda: sum(t.kind == pb.Term.TRANSLATE for t in msg.terms)
    )
    check_counts(
        limits,
        texts=len(msg.texts) if isinstance(msg, pb.TranslateTextRequest) else 0,
        targets=len(msg.target_languages),
        candidates=len(detect.candidates) if detect is not None and detect.enabled else 0,
        terms=others,
        glossary=glossary,
        conversation=len(talk.languages) if talk is not None else 0,
    )


def terms(msgs: Sequence[pb.Term]) -> tuple[Term, ...]:
    """Term messages as the domain's (kind and weight defaults filled in; checked in session.task)."""
    out = []
    for n, t in enumerate(msgs):
        if t.kind not in (pb.Term.KIND_UNSPECIFIED, pb.Term.BOOST, pb.Term.KEEP, pb.Term.TRANSLATE):
            raise InvalidInput(f"terms[{n}].kind is {t.kind}: use BOOST, KEEP or TRANSLATE")
        if t.kind == pb.Term.TRANSLATE:
            if t.weight:
                raise InvalidInput(f"terms[{n}].weight is {t.weight:g}: a TRANSLATE term takes no weight (leave it 0)")
            out.append(
                Term(
                    t.phrase,
                    glossary=True,
                    translation=t.translation,
                    target_language=t.target_language,
                    ignore_case=t.ignore_case,
                )
            )
            continue
        if t.translation or t.target_language or t.ignore_case:
            field = "translation" if t.translation else "target_language" if t.target_language else "ignore_case"
            raise InvalidInput(
                f"terms[{n}].{field} is set on a {pb.Term.Kind.Name(t.kind)} term: it belongs to a glossary "
                "entry, set kind TRANSLATE (or leave it unset)"
            )
        keep = t.kind == pb.Term.KEEP
        out.append(Term(t.phrase, keep, t.weight or DEFAULT_TERM_WEIGHT))
    return tuple(out)


def terms_to_pb(ts: Sequence[Term]) -> list[pb.Term]:
    return [
        pb.Term(
            phrase=t.phrase,
            kind=pb.Term.TRANSLATE,
            translation=t.translation,
            target_language=t.target_language,
            ignore_case=t.ignore_case,
        )
        if t.glossary
        else pb.Term(phrase=t.phrase, kind=pb.Term.KEEP if t.keep else pb.Term.BOOST, weight=0 if t.keep else t.weight)
        for t in ts
    ]


#: VadOptions fields, named as in the segmenter's config (SegmenterConfig)
_VAD_FIELDS = (
    "threshold",
    "min_silence_ms",
    "speech_pad_ms",
    "min_speech_ms",
    "max_segment_ms",
    "eagerness",
    "eager_threshold",
)


def vad_settings(msg: pb.VadOptions, defaults: SegmenterConfig) -> SegmenterConfig:
    """Stream/request overrides on top of the server defaults; the config checks them itself."""
    overrides = {f: getattr(msg, f) for f in _VAD_FIELDS if msg.HasField(f)}
    try:
        config = dataclasses.replace(defaults, **overrides)
        if "eager_threshold" in overrides:
            config.check_eager()
        return config
    except InvalidInput as e:  # VadConfigError: names each bad field, its value and its range
        raise InvalidInput(f"invalid VAD options: {e.message}") from None


def vad_settings_to_pb(v: SegmenterConfig) -> pb.VadOptions:
    return pb.VadOptions(**{f: getattr(v, f) for f in _VAD_FIELDS})


_END_REASONS = {
    None: pb.StreamEnd.HALF_CLOSE,
    "idle_timeout": pb.StreamEnd.IDLE_TIMEOUT,
    "max_stream_duration": pb.StreamEnd.MAX_STREAM_DURATION,
    "draining": pb.StreamEnd.DRAINING,
    "revoked": pb.StreamEnd.REVOKED,
    "quota": pb.StreamEnd.QUOTA,
    "error": pb.StreamEnd.ERROR,
    "engine_failed": pb.StreamEnd.ENGINE_FAILED,
}


def stream_end_to_pb(ev: StreamEnded) -> pb.StreamEnd:
    return pb.StreamEnd(
        segments_total=ev.segments_total,
        audio_received_ms=ev.audio_received_ms,
        reason=_END_REASONS[ev.reason],
        audio_filled_ms=ev.audio_filled_ms,
        packets_reordered=ev.packets_reordered,
        packets_duplicate=ev.packets_duplicate,
        packets_late=ev.packets_late,
        audio_concealed_ms=ev.audio_concealed_ms,
        resume_offset_ms=ev.resume_offset_ms,
    )


def pcm16(audio: np.ndarray) -> bytes:
    return float_to_pcm16(audio).astype("<i2").tobytes()


def segment_result_to_pb(r: SegmentResult) -> pb.SegmentResult:
    msg = pb.SegmentResult(
        segment_id=r.segment_id,
        start_ms=r.start_ms,
        end_ms=r.end_ms,
        timing=pb.Timing(
            queue_ms=r.timing.queue_ms,
            model_ms=r.timing.model_ms,
            total_ms=r.timing.total_ms,
            vad_wait_ms=r.timing.vad_wait_ms,
            speech_ms=r.timing.speech_ms,
            language_id_ms=r.timing.language_id_ms,
        ),
        status=status_pb2.Status(code=code_pb2.OK)
        if r.error is None
        else status_pb2.Status(code=RPC_CODES[ErrorCode(r.error.code)], message=r.error.message),
    )
    if r.detected is not None:
        msg.detected_language.language = r.detected.language
        msg.detected_language.scores.extend(pb.LanguageScore(language=c, probability=p) for c, p in r.detected.scores)
        msg.detected_language.source = SOURCES[r.detected.source]
    _add_texts(msg, r.transcript, r.translations)
    msg.speech_in_commits = r.speech_in_commits
    msg.speaker, msg.channel = r.speaker, r.channel
    msg.speakers_revised.extend(pb.SpeakerRevision(segment_id=i, speaker=s) for i, s in r.speakers_revised)
    return msg


def text_result_to_pb(r: SegmentResult) -> pb.TextResult:
    """A text's result (``session.text``: a SegmentResult without a span) as the wire's TextResult."""
    seg = segment_result_to_pb(r)
    timing = pb.Timing(
        queue_ms=seg.timing.queue_ms,
        model_ms=seg.timing.model_ms,
        total_ms=seg.timing.total_ms,
        speech_ms=seg.timing.speech_ms,
    )
    return pb.TextResult(translations=seg.translations, timing=timing, status=seg.status)


def commit_to_pb(c: Commit) -> pb.Commit:
    t = c.translation
    msg = pb.Commit(
        segment_id=c.segment_id,
        target_language=t.target_language,
        text=t.text,
        source_ms=c.source_ms,
        final=c.final,
        channel=c.channel,
    )
    if t.audio is not None and len(t.audio):  # an empty chunk is no chunk: the field stays absent
        _speech_to_pb(t, msg.speech)
    msg.words.extend(words_to_pb(t.words))
    if t.avg_logprob is not None:
        msg.avg_logprob = t.avg_logprob
    return msg


def interim_to_pb(r: InterimResult) -> pb.InterimResult:
    msg = pb.InterimResult(
        segment_id=r.segment_id,
        start_ms=r.start_ms,
        end_ms=r.end_ms,
        timing=pb.Timing(queue_ms=r.timing.queue_ms, model_ms=r.timing.model_ms, total_ms=r.timing.total_ms),
        channel=r.channel,
    )
    _add_texts(msg, r.transcript, r.translations)
    return msg


def _add_texts(
    msg: pb.SegmentResult | pb.InterimResult, transcript: Transcript | None, translations: tuple[Translation, ...]
) -> None:
    if transcript is not None:
        msg.transcript.language = transcript.language
        msg.transcript.text = transcript.text
        msg.transcript.words.extend(words_to_pb(transcript.words))
        if transcript.avg_logprob is not None:
            msg.transcript.avg_logprob = transcript.avg_logprob
    for t in translations:
        out = msg.translations.add(target_language=t.target_language, text=t.text, stable_text=t.stable_text)
        out.words.extend(words_to_pb(t.words))
        if t.avg_logprob is not None:
            out.avg_logprob = t.avg_logprob
        if t.audio is not None:
            _speech_to_pb(t, out.audio)
        if t.speech_rate is not None:
            out.speech_rate = t.speech_rate
        if t.overlap_ms is not None:
            out.overlap_ms = t.overlap_ms


def words_to_pb(words: Sequence[WordTiming]) -> list[pb.WordTiming]:
    return [
        pb.WordTiming(word=w.word, start_ms=w.start_ms, end_ms=w.end_ms, speaker=w.speaker, avg_logprob=w.logprob)
        for w in words
    ]


def _speech_to_pb(t: Translation, audio: pb.SynthesizedAudio) -> None:
    """``t``'s speech into ``audio``: PCM16 bytes, or its Opus packets (nothing when it has none)."""
    if t.audio is None:
        return
    audio.sample_rate_hz = t.sample_rate_hz
    audio.num_samples = len(t.audio)
    audio.duration_ms = round(len(t.audio) * 1000 / t.sample_rate_hz)
    if t.opus is None:
        audio.encoding = pb.SPEECH_ENCODING_LINEAR16
        audio.content = pcm16(t.audio)
    else:
        audio.encoding = pb.SPEECH_ENCODING_OPUS
        audio.opus_pre_skip = t.opus.pre_skip
        audio.opus_packets.extend(pb.OpusPacket(data=p, duration_samples=_OPUS_FRAME) for p in t.opus.packets)


#: samples per Opus output packet at 48 kHz (20 ms)
_OPUS_FRAME = 960


# -- the stream: requests in, events out --------------------------------------------------------


def stream_request(
    msg: pb.StreamingTranslateRequest, vad_defaults: SegmenterConfig, limits: LimitsSettings
) -> StreamRequest:
    """One StreamingTranslate message -> its domain request (wire-level mistakes: InvalidInput). An
    update's targets are checked by the stream (``session/task/change.py``, counted first): a bad
    update is answered, the stream goes on; the message holding them is small (``calls.config_message_bytes``)."""
    kind = msg.WhichOneof("request")
    if kind == "audio":
        return AudioIn(msg.audio)
    if kind == "packet":
        p = msg.packet
        return AudioIn(p.data, p.timestamp if p.HasField("timestamp") else None, field="packet")
    if kind == "control":
        if msg.control != pb.FLUSH:
            raise InvalidInput(f"unknown control {msg.control}: the only control is FLUSH")
        return Flush()
    if kind == "config":
        return stream_config(msg.config, vad_defaults, limits)
    if kind == "update":
        u = msg.update
        return Update(
            tuple(u.targets.languages) if u.HasField("targets") else None,
            u.speaker_id if u.HasField("speaker_id") else None,
            round(u.speed, 6) if u.HasField("speed") else None,  # checked with the update (``retarget``)
            conversation(u),  # counted and checked with the update, as targets are
            stated_language(u),
            parties(u),
        )
    raise InvalidInput("empty request message: set one of config, audio, packet, control or update")


def stream_config(cfg: pb.StreamingConfig, vad_defaults: SegmenterConfig, limits: LimitsSettings) -> StreamConfig:
    check_lists(cfg, limits)
    resume = None
    if cfg.HasField("resume"):
        r = cfg.resume
        resume = Resume(r.resume_token, r.next_segment_id, r.offset_ms, r.lead_in_ms)
    return StreamConfig(
        format=audio_format(cfg.format, "config.format"),
        source_language=cfg.source_language,
        target_languages=tuple(cfg.target_languages),
        output=output_options(cfg.output, cfg.HasField("output")),
        vad=vad_settings(cfg.vad, vad_defaults),
        interim_interval_ms=cfg.interim_interval_ms,
        resume=resume,
        detect=_tuple(detection(cfg.language_detection, cfg.HasField("language_detection"))),
        terms=terms(cfg.terms),
        simultaneous=simultaneous(cfg.simultaneous, cfg.HasField("simultaneous")),
        room=RoomJoin(cfg.room.name, cfg.room.participant) if cfg.HasField("room") else None,
        ear=ear_options(cfg, "config"),
        glossaries=glossary_ids(cfg.glossaries),
        conversation=conversation(cfg),
        stated_language=stated_language(cfg),
        parties=parties(cfg),
        separate_channels=channel_mode(cfg.channel_mode, "config.channel_mode"),
        turn_events=True,
    )


def simultaneous(msg: pb.SimultaneousConfig, has: bool) -> SimultaneousOptions | None:
    """An enabled SimultaneousConfig with its defaults filled in; None when off. Only the shape is
    checked here (no negative numbers, no values without ``enabled``); the ranges, which the
    server's limits set, are checked when the stream opens (``session/task/checks.py``)."""
    if not has or not msg.enabled:
        if has and (msg.step_ms or msg.agreement):
            raise InvalidInput(
                "config.simultaneous sets step_ms or agreement but enabled is false: set "
                "simultaneous.enabled=true to turn simultaneous mode on (or leave simultaneous unset)"
            )
        return None
    d = SimultaneousOptions()
    if msg.step_ms < 0:
        raise InvalidInput(
            f"config.simultaneous.step_ms is {msg.step_ms}: use 0 (the server's default, {d.step_ms} ms) or a "
            "value within ServerLimits.min_simultaneous_step_ms..max_simultaneous_step_ms"
        )
    if msg.agreement < 0:
        raise InvalidInput(
            f"config.simultaneous.agreement is {msg.agreement}: use 0 (the server's default, {d.agreement}) or "
            "1..ServerLimits.max_simultaneous_agreement"
        )
    return SimultaneousOptions(step_ms=msg.step_ms or d.step_ms, agreement=msg.agreement or d.agreement)


def simultaneous_to_pb(o: SimultaneousOptions | None) -> pb.SimultaneousConfig | None:
    return None if o is None else pb.SimultaneousConfig(enabled=True, step_ms=o.step_ms, agreement=o.agreement)


def _tuple(x: list[str] | None) -> tuple[str, ...] | None:
    return None if x is None else tuple(x)


def stream_started_to_pb(s: StreamStarted) -> pb.StreamStarted:
    resume = None
    if s.resume is not None:
        resume = pb.ResumeFrom(
            resume_token=s.resume.token, next_segment_id=s.resume.next_segment_id, offset_ms=s.resume.offset_ms
        )
    talk = s.task.conversation  # echoed as sent: its languages, without the targets and detection it runs as
    started = pb.StreamStarted(
        session_id=s.session_id,
        config=pb.StreamingConfig(
            format=audio_format_to_pb(s.format),
            source_language=s.task.source_language or "",
            target_languages=s.task.target_languages if talk is None else (),
            output=output_options_to_pb(s.task.output),
            vad=vad_settings_to_pb(s.vad),
            interim_interval_ms=s.interim_interval_ms,
            resume=resume,
            language_detection=detection_to_pb(s.task.detect) if talk is None else None,
            conversation=None
            if talk is None
            else pb.Conversation(
                languages=talk,
                stated_language=s.task.stated_language or "",
                voices=dict(s.task.parties.voices),
                speeds=dict(s.task.parties.speeds),
            ),
            terms=terms_to_pb(s.task.terms[: len(s.task.terms) - s.task.stored_terms]),  # its own, not a glossary's
            simultaneous=simultaneous_to_pb(s.task.simultaneous),
            channel_mode=pb.CHANNEL_MODE_SEPARATE if s.separate_channels else pb.CHANNEL_MODE_MIXED,
        ),
        model=model_card_to_pb(s.card),
        limits=limits_to_pb(s.limits),
        resume_token=s.resume_token,
        notices=s.notices,
    )
    ear_to_pb(s.task.ear, started.config)
    return started


def stream_event_to_pb(ev: StreamStarted | StreamEvent) -> pb.StreamingTranslateResponse:
    if isinstance(ev, SegmentResult):
        return pb.StreamingTranslateResponse(segment=segment_result_to_pb(ev))
    if isinstance(ev, Commit):
        return pb.StreamingTranslateResponse(commit=commit_to_pb(ev))
    if isinstance(ev, InterimResult):
        return pb.StreamingTranslateResponse(interim=interim_to_pb(ev))
    if isinstance(ev, SpeechEvent):
        kind = pb.SpeechEvent.SPEECH_STARTED if ev.started else pb.SpeechEvent.SPEECH_ENDED
        return pb.StreamingTranslateResponse(
            speech_event=pb.SpeechEvent(type=kind, offset_ms=ev.offset_ms, channel=ev.channel)
        )
    if isinstance(ev, EagerEndOfTurn):
        return pb.StreamingTranslateResponse(
            eager_end_of_turn=pb.EagerEndOfTurn(segment_id=ev.segment_id, start_ms=ev.start_ms, end_ms=ev.end_ms)
        )
    if isinstance(ev, TurnResumed):
        return pb.StreamingTranslateResponse(
            turn_resumed=pb.TurnResumed(segment_id=ev.segment_id, offset_ms=ev.offset_ms)
        )
    if isinstance(ev, Draining):
        return pb.StreamingTranslateResponse(
            draining=pb.Draining(deadline_unix_ms=ev.deadline_unix_ms, remaining_ms=ev.remaining_ms)
        )
    if isinstance(ev, StreamStarted):
        return pb.StreamingTranslateResponse(started=stream_started_to_pb(ev))
    if isinstance(ev, Updated):
        ok = status_pb2.Status(code=code_pb2.OK)
        return pb.StreamingTranslateResponse(
            updated=pb.StreamUpdated(
                status=ok if ev.error is None else error_status(ev.error),
                config=stream_started_to_pb(ev.stream).config,
                first_segment_id=ev.first_segment_id,
            )
        )
    return pb.StreamingTranslateResponse(ended=stream_end_to_pb(ev))


def listen_event_to_pb(ev: ListenEvent) -> pb.ListenEvent:
    """A listener's event as the wire's ListenEvent."""
    if isinstance(ev, RoomOutput):
        if isinstance(ev.event, SegmentResult):
            return pb.ListenEvent(segment=segment_result_to_pb(ev.event), speaker=ev.speaker, backlog=ev.backlog)
        return pb.ListenEvent(interim=interim_to_pb(ev.event), speaker=ev.speaker)
    if isinstance(ev, ListenStarted):
        speakers = [pb.RoomSpeaker(id=sid, first_segment_id=first) for sid, first in ev.speakers]
        return pb.ListenEvent(
            started=pb.ListenStarted(
                room=ev.room, language=ev.language, participant=ev.participant, backlog=ev.backlog, speakers=speakers
            )
        )
    if isinstance(ev, OutputDropped):
        return pb.ListenEvent(dropped=pb.ListenDropped(count=ev.count, total=ev.total))
    return pb.ListenEvent(draining=pb.Draining(deadline_unix_ms=ev.deadline_unix_ms, remaining_ms=ev.remaining_ms))
