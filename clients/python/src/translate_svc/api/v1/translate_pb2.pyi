from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GlossaryFileFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GLOSSARY_FILE_UNSPECIFIED: _ClassVar[GlossaryFileFormat]
    GLOSSARY_FILE_CSV: _ClassVar[GlossaryFileFormat]
    GLOSSARY_FILE_TBX: _ClassVar[GlossaryFileFormat]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_UPLOADING: _ClassVar[JobState]
    JOB_QUEUED: _ClassVar[JobState]
    JOB_RUNNING: _ClassVar[JobState]
    JOB_DONE: _ClassVar[JobState]
    JOB_FAILED: _ClassVar[JobState]
    JOB_CANCELLED: _ClassVar[JobState]

class JobResultsFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_RESULTS_JSON: _ClassVar[JobResultsFormat]
    JOB_RESULTS_SRT: _ClassVar[JobResultsFormat]
    JOB_RESULTS_VTT: _ClassVar[JobResultsFormat]
    JOB_RESULTS_DUBBED_WAV: _ClassVar[JobResultsFormat]
    JOB_RESULTS_VIDEO: _ClassVar[JobResultsFormat]

class VoiceOverMix(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOICE_OVER_DUB: _ClassVar[VoiceOverMix]
    VOICE_OVER_DUCK: _ClassVar[VoiceOverMix]

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]
    FLOAT32: _ClassVar[AudioEncoding]
    MULAW: _ClassVar[AudioEncoding]
    ALAW: _ClassVar[AudioEncoding]
    CONTAINER: _ClassVar[AudioEncoding]
    OPUS: _ClassVar[AudioEncoding]

class SpeechEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEECH_ENCODING_UNSPECIFIED: _ClassVar[SpeechEncoding]
    SPEECH_ENCODING_LINEAR16: _ClassVar[SpeechEncoding]
    SPEECH_ENCODING_OPUS: _ClassVar[SpeechEncoding]

class ProfanityFilter(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROFANITY_FILTER_UNSPECIFIED: _ClassVar[ProfanityFilter]
    PROFANITY_FILTER_OFF: _ClassVar[ProfanityFilter]
    PROFANITY_FILTER_MASK: _ClassVar[ProfanityFilter]
    PROFANITY_FILTER_REMOVE: _ClassVar[ProfanityFilter]

class NoiseSuppression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOISE_SUPPRESSION_UNSPECIFIED: _ClassVar[NoiseSuppression]
    NOISE_SUPPRESSION_OFF: _ClassVar[NoiseSuppression]
    NOISE_SUPPRESSION_RNNOISE: _ClassVar[NoiseSuppression]

class ChannelMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_MODE_MIXED: _ClassVar[ChannelMode]
    CHANNEL_MODE_SEPARATE: _ClassVar[ChannelMode]

class StreamControl(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_CONTROL_UNSPECIFIED: _ClassVar[StreamControl]
    FLUSH: _ClassVar[StreamControl]
GLOSSARY_FILE_UNSPECIFIED: GlossaryFileFormat
GLOSSARY_FILE_CSV: GlossaryFileFormat
GLOSSARY_FILE_TBX: GlossaryFileFormat
JOB_STATE_UNSPECIFIED: JobState
JOB_UPLOADING: JobState
JOB_QUEUED: JobState
JOB_RUNNING: JobState
JOB_DONE: JobState
JOB_FAILED: JobState
JOB_CANCELLED: JobState
JOB_RESULTS_JSON: JobResultsFormat
JOB_RESULTS_SRT: JobResultsFormat
JOB_RESULTS_VTT: JobResultsFormat
JOB_RESULTS_DUBBED_WAV: JobResultsFormat
JOB_RESULTS_VIDEO: JobResultsFormat
VOICE_OVER_DUB: VoiceOverMix
VOICE_OVER_DUCK: VoiceOverMix
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
FLOAT32: AudioEncoding
MULAW: AudioEncoding
ALAW: AudioEncoding
CONTAINER: AudioEncoding
OPUS: AudioEncoding
SPEECH_ENCODING_UNSPECIFIED: SpeechEncoding
SPEECH_ENCODING_LINEAR16: SpeechEncoding
SPEECH_ENCODING_OPUS: SpeechEncoding
PROFANITY_FILTER_UNSPECIFIED: ProfanityFilter
PROFANITY_FILTER_OFF: ProfanityFilter
PROFANITY_FILTER_MASK: ProfanityFilter
PROFANITY_FILTER_REMOVE: ProfanityFilter
NOISE_SUPPRESSION_UNSPECIFIED: NoiseSuppression
NOISE_SUPPRESSION_OFF: NoiseSuppression
NOISE_SUPPRESSION_RNNOISE: NoiseSuppression
CHANNEL_MODE_MIXED: ChannelMode
CHANNEL_MODE_SEPARATE: ChannelMode
STREAM_CONTROL_UNSPECIFIED: StreamControl
FLUSH: StreamControl

class GlossaryEntry(_message.Message):
    __slots__ = ("phrase", "translation", "target_language", "ignore_case")
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    TRANSLATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    IGNORE_CASE_FIELD_NUMBER: _ClassVar[int]
    phrase: str
    translation: str
    target_language: str
    ignore_case: bool
    def __init__(self, phrase: _Optional[str] = ..., translation: _Optional[str] = ..., target_language: _Optional[str] = ..., ignore_case: bool = ...) -> None: ...

class GlossaryContent(_message.Message):
    __slots__ = ("entries", "csv", "tbx")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CSV_FIELD_NUMBER: _ClassVar[int]
    TBX_FIELD_NUMBER: _ClassVar[int]
    entries: GlossaryEntries
    csv: bytes
    tbx: TbxImport
    def __init__(self, entries: _Optional[_Union[GlossaryEntries, _Mapping]] = ..., csv: _Optional[bytes] = ..., tbx: _Optional[_Union[TbxImport, _Mapping]] = ...) -> None: ...

class TbxImport(_message.Message):
    __slots__ = ("data", "source_language", "target_languages")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, data: _Optional[bytes] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ...) -> None: ...

class GlossaryEntries(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[GlossaryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[GlossaryEntry, _Mapping]]] = ...) -> None: ...

