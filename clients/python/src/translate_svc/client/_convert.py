"""protobuf <-> the SDK's dataclasses: the only SDK module (with the call code) that sees wire types."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import grpc
import numpy as np

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client.room_types import (
    ListenDropped,
    ListenStarted,
    Room,
    RoomCaption,
    RoomSegment,
    RoomSpeaker,
)
from translate_svc.client.types import SAMPLE_BYTES as SAMPLE_BYTES  # re-exported: _audio.py reads it here
from translate_svc.client.types import (
    AudioFormat,
    ClipEncoding,
    Commit,
    Conversation,
    Draining,
    EndReason,
    Interim,
    Language,
    Languages,
    ModelInfo,
    OpusPacket,
    OutputOptions,
    Segment,
    SegmentError,
    ServerLimits,
    SimultaneousOptions,
    SpeechEvent,
    SpeechEventType,
    StreamEncoding,
    StreamEnd,
    StreamUpdated,
    Term,
    TextResult,
    Timing,
    TranslateResult,
    TranslateTextResult,
    Translation,
    VadOptions,
    WordTiming,
)

ENCODINGS: dict[str, pb.AudioEncoding] = {
    "linear16": pb.LINEAR16,
    "float32": pb.FLOAT32,
    "mulaw": pb.MULAW,
    "alaw": pb.ALAW,
    "container": pb.CONTAINER,
    "opus": pb.OPUS,
}
SPEECH_ENCODINGS: dict[str, pb.SpeechEncoding] = {
    "linear16": pb.SPEECH_ENCODING_LINEAR16,
    "opus": pb.SPEECH_ENCODING_OPUS,
}
_REASONS = {
    pb.StreamEnd.HALF_CLOSE: EndReason.HALF_CLOSE,
    pb.StreamEnd.IDLE_TIMEOUT: EndReason.IDLE_TIMEOUT,
    pb.StreamEnd.MAX_STREAM_DURATION: EndReason.MAX_STREAM_DURATION,
    pb.StreamEnd.DRAINING: EndReason.DRAINING,
    pb.StreamEnd.REVOKED: EndReason.REVOKED,
    pb.StreamEnd.QUOTA: EndReason.QUOTA,
    pb.StreamEnd.ERROR: EndReason.ERROR,
    pb.StreamEnd.ENGINE_FAILED: EndReason.ENGINE_FAILED,
}
_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def encoding_pb(name: StreamEncoding | ClipEncoding) -> pb.AudioEncoding:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ValueError(f"unknown audio encoding {name!r}: use one of {', '.join(ENCODINGS)}") from None


def output_pb(out: OutputOptions) -> pb.OutputOptions:
    msg = pb.OutputOptions(
        text=out.text,
        speech=out.speech,
        transcript=out.transcript,
        speech_sample_rate_hz=out.speech_sample_rate,
        speech_encoding=SPEECH_ENCODINGS[out.speech_encoding],
        word_timings=out.word_timings,
    )
    if out.speaker_id is not None:
        msg.speaker_id = out.speaker_id
    if out.speed != 1.0:  # unset: the model's own rate (a message as before rates existed)
        msg.speed = out.speed
    if out.profanity is not None:
        msg.profanity = cast(
            "pb.ProfanityFilter", pb.ProfanityFilter.Value(f"PROFANITY_FILTER_{out.profanity.upper()}")
        )
    return msg


def format_pb(fmt: AudioFormat) -> pb.AudioFormat:
    return pb.AudioFormat(encoding=encoding_pb(fmt.encoding), sample_rate_hz=fmt.sample_rate, channels=fmt.channels)


def vad_pb(vad: VadOptions | None) -> pb.VadOptions | None:
    if vad is None:
        return None
    msg = pb.VadOptions()
    if vad.threshold is not None:
        msg.threshold = vad.threshold
    if vad.min_silence_ms is not None:
        msg.min_silence_ms = vad.min_silence_ms
    if vad.speech_pad_ms is not None:
        msg.speech_pad_ms = vad.speech_pad_ms
    if vad.min_speech_ms is not None:
        msg.min_speech_ms = vad.min_speech_ms
    if vad.max_segment_ms is not None:
        msg.max_segment_ms = vad.max_segment_ms
    if vad.eagerness is not None:
        msg.eagerness = vad.eagerness
    if vad.eager_threshold is not None:
        msg.eager_threshold = vad.eager_threshold
    return msg


def targets_list(targets: str | Sequence[str], *, asr: bool = False) -> list[str]:
    """The target languages (``"spa,fra"`` or a list); none only for ASR (a source or detection)."""
    out = [t.strip() for t in targets.split(",") if t.strip()] if isinstance(targets, str) else list(targets)
    if not out and not asr:
        raise ValueError(
            'name at least one target language, e.g. targets=["spa"]; or, for the transcript alone '
            "(ASR only), targets=() with source= or detect="
        )
    return out


def conversation_pb(conversation: str | Sequence[str] | Conversation) -> pb.Conversation:
    """A conversation's languages (``"eng,spa"``, a list, or a ``Conversation`` with its stated
    language, voices and speeds)."""
    if not isinstance(conversation, Conversation):
        langs = conversation.split(",") if isinstance(conversation, str) else conversation
        return pb.Conversation(languages=[c.strip() for c in langs if c.strip()])
    return pb.Conversation(
        languages=[c.strip() for c in conversation.languages if c.strip()],
        stated_language=conversation.stated or "",
        voices=dict(conversation.voices),
        speeds=dict(conversation.speeds),
    )


def languages_pb(
    targets: str | Sequence[str],
    source: str | None,
    detect: bool | Sequence[str],
    conversation: str | Sequence[str] | Conversation | None,
) -> dict[str, Any]:
    """A request's language fields (``TranslateRequest``'s and ``StreamingConfig``'s): the source,
    the targets (none only for ASR or a conversation), detection, and a conversation's languages
    (``"eng,spa"``, a list or a ``Conversation``; the server refuses it beside targets, a source or
    detection)."""
    talk = conversation_pb(conversation) if conversation is not None else None
    return {
        "source_language": source or "",
        "target_languages": targets_list(targets, asr=bool(source) or detect is not False or talk is not None),
        "language_detection": detection_pb(detect),
        "conversation": talk,
    }


def terms_pb(terms: Sequence[Term | str]) -> list[pb.Term]:
    out = []
    for t in terms:
        term = Term(t) if isinstance(t, str) else t
        if term.glossary:
            out.append(
                pb.Term(
                    phrase=term.phrase,
                    kind=pb.Term.TRANSLATE,
                    weight=term.weight,
                    translation=term.translation,
                    target_language=term.target_language,
                    ignore_case=term.ignore_case,
                )
            )
            continue
        kind = pb.Term.KEEP if term.keep else pb.Term.BOOST
        out.append(pb.Term(phrase=term.phrase, kind=kind, weight=term.weight))
    return out


def simultaneous_pb(simultaneous: bool | SimultaneousOptions) -> pb.SimultaneousConfig | None:
    """``simultaneous``: False (off), True (the server's defaults), or ``SimultaneousOptions``."""
    if simultaneous is False:
        return None
    opts = SimultaneousOptions() if simultaneous is True else simultaneous
    if not isinstance(opts, SimultaneousOptions):
        raise ValueError(f"simultaneous={simultaneous!r}: use True, False or SimultaneousOptions(step_ms, agreement)")
    return pb.SimultaneousConfig(enabled=True, step_ms=opts.step_ms, agreement=opts.agreement)


def room_pb(room: str | Room | None, participant: str | None) -> pb.RoomSpeaking | None:
    """``stream(room=..., participant=...)``: a room's name (with ``participant``), or a ``Room``."""
    if room is None:
        if participant is not None:
            raise ValueError("participant= names you in a room: give room= too")
        return None
    if isinstance(room, Room):
        if participant is not None:
            raise ValueError("give room=Room(name, participant), or room=name with participant=, not both")
        return pb.RoomSpeaking(name=room.name, participant=room.participant)
    if not isinstance(room, str):
        raise ValueError(f"room={room!r}: give the room's name, or a Room(name, participant)")
    r = Room(room, participant or "")
    return pb.RoomSpeaking(name=r.name, participant=r.participant)


def simultaneous(msg: pb.StreamingConfig) -> SimultaneousOptions | None:
    """The simultaneous mode a started stream's config says is in force (None: off)."""
    if not msg.HasField("simultaneous") or not msg.simultaneous.enabled:
        return None
    return SimultaneousOptions(msg.simultaneous.step_ms, msg.simultaneous.agreement)


def detection_pb(detect: bool | Sequence[str]) -> pb.LanguageDetection | None:
    """``detect``: False (off), True (any language the identifier picks), or the candidates."""
    if detect is False:
        return None
    if detect is True:
        return pb.LanguageDetection(enabled=True)
    candidates = [detect] if isinstance(detect, str) else list(detect)
    return pb.LanguageDetection(enabled=True, candidates=candidates)


# -- results --------------------------------------------------------------------------------------


def model_info(msg: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(msg.name, msg.revision, msg.is_test_model, msg.num_speakers)


def limits(msg: pb.ServerLimits) -> ServerLimits:
    return ServerLimits(
        max_target_languages=msg.max_target_languages,
        max_message_bytes=msg.max_message_bytes,
        max_chunk_bytes=msg.max_chunk_bytes,
        max_clip_seconds=msg.max_clip_seconds,
        max_streams=msg.max_streams,
        idle_timeout_seconds=msg.idle_timeout_seconds,
        max_stream_seconds=msg.max_stream_seconds,
        max_unread_results=msg.max_unread_results,
        min_interim_interval_ms=msg.min_interim_interval_ms,
        max_candidate_languages=msg.max_candidate_languages,
        max_terms=msg.max_terms,
        max_term_chars=msg.max_term_chars,
        max_calls_per_connection=msg.max_calls_per_connection,
        max_calls=msg.max_calls,
        connection_idle_seconds=msg.connection_idle_seconds,
        connection_max_age_seconds=msg.connection_max_age_seconds,
        max_translate_calls=msg.max_translate_calls,
        max_stream_message_bytes=msg.max_stream_message_bytes,
        reorder_window_ms=msg.reorder_window_ms,
        stall_close_ms=msg.stall_close_ms,
        config_timeout_ms=msg.config_timeout_ms,
        clip_read_timeout_ms=msg.clip_read_timeout_ms,
        min_simultaneous_step_ms=msg.min_simultaneous_step_ms,
        max_simultaneous_step_ms=msg.max_simultaneous_step_ms,
        max_simultaneous_agreement=msg.max_simultaneous_agreement,
        simultaneous_min_chunk_ms=msg.simultaneous_min_chunk_ms,
        simultaneous_max_segment_ms=msg.simultaneous_max_segment_ms,
        max_texts=msg.max_texts,
        max_text_chars=msg.max_text_chars,
        max_text_request_chars=msg.max_text_request_chars,
        max_receive_message_bytes=msg.max_receive_message_bytes,
        request_read_timeout_ms=msg.request_read_timeout_ms,
        max_unary_calls_per_token=msg.max_unary_calls_per_token,
        max_unary_calls_per_tenant=msg.max_unary_calls_per_tenant,
        max_clip_reads_per_tenant=msg.max_clip_reads_per_tenant,
        max_detect_seconds=msg.max_detect_seconds,
        max_glossary_entries=msg.max_glossary_entries,
    )


def languages(msg: pb.ListLanguagesResponse) -> Languages:
    return Languages(
        tuple(
            Language(lang.code, lang.name, lang.speech_input, lang.text_output, lang.speech_output, lang.detectable)
            for lang in msg.languages
        ),
        model_info(msg.model),
        limits(msg.limits),
        model_info(msg.language_identifier) if msg.HasField("language_identifier") else None,
    )


def _timing(msg: pb.Timing) -> Timing:
    return Timing(msg.queue_ms, msg.model_ms, msg.total_ms, msg.vad_wait_ms, msg.speech_ms, msg.language_id_ms)


def _translation(msg: pb.Translation) -> Translation:
    got = _speech(msg.target_language, msg.text, msg.audio if msg.HasField("audio") else None, msg.words)
    rate = round(msg.speech_rate, 6) if msg.HasField("speech_rate") else None
    return dataclasses.replace(got, avg_logprob=_logprob(msg), speech_rate=rate)


def _logprob(msg: pb.Transcript | pb.Translation | pb.WordTiming | pb.Commit) -> float | None:
    """A message's confidence (``avg_logprob``), None where the server did not set it."""
    return msg.avg_logprob if msg.HasField("avg_logprob") else None


def _words(words: Sequence[pb.WordTiming]) -> tuple[WordTiming, ...]:
    return tuple(WordTiming(w.word, w.start_ms, w.end_ms, w.speaker, _logprob(w)) for w in words)


def _speech(target: str, text: str, a: pb.SynthesizedAudio | None, words: Sequence[pb.WordTiming] = ()) -> Translation:
    """A translation (or a commit's delta) with its speech, if any: PCM as float32, or Opus packets."""
    timed = _words(words)
    if a is None:
        return Translation(target, text, words=timed)
    if a.encoding == pb.SPEECH_ENCODING_OPUS or a.opus_packets:
        return Translation(
            target,
            text,
            sample_rate=a.sample_rate_hz,
            num_samples=a.num_samples,
            opus_packets=tuple(OpusPacket(p.data, p.duration_samples) for p in a.opus_packets),
            opus_pre_skip=a.opus_pre_skip,
            words=timed,
        )
    audio = np.frombuffer(a.content, "<i2").astype(np.float32) / np.float32(32768.0)
    return Translation(
        target,
        text,
        audio=audio,
        sample_rate=a.sample_rate_hz,
        num_samples=a.num_samples or len(audio),
        words=timed,
    )


def text_result(text: str, msg: pb.TextResult) -> TextResult:
    error = None
    if msg.HasField("status") and msg.status.code != 0:
        error = SegmentError(_CODE_NAMES.get(msg.status.code, str(msg.status.code)), msg.status.message)
    return TextResult(text, tuple(_translation(t) for t in msg.translations), _timing(msg.timing), error)


def translate_text_result(texts: Sequence[str], msg: pb.TranslateTextResponse) -> TranslateTextResult:
    return TranslateTextResult(
        tuple(text_result(t, r) for t, r in zip(texts, msg.results, strict=True)), model_info(msg.model)
    )


def segment(msg: pb.SegmentResult) -> Segment:
    error = None
    if msg.HasField("status") and msg.status.code != 0:
        error = SegmentError(_CODE_NAMES.get(msg.status.code, str(msg.status.code)), msg.status.message)
    return Segment(
        segment_id=msg.segment_id,
        start_ms=msg.start_ms,
        end_ms=msg.end_ms,
        transcript=msg.transcript.text if msg.HasField("transcript") else None,
        translations=tuple(_translation(t) for t in msg.translations),
        timing=_timing(msg.timing),
        error=error,
        transcript_language=msg.transcript.language if msg.HasField("transcript") else None,
        language_scores=tuple((s.language, s.probability) for s in msg.detected_language.scores),
        speech_in_commits=msg.speech_in_commits,
        transcript_words=_words(msg.transcript.words) if msg.HasField("transcript") else (),
        speaker=msg.speaker,
        transcript_avg_logprob=_logprob(msg.transcript) if msg.HasField("transcript") else None,
        speakers_revised=tuple((r.segment_id, r.speaker) for r in msg.speakers_revised),
        **_chosen(msg),
        channel=msg.channel,
    )


def commit(msg: pb.Commit) -> Commit:
    speech = _speech(msg.target_language, msg.text, msg.speech if msg.HasField("speech") else None, msg.words)
    speech = dataclasses.replace(speech, avg_logprob=_logprob(msg))
    return Commit(
        segment_id=msg.segment_id, translation=speech, source_ms=msg.source_ms, final=msg.final, channel=msg.channel
    )


def interim(msg: pb.InterimResult) -> Interim:
    return Interim(
        segment_id=msg.segment_id,
        start_ms=msg.start_ms,
        end_ms=msg.end_ms,
        transcript=msg.transcript.text if msg.HasField("transcript") else None,
        translations=tuple(Translation(t.target_language, t.text) for t in msg.translations),
        timing=_timing(msg.timing),
        channel=msg.channel,
    )


def speech_event(msg: pb.SpeechEvent) -> SpeechEvent | None:
    if msg.type == pb.SpeechEvent.SPEECH_STARTED:
        return SpeechEvent(SpeechEventType.STARTED, msg.offset_ms, msg.channel)
    if msg.type == pb.SpeechEvent.SPEECH_ENDED:
        return SpeechEvent(SpeechEventType.ENDED, msg.offset_ms, msg.channel)
    return None


def draining(msg: pb.Draining) -> Draining:
    return Draining(msg.deadline_unix_ms, msg.remaining_ms)


def updated(msg: pb.StreamUpdated) -> StreamUpdated:
    ok = msg.status.code == grpc.StatusCode.OK.value[0]
    return StreamUpdated(
        tuple(msg.config.target_languages),
        msg.config.output.speaker_id,
        msg.first_segment_id,
        None if ok else msg.status.message or "the update was refused",
        speed_of(msg.config.output),
        tuple(msg.config.conversation.languages),
    )


def speed_of(out: pb.OutputOptions) -> float:
    """An ``OutputOptions``' speaking rate as it was written (a float32 on the wire: 1.1 reads
    1.1000000238...); unset: 1."""
    return round(out.speed, 6) if out.HasField("speed") else 1.0


def stream_end(msg: pb.StreamEnd) -> StreamEnd:
    return StreamEnd(
        reason=_REASONS.get(msg.reason, EndReason.UNSPECIFIED),
        segments_total=msg.segments_total,
        audio_received_ms=msg.audio_received_ms,
        resume_offset_ms=msg.resume_offset_ms,
        audio_filled_ms=msg.audio_filled_ms,
        packets_reordered=msg.packets_reordered,
        packets_duplicate=msg.packets_duplicate,
        packets_late=msg.packets_late,
        audio_concealed_ms=msg.audio_concealed_ms,
    )


def translate_result(msg: pb.TranslateResponse) -> TranslateResult:
    return TranslateResult(tuple(segment(s) for s in msg.segments), model_info(msg.model), msg.audio_duration_ms)


# -- rooms ----------------------------------------------------------------------------------------


def listen_started(msg: pb.ListenStarted, address: str, resumes: int) -> ListenStarted:
    return ListenStarted(
        room=msg.room,
        language=msg.language,
        participant=msg.participant,
        backlog=msg.backlog,
        speakers=tuple(RoomSpeaker(s.id, s.first_segment_id) for s in msg.speakers),
        address=address,
        resumes=resumes,
    )


def room_event(msg: pb.ListenEvent) -> RoomSegment | RoomCaption | ListenDropped | Draining | None:
    """A listen's event after ``started`` (None: a kind this SDK does not know, from a newer server)."""
    kind = msg.WhichOneof("event")
    if kind == "segment":
        return RoomSegment(msg.speaker, segment(msg.segment), msg.backlog)
    if kind == "interim":
        return RoomCaption(msg.speaker, interim(msg.interim))
    if kind == "dropped":
        return ListenDropped(msg.dropped.count, msg.dropped.total)
    if kind == "draining":
        return draining(msg.draining)
    return None


#: ``DetectedLanguage.Source`` as the SDK says it (an unknown value from a newer server: its number)
_SOURCES = {1: "identified", 2: "previous_turn", 3: "stated"}


def _chosen(msg: pb.SegmentResult) -> dict[str, str | None]:
    """A segment's chosen language and what chose it, where the server said (``HasField``)."""
    if not msg.HasField("detected_language") or not msg.detected_language.language:
        return {}
    d = msg.detected_language
    source = _SOURCES.get(d.source, str(d.source)) if d.source else None
    return {"chosen_language": d.language, "language_source": source}
