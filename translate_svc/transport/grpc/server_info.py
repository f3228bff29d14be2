"""What the gRPC door says about the server itself: its languages, model, identifier and limits
(``ListLanguages``, ``StreamStarted``, ``TranslateResponse.model``), as protobuf messages.
Split from convert.py (the house's 600-line guide)."""

from __future__ import annotations

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.glossaries.model import GlossaryLimits
from translate_svc.glossaries.naming import glossary_limits
from translate_svc.settings import LimitsSettings
from translate_svc.transport.calls import stream_message_bytes
from translate_svc.types import (
    Language,
    ModelCard,
)


def model_card_to_pb(card: ModelCard) -> pb.ModelInfo:
    info = card.info
    return pb.ModelInfo(
        name=info.name, revision=info.revision, is_test_model=info.is_test_model, num_speakers=card.num_speakers
    )


def identifier_to_pb(card: ModelCard) -> pb.ModelInfo | None:
    info = card.identifier
    return (
        None if info is None else pb.ModelInfo(name=info.name, revision=info.revision, is_test_model=info.is_test_model)
    )


def limits_to_pb(limits: LimitsSettings, glossaries: GlossaryLimits | None = None) -> pb.ServerLimits:
    """The limits, and the stored glossaries' (``glossaries``: None, all 0, when none are kept)."""
    return pb.ServerLimits(
        **glossary_limits(glossaries),
        max_target_languages=limits.max_target_languages,
        max_message_bytes=limits.max_message_bytes,
        max_chunk_bytes=limits.max_chunk_bytes,
        max_clip_seconds=limits.max_clip_seconds,
        max_detect_seconds=limits.max_detect_seconds,
        max_streams=limits.max_streams,
        idle_timeout_seconds=limits.idle_timeout_s,
        max_stream_seconds=limits.max_stream_seconds,
        max_unread_results=limits.max_unread_results,
        min_interim_interval_ms=limits.min_interim_interval_ms,
        max_candidate_languages=limits.max_candidate_languages,
        max_terms=limits.max_terms,
        max_term_chars=limits.max_term_chars,
        max_glossary_entries=limits.max_glossary_entries,
        max_calls_per_connection=limits.max_calls_per_connection,
        max_calls=limits.max_calls,
        connection_idle_seconds=limits.connection_idle_s,
        connection_max_age_seconds=limits.connection_max_age_s,
        max_translate_calls=limits.max_translate_calls,
        max_stream_message_bytes=stream_message_bytes(limits),
        max_receive_message_bytes=limits.max_receive_message_bytes,
        request_read_timeout_ms=round(limits.request_read_timeout_s * 1000),
        max_unary_calls_per_token=limits.max_unary_calls_per_token,
        max_unary_calls_per_tenant=limits.max_unary_calls_per_tenant,
        max_clip_reads_per_tenant=limits.max_clip_reads_per_tenant,
        reorder_window_ms=limits.reorder_window_ms,
        stall_close_ms=limits.stall_close_ms,
        min_simultaneous_step_ms=limits.min_simultaneous_step_ms,
        max_simultaneous_step_ms=limits.max_simultaneous_step_ms,
        max_simultaneous_agreement=limits.max_simultaneous_agreement,
        simultaneous_min_chunk_ms=limits.simultaneous_min_chunk_ms,
        simultaneous_max_segment_ms=limits.simultaneous_max_segment_ms,
        config_timeout_ms=limits.config_timeout_ms,
        clip_read_timeout_ms=round(limits.clip_read_timeout_s * 1000),
        max_texts=limits.max_texts,
        max_text_chars=limits.max_text_chars,
        max_text_request_chars=limits.max_text_request_chars,
    )


def language_to_pb(lang: Language) -> pb.Language:
    return pb.Language(
        code=lang.code,
        name=lang.name,
        speech_input=lang.speech_input,
        text_output=lang.text_output,
        speech_output=lang.speech_output,
        detectable=lang.detectable,
    )