class Glossary(_message.Message):
    __slots__ = ("glossary_id", "display_name", "entry_count", "target_languages", "revision", "create_time_unix_ms", "update_time_unix_ms", "entries")
    GLOSSARY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    glossary_id: str
    display_name: str
    entry_count: int
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    create_time_unix_ms: int
    update_time_unix_ms: int
    entries: _containers.RepeatedCompositeFieldContainer[GlossaryEntry]
    def __init__(self, glossary_id: _Optional[str] = ..., display_name: _Optional[str] = ..., entry_count: _Optional[int] = ..., target_languages: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ..., create_time_unix_ms: _Optional[int] = ..., update_time_unix_ms: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[GlossaryEntry, _Mapping]]] = ...) -> None: ...

class CreateGlossaryRequest(_message.Message):
    __slots__ = ("glossary_id", "display_name", "content")
    GLOSSARY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    glossary_id: str
    display_name: str
    content: GlossaryContent
    def __init__(self, glossary_id: _Optional[str] = ..., display_name: _Optional[str] = ..., content: _Optional[_Union[GlossaryContent, _Mapping]] = ...) -> None: ...

class GetGlossaryRequest(_message.Message):
    __slots__ = ("glossary_id", "include_entries")
    GLOSSARY_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    glossary_id: str
    include_entries: bool
    def __init__(self, glossary_id: _Optional[str] = ..., include_entries: bool = ...) -> None: ...

class ListGlossariesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGlossariesResponse(_message.Message):
    __slots__ = ("glossaries",)
    GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    glossaries: _containers.RepeatedCompositeFieldContainer[Glossary]
    def __init__(self, glossaries: _Optional[_Iterable[_Union[Glossary, _Mapping]]] = ...) -> None: ...

class ReplaceGlossaryRequest(_message.Message):
    __slots__ = ("glossary_id", "display_name", "content", "revision")
    GLOSSARY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    glossary_id: str
    display_name: str
    content: GlossaryContent
    revision: int
    def __init__(self, glossary_id: _Optional[str] = ..., display_name: _Optional[str] = ..., content: _Optional[_Union[GlossaryContent, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class DeleteGlossaryRequest(_message.Message):
    __slots__ = ("glossary_id",)
    GLOSSARY_ID_FIELD_NUMBER: _ClassVar[int]
    glossary_id: str
    def __init__(self, glossary_id: _Optional[str] = ...) -> None: ...

class ImportGlossaryRequest(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: GlossaryImportHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[GlossaryImportHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class GlossaryImportHeader(_message.Message):
    __slots__ = ("glossary_id", "display_name", "format", "source_language", "target_languages", "replace", "revision")
    GLOSSARY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    glossary_id: str
    display_name: str
    format: GlossaryFileFormat
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    replace: bool
    revision: int
    def __init__(self, glossary_id: _Optional[str] = ..., display_name: _Optional[str] = ..., format: _Optional[_Union[GlossaryFileFormat, str]] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ..., replace: bool = ..., revision: _Optional[int] = ...) -> None: ...

class DeleteGlossaryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("format", "source_language", "target_languages", "output", "glossaries", "url", "noise_suppression", "speakers", "fit", "conversation", "vad", "channel_mode", "speaker_voices", "subtitles")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    NOISE_SUPPRESSION_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    VAD_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MODE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_VOICES_FIELD_NUMBER: _ClassVar[int]
    SUBTITLES_FIELD_NUMBER: _ClassVar[int]
    format: AudioFormat
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    output: OutputOptions
    glossaries: _containers.RepeatedScalarFieldContainer[str]
    url: str
    noise_suppression: NoiseSuppression
    speakers: int
    fit: SpeechFit
    conversation: Conversation
    vad: VadOptions
    channel_mode: ChannelMode
    speaker_voices: SpeakerVoices
    subtitles: ImportedSubtitles
    def __init__(self, format: _Optional[_Union[AudioFormat, _Mapping]] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., glossaries: _Optional[_Iterable[str]] = ..., url: _Optional[str] = ..., noise_suppression: _Optional[_Union[NoiseSuppression, str]] = ..., speakers: _Optional[int] = ..., fit: _Optional[_Union[SpeechFit, _Mapping]] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., vad: _Optional[_Union[VadOptions, _Mapping]] = ..., channel_mode: _Optional[_Union[ChannelMode, str]] = ..., speaker_voices: _Optional[_Union[SpeakerVoices, _Mapping]] = ..., subtitles: _Optional[_Union[ImportedSubtitles, _Mapping]] = ...) -> None: ...

class ImportedSubtitles(_message.Message):
    __slots__ = ("language", "format", "text")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    language: str
    format: str
    text: str
    def __init__(self, language: _Optional[str] = ..., format: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class SpeakerVoices(_message.Message):
    __slots__ = ("one_voice", "voices")
    class VoicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    ONE_VOICE_FIELD_NUMBER: _ClassVar[int]
    VOICES_FIELD_NUMBER: _ClassVar[int]
    one_voice: bool
    voices: _containers.ScalarMap[int, int]
    def __init__(self, one_voice: bool = ..., voices: _Optional[_Mapping[int, int]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "state", "received_bytes", "duration_ms", "done_ms", "progress", "segments", "error", "created_at", "expires_at", "source_language", "target_languages", "conversation", "vad", "channel_mode", "speaker_voices")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    DONE_MS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    VAD_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MODE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_VOICES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    received_bytes: int
    duration_ms: int
    done_ms: int
    progress: float
    segments: int
    error: str
    created_at: float
    expires_at: float
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    conversation: Conversation
    vad: VadOptions
    channel_mode: ChannelMode
    speaker_voices: SpeakerVoices
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., received_bytes: _Optional[int] = ..., duration_ms: _Optional[int] = ..., done_ms: _Optional[int] = ..., progress: _Optional[float] = ..., segments: _Optional[int] = ..., error: _Optional[str] = ..., created_at: _Optional[float] = ..., expires_at: _Optional[float] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., vad: _Optional[_Union[VadOptions, _Mapping]] = ..., channel_mode: _Optional[_Union[ChannelMode, str]] = ..., speaker_voices: _Optional[_Union[SpeakerVoices, _Mapping]] = ...) -> None: ...

class UploadJobAudioRequest(_message.Message):
    __slots__ = ("job_id", "offset", "data", "complete")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    offset: int
    data: bytes
    complete: bool
    def __init__(self, job_id: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., complete: bool = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "wait_ms")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    wait_ms: int
    def __init__(self, job_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResultsRequest(_message.Message):
    __slots__ = ("job_id", "format", "language", "video", "loudness")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    format: JobResultsFormat
    language: str
    video: VideoOptions
    loudness: Loudness
    def __init__(self, job_id: _Optional[str] = ..., format: _Optional[_Union[JobResultsFormat, str]] = ..., language: _Optional[str] = ..., video: _Optional[_Union[VideoOptions, _Mapping]] = ..., loudness: _Optional[_Union[Loudness, _Mapping]] = ...) -> None: ...

class VideoOptions(_message.Message):
    __slots__ = ("languages", "original", "mix", "mix_gain_db", "no_subtitles", "loudness")
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    MIX_FIELD_NUMBER: _ClassVar[int]
    MIX_GAIN_DB_FIELD_NUMBER: _ClassVar[int]
    NO_SUBTITLES_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedScalarFieldContainer[str]
    original: bool
    mix: VoiceOverMix
    mix_gain_db: float
    no_subtitles: bool
    loudness: Loudness
    def __init__(self, languages: _Optional[_Iterable[str]] = ..., original: bool = ..., mix: _Optional[_Union[VoiceOverMix, str]] = ..., mix_gain_db: _Optional[float] = ..., no_subtitles: bool = ..., loudness: _Optional[_Union[Loudness, _Mapping]] = ...) -> None: ...

class Loudness(_message.Message):
    __slots__ = ("preset", "integrated_lufs", "true_peak_dbtp")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    INTEGRATED_LUFS_FIELD_NUMBER: _ClassVar[int]
    TRUE_PEAK_DBTP_FIELD_NUMBER: _ClassVar[int]
    preset: str
    integrated_lufs: float
    true_peak_dbtp: float
    def __init__(self, preset: _Optional[str] = ..., integrated_lufs: _Optional[float] = ..., true_peak_dbtp: _Optional[float] = ...) -> None: ...

class JobResultsChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SegmentEdit(_message.Message):
    __slots__ = ("segment_id", "target_language", "text", "voice", "speed")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    target_language: str
    text: str
    voice: int
    speed: float
    def __init__(self, segment_id: _Optional[int] = ..., target_language: _Optional[str] = ..., text: _Optional[str] = ..., voice: _Optional[int] = ..., speed: _Optional[float] = ...) -> None: ...

class EditJobRequest(_message.Message):
    __slots__ = ("job_id", "edits")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    edits: _containers.RepeatedCompositeFieldContainer[SegmentEdit]
    def __init__(self, job_id: _Optional[str] = ..., edits: _Optional[_Iterable[_Union[SegmentEdit, _Mapping]]] = ...) -> None: ...

class EditedTranslation(_message.Message):
    __slots__ = ("text", "voice", "speech_rate", "audio_ms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SPEECH_RATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: int
    speech_rate: float
    audio_ms: int
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[int] = ..., speech_rate: _Optional[float] = ..., audio_ms: _Optional[int] = ...) -> None: ...

class SegmentEdited(_message.Message):
    __slots__ = ("segment_id", "target_language", "changed", "before", "after")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    target_language: str
    changed: _containers.RepeatedScalarFieldContainer[str]
    before: EditedTranslation
    after: EditedTranslation
    def __init__(self, segment_id: _Optional[int] = ..., target_language: _Optional[str] = ..., changed: _Optional[_Iterable[str]] = ..., before: _Optional[_Union[EditedTranslation, _Mapping]] = ..., after: _Optional[_Union[EditedTranslation, _Mapping]] = ...) -> None: ...

class EditJobResponse(_message.Message):
    __slots__ = ("job_id", "edited")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    edited: _containers.RepeatedCompositeFieldContainer[SegmentEdited]
    def __init__(self, job_id: _Optional[str] = ..., edited: _Optional[_Iterable[_Union[SegmentEdited, _Mapping]]] = ...) -> None: ...

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "channels")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class AudioInput(_message.Message):
    __slots__ = ("content", "format")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    format: AudioFormat
    def __init__(self, content: _Optional[bytes] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ...) -> None: ...

class OutputOptions(_message.Message):
    __slots__ = ("text", "speech", "transcript", "speech_sample_rate_hz", "speaker_id", "speech_encoding", "word_timings", "profanity", "speed")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    SPEECH_ENCODING_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PROFANITY_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    text: bool
    speech: bool
    transcript: bool
    speech_sample_rate_hz: int
    speaker_id: int
    speech_encoding: SpeechEncoding
    word_timings: bool
    profanity: ProfanityFilter
    speed: float
    def __init__(self, text: bool = ..., speech: bool = ..., transcript: bool = ..., speech_sample_rate_hz: _Optional[int] = ..., speaker_id: _Optional[int] = ..., speech_encoding: _Optional[_Union[SpeechEncoding, str]] = ..., word_timings: bool = ..., profanity: _Optional[_Union[ProfanityFilter, str]] = ..., speed: _Optional[float] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("language", "text", "words", "avg_logprob")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    language: str
    text: str
    words: _containers.RepeatedCompositeFieldContainer[WordTiming]
    avg_logprob: float
    def __init__(self, language: _Optional[str] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ..., avg_logprob: _Optional[float] = ...) -> None: ...

class WordTiming(_message.Message):
    __slots__ = ("word", "start_ms", "end_ms", "speaker", "avg_logprob")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_ms: int
    end_ms: int
    speaker: int
    avg_logprob: float
    def __init__(self, word: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., speaker: _Optional[int] = ..., avg_logprob: _Optional[float] = ...) -> None: ...

class OpusPacket(_message.Message):
    __slots__ = ("data", "duration_samples")
    DATA_FIELD_NUMBER: _ClassVar[int]
    DURATION_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    duration_samples: int
    def __init__(self, data: _Optional[bytes] = ..., duration_samples: _Optional[int] = ...) -> None: ...

class SynthesizedAudio(_message.Message):
    __slots__ = ("content", "sample_rate_hz", "duration_ms", "encoding", "num_samples", "opus_packets", "opus_pre_skip")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    OPUS_PACKETS_FIELD_NUMBER: _ClassVar[int]
    OPUS_PRE_SKIP_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    sample_rate_hz: int
    duration_ms: int
    encoding: SpeechEncoding
    num_samples: int
    opus_packets: _containers.RepeatedCompositeFieldContainer[OpusPacket]
    opus_pre_skip: int
    def __init__(self, content: _Optional[bytes] = ..., sample_rate_hz: _Optional[int] = ..., duration_ms: _Optional[int] = ..., encoding: _Optional[_Union[SpeechEncoding, str]] = ..., num_samples: _Optional[int] = ..., opus_packets: _Optional[_Iterable[_Union[OpusPacket, _Mapping]]] = ..., opus_pre_skip: _Optional[int] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("target_language", "text", "audio", "stable_text", "words", "avg_logprob", "speech_rate", "overlap_ms")
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    STABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    SPEECH_RATE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_MS_FIELD_NUMBER: _ClassVar[int]
    target_language: str
    text: str
    audio: SynthesizedAudio
    stable_text: str
    words: _containers.RepeatedCompositeFieldContainer[WordTiming]
    avg_logprob: float
    speech_rate: float
    overlap_ms: int
    def __init__(self, target_language: _Optional[str] = ..., text: _Optional[str] = ..., audio: _Optional[_Union[SynthesizedAudio, _Mapping]] = ..., stable_text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ..., avg_logprob: _Optional[float] = ..., speech_rate: _Optional[float] = ..., overlap_ms: _Optional[int] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_ms", "model_ms", "total_ms", "vad_wait_ms", "speech_ms", "language_id_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    VAD_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_MS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_ID_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    model_ms: float
    total_ms: float
    vad_wait_ms: float
    speech_ms: float
    language_id_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., model_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., vad_wait_ms: _Optional[float] = ..., speech_ms: _Optional[float] = ..., language_id_ms: _Optional[float] = ...) -> None: ...

class DetectedLanguage(_message.Message):
    __slots__ = ("language", "scores", "source")
    class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SOURCE_UNSPECIFIED: _ClassVar[DetectedLanguage.Source]
        IDENTIFIED: _ClassVar[DetectedLanguage.Source]
        PREVIOUS_TURN: _ClassVar[DetectedLanguage.Source]
        STATED: _ClassVar[DetectedLanguage.Source]
    SOURCE_UNSPECIFIED: DetectedLanguage.Source
    IDENTIFIED: DetectedLanguage.Source
    PREVIOUS_TURN: DetectedLanguage.Source
    STATED: DetectedLanguage.Source
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    language: str
    scores: _containers.RepeatedCompositeFieldContainer[LanguageScore]
    source: DetectedLanguage.Source
    def __init__(self, language: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LanguageScore, _Mapping]]] = ..., source: _Optional[_Union[DetectedLanguage.Source, str]] = ...) -> None: ...

class LanguageScore(_message.Message):
    __slots__ = ("language", "probability")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    language: str
    probability: float
    def __init__(self, language: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Term(_message.Message):
    __slots__ = ("phrase", "kind", "weight", "translation", "target_language", "ignore_case")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Term.Kind]
        BOOST: _ClassVar[Term.Kind]
        KEEP: _ClassVar[Term.Kind]
        TRANSLATE: _ClassVar[Term.Kind]
    KIND_UNSPECIFIED: Term.Kind
    BOOST: Term.Kind
    KEEP: Term.Kind
    TRANSLATE: Term.Kind
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRANSLATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    IGNORE_CASE_FIELD_NUMBER: _ClassVar[int]
    phrase: str
    kind: Term.Kind
    weight: float
    translation: str
    target_language: str
    ignore_case: bool
    def __init__(self, phrase: _Optional[str] = ..., kind: _Optional[_Union[Term.Kind, str]] = ..., weight: _Optional[float] = ..., translation: _Optional[str] = ..., target_language: _Optional[str] = ..., ignore_case: bool = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("languages", "stated_language", "voices", "speeds")
    class VoicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SpeedsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    STATED_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    VOICES_FIELD_NUMBER: _ClassVar[int]
    SPEEDS_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedScalarFieldContainer[str]
    stated_language: str
    voices: _containers.ScalarMap[str, int]
    speeds: _containers.ScalarMap[str, float]
    def __init__(self, languages: _Optional[_Iterable[str]] = ..., stated_language: _Optional[str] = ..., voices: _Optional[_Mapping[str, int]] = ..., speeds: _Optional[_Mapping[str, float]] = ...) -> None: ...

class LanguageDetection(_message.Message):
    __slots__ = ("enabled", "candidates")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    candidates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enabled: bool = ..., candidates: _Optional[_Iterable[str]] = ...) -> None: ...

class InterimResult(_message.Message):
    __slots__ = ("segment_id", "start_ms", "end_ms", "transcript", "translations", "timing", "channel")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    start_ms: int
    end_ms: int
    transcript: Transcript
    translations: _containers.RepeatedCompositeFieldContainer[Translation]
    timing: Timing
    channel: int
    def __init__(self, segment_id: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., translations: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., channel: _Optional[int] = ...) -> None: ...

class SegmentResult(_message.Message):
    __slots__ = ("segment_id", "start_ms", "end_ms", "transcript", "translations", "timing", "status", "detected_language", "speech_in_commits", "speaker", "speakers_revised", "channel")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETECTED_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SPEECH_IN_COMMITS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_REVISED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    start_ms: int
    end_ms: int
    transcript: Transcript
    translations: _containers.RepeatedCompositeFieldContainer[Translation]
    timing: Timing
    status: _status_pb2.Status
    detected_language: DetectedLanguage
    speech_in_commits: bool
    speaker: int
    speakers_revised: _containers.RepeatedCompositeFieldContainer[SpeakerRevision]
    channel: int
    def __init__(self, segment_id: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., translations: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., detected_language: _Optional[_Union[DetectedLanguage, _Mapping]] = ..., speech_in_commits: bool = ..., speaker: _Optional[int] = ..., speakers_revised: _Optional[_Iterable[_Union[SpeakerRevision, _Mapping]]] = ..., channel: _Optional[int] = ...) -> None: ...

class SpeakerRevision(_message.Message):
    __slots__ = ("segment_id", "speaker")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    speaker: int
    def __init__(self, segment_id: _Optional[int] = ..., speaker: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "revision", "is_test_model", "num_speakers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    IS_TEST_MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    revision: str
    is_test_model: bool
    num_speakers: int
    def __init__(self, name: _Optional[str] = ..., revision: _Optional[str] = ..., is_test_model: bool = ..., num_speakers: _Optional[int] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_target_languages", "max_message_bytes", "max_chunk_bytes", "max_clip_seconds", "max_streams", "idle_timeout_seconds", "max_stream_seconds", "max_unread_results", "min_interim_interval_ms", "max_candidate_languages", "max_terms", "max_term_chars", "max_calls_per_connection", "max_calls", "connection_idle_seconds", "connection_max_age_seconds", "max_translate_calls", "max_stream_message_bytes", "reorder_window_ms", "stall_close_ms", "min_simultaneous_step_ms", "max_simultaneous_step_ms", "max_simultaneous_agreement", "simultaneous_min_chunk_ms", "config_timeout_ms", "clip_read_timeout_ms", "max_texts", "max_text_chars", "max_text_request_chars", "max_receive_message_bytes", "request_read_timeout_ms", "max_unary_calls_per_token", "max_unary_calls_per_tenant", "max_clip_reads_per_tenant", "simultaneous_max_segment_ms", "max_glossary_entries", "max_glossary_entries_stored", "max_glossaries", "max_glossaries_per_request", "glossary_import_bytes", "glossary_import_message_bytes", "glossary_import_timeout_ms", "max_detect_seconds")
    MAX_TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_UNREAD_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERIM_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATE_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_TERMS_FIELD_NUMBER: _ClassVar[int]
    MAX_TERM_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_PER_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_MAX_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRANSLATE_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REORDER_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    STALL_CLOSE_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMULTANEOUS_STEP_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_SIMULTANEOUS_STEP_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_SIMULTANEOUS_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    SIMULTANEOUS_MIN_CHUNK_MS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CLIP_READ_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_REQUEST_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_RECEIVE_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_READ_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UNARY_CALLS_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_UNARY_CALLS_PER_TENANT_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIP_READS_PER_TENANT_FIELD_NUMBER: _ClassVar[int]
    SIMULTANEOUS_MAX_SEGMENT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_GLOSSARY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_GLOSSARY_ENTRIES_STORED_FIELD_NUMBER: _ClassVar[int]
    MAX_GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    MAX_GLOSSARIES_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_IMPORT_BYTES_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_IMPORT_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_IMPORT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    max_target_languages: int
    max_message_bytes: int
    max_chunk_bytes: int
    max_clip_seconds: float
    max_streams: int
    idle_timeout_seconds: float
    max_stream_seconds: float
    max_unread_results: int
    min_interim_interval_ms: int
    max_candidate_languages: int
    max_terms: int
    max_term_chars: int
    max_calls_per_connection: int
    max_calls: int
    connection_idle_seconds: float
    connection_max_age_seconds: float
    max_translate_calls: int
    max_stream_message_bytes: int
    reorder_window_ms: int
    stall_close_ms: int
    min_simultaneous_step_ms: int
    max_simultaneous_step_ms: int
    max_simultaneous_agreement: int
    simultaneous_min_chunk_ms: int
    config_timeout_ms: int
    clip_read_timeout_ms: int
    max_texts: int
    max_text_chars: int
    max_text_request_chars: int
    max_receive_message_bytes: int
    request_read_timeout_ms: int
    max_unary_calls_per_token: int
    max_unary_calls_per_tenant: int
    max_clip_reads_per_tenant: int
    simultaneous_max_segment_ms: int
    max_glossary_entries: int
    max_glossary_entries_stored: int
    max_glossaries: int
    max_glossaries_per_request: int
    glossary_import_bytes: int
    glossary_import_message_bytes: int
    glossary_import_timeout_ms: int
    max_detect_seconds: float
    def __init__(self, max_target_languages: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., max_clip_seconds: _Optional[float] = ..., max_streams: _Optional[int] = ..., idle_timeout_seconds: _Optional[float] = ..., max_stream_seconds: _Optional[float] = ..., max_unread_results: _Optional[int] = ..., min_interim_interval_ms: _Optional[int] = ..., max_candidate_languages: _Optional[int] = ..., max_terms: _Optional[int] = ..., max_term_chars: _Optional[int] = ..., max_calls_per_connection: _Optional[int] = ..., max_calls: _Optional[int] = ..., connection_idle_seconds: _Optional[float] = ..., connection_max_age_seconds: _Optional[float] = ..., max_translate_calls: _Optional[int] = ..., max_stream_message_bytes: _Optional[int] = ..., reorder_window_ms: _Optional[int] = ..., stall_close_ms: _Optional[int] = ..., min_simultaneous_step_ms: _Optional[int] = ..., max_simultaneous_step_ms: _Optional[int] = ..., max_simultaneous_agreement: _Optional[int] = ..., simultaneous_min_chunk_ms: _Optional[int] = ..., config_timeout_ms: _Optional[int] = ..., clip_read_timeout_ms: _Optional[int] = ..., max_texts: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_text_request_chars: _Optional[int] = ..., max_receive_message_bytes: _Optional[int] = ..., request_read_timeout_ms: _Optional[int] = ..., max_unary_calls_per_token: _Optional[int] = ..., max_unary_calls_per_tenant: _Optional[int] = ..., max_clip_reads_per_tenant: _Optional[int] = ..., simultaneous_max_segment_ms: _Optional[int] = ..., max_glossary_entries: _Optional[int] = ..., max_glossary_entries_stored: _Optional[int] = ..., max_glossaries: _Optional[int] = ..., max_glossaries_per_request: _Optional[int] = ..., glossary_import_bytes: _Optional[int] = ..., glossary_import_message_bytes: _Optional[int] = ..., glossary_import_timeout_ms: _Optional[int] = ..., max_detect_seconds: _Optional[float] = ...) -> None: ...

class ListLanguagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Language(_message.Message):
    __slots__ = ("code", "name", "speech_input", "text_output", "speech_output", "detectable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEECH_INPUT_FIELD_NUMBER: _ClassVar[int]
    TEXT_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DETECTABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    speech_input: bool
    text_output: bool
    speech_output: bool
    detectable: bool
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., speech_input: bool = ..., text_output: bool = ..., speech_output: bool = ..., detectable: bool = ...) -> None: ...

class ListLanguagesResponse(_message.Message):
    __slots__ = ("languages", "model", "limits", "language_identifier", "speech_watermark")
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    SPEECH_WATERMARK_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedCompositeFieldContainer[Language]
    model: ModelInfo
    limits: ServerLimits
    language_identifier: ModelInfo
    speech_watermark: str
    def __init__(self, languages: _Optional[_Iterable[_Union[Language, _Mapping]]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., language_identifier: _Optional[_Union[ModelInfo, _Mapping]] = ..., speech_watermark: _Optional[str] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("audio", "source_language", "target_languages", "output", "vad", "language_detection", "terms", "noise_suppression", "speakers", "glossaries", "fit", "conversation", "channel_mode")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    VAD_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_DETECTION_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    NOISE_SUPPRESSION_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MODE_FIELD_NUMBER: _ClassVar[int]
    audio: AudioInput
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    output: OutputOptions
    vad: VadOptions
    language_detection: LanguageDetection
    terms: _containers.RepeatedCompositeFieldContainer[Term]
    noise_suppression: NoiseSuppression
    speakers: int
    glossaries: _containers.RepeatedScalarFieldContainer[str]
    fit: SpeechFit
    conversation: Conversation
    channel_mode: ChannelMode
    def __init__(self, audio: _Optional[_Union[AudioInput, _Mapping]] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., vad: _Optional[_Union[VadOptions, _Mapping]] = ..., language_detection: _Optional[_Union[LanguageDetection, _Mapping]] = ..., terms: _Optional[_Iterable[_Union[Term, _Mapping]]] = ..., noise_suppression: _Optional[_Union[NoiseSuppression, str]] = ..., speakers: _Optional[int] = ..., glossaries: _Optional[_Iterable[str]] = ..., fit: _Optional[_Union[SpeechFit, _Mapping]] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., channel_mode: _Optional[_Union[ChannelMode, str]] = ...) -> None: ...

class SpeechFit(_message.Message):
    __slots__ = ("slowest", "fastest")
    SLOWEST_FIELD_NUMBER: _ClassVar[int]
    FASTEST_FIELD_NUMBER: _ClassVar[int]
    slowest: float
    fastest: float
    def __init__(self, slowest: _Optional[float] = ..., fastest: _Optional[float] = ...) -> None: ...

class TranslateResponse(_message.Message):
    __slots__ = ("segments", "model", "audio_duration_ms")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[SegmentResult]
    model: ModelInfo
    audio_duration_ms: int
    def __init__(self, segments: _Optional[_Iterable[_Union[SegmentResult, _Mapping]]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., audio_duration_ms: _Optional[int] = ...) -> None: ...

class DetectSyntheticRequest(_message.Message):
    __slots__ = ("audio",)
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    audio: AudioInput
    def __init__(self, audio: _Optional[_Union[AudioInput, _Mapping]] = ...) -> None: ...

class DetectSyntheticResponse(_message.Message):
    __slots__ = ("probability", "marked", "conclusive", "spans", "watermarker", "audio_duration_ms", "content_credentials")
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MARKED_FIELD_NUMBER: _ClassVar[int]
    CONCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    WATERMARKER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    probability: float
    marked: bool
    conclusive: bool
    spans: _containers.RepeatedCompositeFieldContainer[MarkedSpan]
    watermarker: str
    audio_duration_ms: int
    content_credentials: ContentCredentials
    def __init__(self, probability: _Optional[float] = ..., marked: bool = ..., conclusive: bool = ..., spans: _Optional[_Iterable[_Union[MarkedSpan, _Mapping]]] = ..., watermarker: _Optional[str] = ..., audio_duration_ms: _Optional[int] = ..., content_credentials: _Optional[_Union[ContentCredentials, _Mapping]] = ...) -> None: ...

class ContentCredentials(_message.Message):
    __slots__ = ("state", "generated", "model", "source_sha256", "created", "issuer", "signer", "failures")
    STATE_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    state: str
    generated: bool
    model: str
    source_sha256: str
    created: str
    issuer: str
    signer: str
    failures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, state: _Optional[str] = ..., generated: bool = ..., model: _Optional[str] = ..., source_sha256: _Optional[str] = ..., created: _Optional[str] = ..., issuer: _Optional[str] = ..., signer: _Optional[str] = ..., failures: _Optional[_Iterable[str]] = ...) -> None: ...

class MarkedSpan(_message.Message):
    __slots__ = ("start_ms", "end_ms")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    end_ms: int
    def __init__(self, start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class TranslateTextRequest(_message.Message):
    __slots__ = ("texts", "source_language", "target_languages", "output", "terms", "glossaries")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    output: OutputOptions
    terms: _containers.RepeatedCompositeFieldContainer[Term]
    glossaries: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., terms: _Optional[_Iterable[_Union[Term, _Mapping]]] = ..., glossaries: _Optional[_Iterable[str]] = ...) -> None: ...

class TextResult(_message.Message):
    __slots__ = ("translations", "timing", "status")
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    translations: _containers.RepeatedCompositeFieldContainer[Translation]
    timing: Timing
    status: _status_pb2.Status
    def __init__(self, translations: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class TranslateTextResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TextResult]
    model: ModelInfo
    def __init__(self, results: _Optional[_Iterable[_Union[TextResult, _Mapping]]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class VadOptions(_message.Message):
    __slots__ = ("threshold", "min_silence_ms", "speech_pad_ms", "min_speech_ms", "max_segment_ms", "eagerness", "eager_threshold")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_PAD_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_SPEECH_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEGMENT_MS_FIELD_NUMBER: _ClassVar[int]
    EAGERNESS_FIELD_NUMBER: _ClassVar[int]
    EAGER_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    min_silence_ms: int
    speech_pad_ms: int
    min_speech_ms: int
    max_segment_ms: int
    eagerness: str
    eager_threshold: float
    def __init__(self, threshold: _Optional[float] = ..., min_silence_ms: _Optional[int] = ..., speech_pad_ms: _Optional[int] = ..., min_speech_ms: _Optional[int] = ..., max_segment_ms: _Optional[int] = ..., eagerness: _Optional[str] = ..., eager_threshold: _Optional[float] = ...) -> None: ...

class StreamingConfig(_message.Message):
    __slots__ = ("format", "source_language", "target_languages", "output", "vad", "interim_interval_ms", "resume", "language_detection", "terms", "simultaneous", "room", "noise_suppression", "speakers", "glossaries", "conversation", "channel_mode")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    VAD_FIELD_NUMBER: _ClassVar[int]
    INTERIM_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_DETECTION_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SIMULTANEOUS_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    NOISE_SUPPRESSION_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MODE_FIELD_NUMBER: _ClassVar[int]
    format: AudioFormat
    source_language: str
    target_languages: _containers.RepeatedScalarFieldContainer[str]
    output: OutputOptions
    vad: VadOptions
    interim_interval_ms: int
    resume: ResumeFrom
    language_detection: LanguageDetection
    terms: _containers.RepeatedCompositeFieldContainer[Term]
    simultaneous: SimultaneousConfig
    room: RoomSpeaking
    noise_suppression: NoiseSuppression
    speakers: int
    glossaries: _containers.RepeatedScalarFieldContainer[str]
    conversation: Conversation
    channel_mode: ChannelMode
    def __init__(self, format: _Optional[_Union[AudioFormat, _Mapping]] = ..., source_language: _Optional[str] = ..., target_languages: _Optional[_Iterable[str]] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., vad: _Optional[_Union[VadOptions, _Mapping]] = ..., interim_interval_ms: _Optional[int] = ..., resume: _Optional[_Union[ResumeFrom, _Mapping]] = ..., language_detection: _Optional[_Union[LanguageDetection, _Mapping]] = ..., terms: _Optional[_Iterable[_Union[Term, _Mapping]]] = ..., simultaneous: _Optional[_Union[SimultaneousConfig, _Mapping]] = ..., room: _Optional[_Union[RoomSpeaking, _Mapping]] = ..., noise_suppression: _Optional[_Union[NoiseSuppression, str]] = ..., speakers: _Optional[int] = ..., glossaries: _Optional[_Iterable[str]] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., channel_mode: _Optional[_Union[ChannelMode, str]] = ...) -> None: ...

class RoomSpeaking(_message.Message):
    __slots__ = ("name", "participant")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    participant: str
    def __init__(self, name: _Optional[str] = ..., participant: _Optional[str] = ...) -> None: ...

class ListenRequest(_message.Message):
    __slots__ = ("room", "language", "participant", "speed", "original_audio")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_AUDIO_FIELD_NUMBER: _ClassVar[int]
    room: str
    language: str
    participant: str
    speed: float
    original_audio: bool
    def __init__(self, room: _Optional[str] = ..., language: _Optional[str] = ..., participant: _Optional[str] = ..., speed: _Optional[float] = ..., original_audio: bool = ...) -> None: ...

class ListenEvent(_message.Message):
    __slots__ = ("started", "segment", "interim", "dropped", "draining", "speaker", "backlog")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    INTERIM_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    started: ListenStarted
    segment: SegmentResult
    interim: InterimResult
    dropped: ListenDropped
    draining: Draining
    speaker: str
    backlog: bool
    def __init__(self, started: _Optional[_Union[ListenStarted, _Mapping]] = ..., segment: _Optional[_Union[SegmentResult, _Mapping]] = ..., interim: _Optional[_Union[InterimResult, _Mapping]] = ..., dropped: _Optional[_Union[ListenDropped, _Mapping]] = ..., draining: _Optional[_Union[Draining, _Mapping]] = ..., speaker: _Optional[str] = ..., backlog: bool = ...) -> None: ...

class ListenStarted(_message.Message):
    __slots__ = ("room", "language", "participant", "backlog", "speakers")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    room: str
    language: str
    participant: str
    backlog: int
    speakers: _containers.RepeatedCompositeFieldContainer[RoomSpeaker]
    def __init__(self, room: _Optional[str] = ..., language: _Optional[str] = ..., participant: _Optional[str] = ..., backlog: _Optional[int] = ..., speakers: _Optional[_Iterable[_Union[RoomSpeaker, _Mapping]]] = ...) -> None: ...

class RoomSpeaker(_message.Message):
    __slots__ = ("id", "first_segment_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    first_segment_id: int
    def __init__(self, id: _Optional[str] = ..., first_segment_id: _Optional[int] = ...) -> None: ...

class ListenDropped(_message.Message):
    __slots__ = ("count", "total")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    count: int
    total: int
    def __init__(self, count: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class SimultaneousConfig(_message.Message):
    __slots__ = ("enabled", "step_ms", "agreement")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    step_ms: int
    agreement: int
    def __init__(self, enabled: bool = ..., step_ms: _Optional[int] = ..., agreement: _Optional[int] = ...) -> None: ...

class ResumeFrom(_message.Message):
    __slots__ = ("resume_token", "next_segment_id", "offset_ms", "lead_in_ms")
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    LEAD_IN_MS_FIELD_NUMBER: _ClassVar[int]
    resume_token: str
    next_segment_id: int
    offset_ms: int
    lead_in_ms: int
    def __init__(self, resume_token: _Optional[str] = ..., next_segment_id: _Optional[int] = ..., offset_ms: _Optional[int] = ..., lead_in_ms: _Optional[int] = ...) -> None: ...

class AudioPacket(_message.Message):
    __slots__ = ("data", "timestamp")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    timestamp: int
    def __init__(self, data: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class StreamingTranslateRequest(_message.Message):
    __slots__ = ("config", "audio", "control", "packet", "update")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    PACKET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    config: StreamingConfig
    audio: bytes
    control: StreamControl
    packet: AudioPacket
    update: StreamUpdate
    def __init__(self, config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., control: _Optional[_Union[StreamControl, str]] = ..., packet: _Optional[_Union[AudioPacket, _Mapping]] = ..., update: _Optional[_Union[StreamUpdate, _Mapping]] = ...) -> None: ...

class StreamUpdate(_message.Message):
    __slots__ = ("targets", "speaker_id", "speed", "conversation")
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    targets: TargetLanguages
    speaker_id: int
    speed: float
    conversation: Conversation
    def __init__(self, targets: _Optional[_Union[TargetLanguages, _Mapping]] = ..., speaker_id: _Optional[int] = ..., speed: _Optional[float] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class TargetLanguages(_message.Message):
    __slots__ = ("languages",)
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, languages: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamUpdated(_message.Message):
    __slots__ = ("status", "config", "first_segment_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.Status
    config: StreamingConfig
    first_segment_id: int
    def __init__(self, status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., first_segment_id: _Optional[int] = ...) -> None: ...

class StreamStarted(_message.Message):
    __slots__ = ("session_id", "config", "model", "limits", "resume_token", "notices")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NOTICES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    config: StreamingConfig
    model: ModelInfo
    limits: ServerLimits
    resume_token: str
    notices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., resume_token: _Optional[str] = ..., notices: _Optional[_Iterable[str]] = ...) -> None: ...

class Draining(_message.Message):
    __slots__ = ("deadline_unix_ms", "remaining_ms")
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_MS_FIELD_NUMBER: _ClassVar[int]
    deadline_unix_ms: int
    remaining_ms: int
    def __init__(self, deadline_unix_ms: _Optional[int] = ..., remaining_ms: _Optional[int] = ...) -> None: ...

class SpeechEvent(_message.Message):
    __slots__ = ("type", "offset_ms", "channel")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[SpeechEvent.Type]
        SPEECH_STARTED: _ClassVar[SpeechEvent.Type]
        SPEECH_ENDED: _ClassVar[SpeechEvent.Type]
    TYPE_UNSPECIFIED: SpeechEvent.Type
    SPEECH_STARTED: SpeechEvent.Type
    SPEECH_ENDED: SpeechEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    type: SpeechEvent.Type
    offset_ms: int
    channel: int
    def __init__(self, type: _Optional[_Union[SpeechEvent.Type, str]] = ..., offset_ms: _Optional[int] = ..., channel: _Optional[int] = ...) -> None: ...

class Commit(_message.Message):
    __slots__ = ("segment_id", "target_language", "text", "speech", "source_ms", "final", "words", "avg_logprob", "channel")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_MS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    target_language: str
    text: str
    speech: SynthesizedAudio
    source_ms: int
    final: bool
    words: _containers.RepeatedCompositeFieldContainer[WordTiming]
    avg_logprob: float
    channel: int
    def __init__(self, segment_id: _Optional[int] = ..., target_language: _Optional[str] = ..., text: _Optional[str] = ..., speech: _Optional[_Union[SynthesizedAudio, _Mapping]] = ..., source_ms: _Optional[int] = ..., final: bool = ..., words: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ..., avg_logprob: _Optional[float] = ..., channel: _Optional[int] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ("segments_total", "audio_received_ms", "reason", "audio_filled_ms", "resume_offset_ms", "packets_reordered", "packets_duplicate", "packets_late", "audio_concealed_ms")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[StreamEnd.Reason]
        HALF_CLOSE: _ClassVar[StreamEnd.Reason]
        IDLE_TIMEOUT: _ClassVar[StreamEnd.Reason]
        MAX_STREAM_DURATION: _ClassVar[StreamEnd.Reason]
        DRAINING: _ClassVar[StreamEnd.Reason]
        REVOKED: _ClassVar[StreamEnd.Reason]
        QUOTA: _ClassVar[StreamEnd.Reason]
        ERROR: _ClassVar[StreamEnd.Reason]
        ENGINE_FAILED: _ClassVar[StreamEnd.Reason]
    REASON_UNSPECIFIED: StreamEnd.Reason
    HALF_CLOSE: StreamEnd.Reason
    IDLE_TIMEOUT: StreamEnd.Reason
    MAX_STREAM_DURATION: StreamEnd.Reason
    DRAINING: StreamEnd.Reason
    REVOKED: StreamEnd.Reason
    QUOTA: StreamEnd.Reason
    ERROR: StreamEnd.Reason
    ENGINE_FAILED: StreamEnd.Reason
    SEGMENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_RECEIVED_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FILLED_MS_FIELD_NUMBER: _ClassVar[int]
    RESUME_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    PACKETS_REORDERED_FIELD_NUMBER: _ClassVar[int]
    PACKETS_DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_LATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONCEALED_MS_FIELD_NUMBER: _ClassVar[int]
    segments_total: int
    audio_received_ms: int
    reason: StreamEnd.Reason
    audio_filled_ms: int
    resume_offset_ms: int
    packets_reordered: int
    packets_duplicate: int
    packets_late: int
    audio_concealed_ms: int
    def __init__(self, segments_total: _Optional[int] = ..., audio_received_ms: _Optional[int] = ..., reason: _Optional[_Union[StreamEnd.Reason, str]] = ..., audio_filled_ms: _Optional[int] = ..., resume_offset_ms: _Optional[int] = ..., packets_reordered: _Optional[int] = ..., packets_duplicate: _Optional[int] = ..., packets_late: _Optional[int] = ..., audio_concealed_ms: _Optional[int] = ...) -> None: ...

class StreamingTranslateResponse(_message.Message):
    __slots__ = ("started", "speech_event", "segment", "ended", "interim", "draining", "commit", "updated", "eager_end_of_turn", "turn_resumed")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    SPEECH_EVENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    INTERIM_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    EAGER_END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    TURN_RESUMED_FIELD_NUMBER: _ClassVar[int]
    started: StreamStarted
    speech_event: SpeechEvent
    segment: SegmentResult
    ended: StreamEnd
    interim: InterimResult
    draining: Draining
    commit: Commit
    updated: StreamUpdated
    eager_end_of_turn: EagerEndOfTurn
    turn_resumed: TurnResumed
    def __init__(self, started: _Optional[_Union[StreamStarted, _Mapping]] = ..., speech_event: _Optional[_Union[SpeechEvent, _Mapping]] = ..., segment: _Optional[_Union[SegmentResult, _Mapping]] = ..., ended: _Optional[_Union[StreamEnd, _Mapping]] = ..., interim: _Optional[_Union[InterimResult, _Mapping]] = ..., draining: _Optional[_Union[Draining, _Mapping]] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ..., updated: _Optional[_Union[StreamUpdated, _Mapping]] = ..., eager_end_of_turn: _Optional[_Union[EagerEndOfTurn, _Mapping]] = ..., turn_resumed: _Optional[_Union[TurnResumed, _Mapping]] = ...) -> None: ...

class EagerEndOfTurn(_message.Message):
    __slots__ = ("segment_id", "start_ms", "end_ms")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    start_ms: int
    end_ms: int
    def __init__(self, segment_id: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class TurnResumed(_message.Message):
    __slots__ = ("segment_id", "offset_ms")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    offset_ms: int
    def __init__(self, segment_id: _Optional[int] = ..., offset_ms: _Optional[int] = ...) -> None: ...
