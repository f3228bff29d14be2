"""The MCP tools' arguments: one pydantic model per tool, whose JSON schema is the tool's
``inputSchema`` (what an agent framework shows its model) and whose validation is the first check
of a call (a field at fault named, as ``ToolInputError``). Bounded before anything is converted:
lists and strings have a most that a client's schema already says (the server's limits
themselves, ``limits.max_*``, are checked by the session cores with their own messages).

Pure: no web framework, no MCP types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from translate_svc.types import MAX_SPEAKERS, SPEED_MAX, SPEED_MIN, check_speed

#: a language: the model's code (``spa``), as ListLanguages lists them
Code = Annotated[str, Field(min_length=2, max_length=16, description="a model language code, e.g. eng, spa, fra")]
#: how many items a list argument may hold at most, whatever the server's limits (they are lower)
_MOST = 512


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TermArg(_Args):
    """A phrase to get right: boosted (``keep`` false) or carried verbatim (``keep`` true)."""

    phrase: str = Field(min_length=1, max_length=256)
    keep: bool = Field(False, description="carry the phrase verbatim into the translations (a name, a brand)")
    weight: float | None = Field(None, gt=0, le=10, description="how strongly to boost it (default 3); not with keep")


class GlossaryArg(_Args):
    """A glossary entry: translate ``phrase`` as ``translation`` into ``target_language``."""

    phrase: str = Field(min_length=1, max_length=256)
    translation: str = Field(min_length=1, max_length=256)
    target_language: Code
    ignore_case: bool = False


class ListLanguagesArgs(_Args):
    pass


#: the speaking rate of a tool's speech (``OutputOptions.speed``): its range is in the schema an
#: agent reads, and a value out of it is refused with ``check_speed``'s words, which name the
#: argument and the whole range (pydantic's ``ge``/``le`` would name one bound)
Speed = Annotated[
    float,
    Field(
        strict=True,
        description=f"the speaking rate of the speech, {SPEED_MIN}..{SPEED_MAX} (1: the model's own; 1.5 speaks in "
        "1/1.5 of the time, at the same pitch)",
        json_schema_extra={"minimum": SPEED_MIN, "maximum": SPEED_MAX},
    ),
    AfterValidator(lambda v: check_speed(v, "speed")),
]


class TranslateTextArgs(_Args):
    texts: list[Annotated[str, Field(max_length=100_000)]] = Field(min_length=1, max_length=_MOST)
    source_language: Code
    target_languages: list[Code] = Field(min_length=1, max_length=_MOST)
    terms: list[TermArg] = Field(default_factory=list, max_length=_MOST)
    glossary: list[GlossaryArg] = Field(default_factory=list, max_length=_MOST)
    glossary_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=_MOST, description="stored glossaries (by id) whose entries apply too"
    )
    speech: bool = Field(False, description="also return each translation spoken (WAV audio content)")
    speech_sample_rate_hz: int = Field(16000, ge=8000, le=48000)
    speed: Speed = 1.0


class ClipArgs(_Args):
    """A clip a tool reads: its bytes (base64) or an https URL to fetch, and its encoding."""

    audio_base64: str | None = Field(
        None, description="the clip's bytes, base64 (WAV, FLAC, MP3 or OGG unless encoding says raw PCM)"
    )
    audio_url: str | None = Field(
        None, max_length=2048, description="or an https URL to fetch the clip from (hosts the operator allowed)"
    )
    encoding: Literal["CONTAINER", "LINEAR16", "FLOAT32", "MULAW", "ALAW"] = Field(
        "CONTAINER", description="CONTAINER: a file (its header says the rest); else raw samples at sample_rate_hz"
    )
    sample_rate_hz: int = Field(0, ge=0, le=192_000, description="raw PCM's rate (0 for CONTAINER)")
    channels: int = Field(1, ge=1, le=8)

    @model_validator(mode="after")
    def _one_source(self) -> ClipArgs:
        if (self.audio_base64 is None) == (self.audio_url is None):
            raise ValueError("give the clip as exactly one of audio_base64 and audio_url")
        return self


class DetectSyntheticArgs(ClipArgs):
    pass


class TranslateAudioArgs(ClipArgs):
    source_language: Code | None = Field(None, description="the spoken language; omit to detect it")
    detect_languages: list[Code] | None = Field(
        None,
        max_length=_MOST,
        description="detect the spoken language among these (empty: any); with no source_language it is detected "
        "among every language",
    )
    target_languages: list[Code] = Field(
        default_factory=list, max_length=_MOST, description="languages to translate into (empty: transcript only)"
    )
    conversation: list[Code] | None = Field(
        None,
        max_length=_MOST,
        description="a conversation's languages (two to four, one per party), in place of target_languages, "
        "source_language and detect_languages: each segment's language is identified among them and it is "
        "translated into the others",
    )
    stated_language: Code | None = Field(
        None, description="with conversation: the clip's language as the caller states it (no identification runs)"
    )
    voices: dict[Code, Annotated[int, Field(ge=0)]] | None = Field(
        None,
        max_length=_MOST,
        description="with conversation: the voice (a speaker id, 0..num_speakers-1) of the speech made in a language, "
        'keyed by that language (the speech its party hears), e.g. {"spa": 2}; others take the default voice',
    )
    speeds: dict[Code, float] | None = Field(
        None,
        max_length=_MOST,
        description=f"with conversation: the speaking rate ({SPEED_MIN}..{SPEED_MAX}) of the speech made in a "
        'language, keyed by that language, e.g. {"spa": 0.85}; others take speed',
    )
    terms: list[TermArg] = Field(default_factory=list, max_length=_MOST)
    glossary: list[GlossaryArg] = Field(default_factory=list, max_length=_MOST)
    glossary_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=_MOST, description="stored glossaries (by id) whose entries apply too"
    )
    transcript: bool = True
    speech: bool = Field(False, description="also return the translated speech (WAV audio content, one per language)")
    speech_sample_rate_hz: int = Field(16000, ge=8000, le=48000)
    speed: Speed = 1.0
    word_timings: bool = False
    noise_suppression: bool = Field(
        False,
        description="run RNNoise on the clip before the VAD and the model (steady noise: hiss, fans, lines; not "
        "other talkers)",
    )
    speakers: int = Field(
        0,
        ge=0,
        le=MAX_SPEAKERS,
        description=f"label each segment (and its words) with its speaker, telling apart at most this many "
        f"(1..{MAX_SPEAKERS}; labels 1..N, over the whole clip); 0: no labels",
    )

    @model_validator(mode="after")
    def _stated_in_a_conversation(self) -> TranslateAudioArgs:
        for name, given in (
            ("stated_language", self.stated_language),
            ("voices", self.voices),
            ("speeds", self.speeds),
        ):
            if given is not None and self.conversation is None:
                raise ValueError(f"{name} goes with conversation: give the conversation's languages too")
        return self


class OpenRoomArgs(_Args):
    room: str = Field(min_length=1, max_length=64, description="the room's name: 1-64 letters, digits, '.', '_' or '-'")
    source_language: Code = Field(description="the language the speaker speaks")
    listen_languages: list[Code] = Field(
        default_factory=list, max_length=_MOST, description="languages to list listen links for (any may listen)"
    )
    allow_rates: bool = Field(
        False,
        description="let the listeners' key choose a speaking rate (each rate in use costs the tenant a vocoder row "
        "per segment, from its audio budget); off: a listen with that key asking a rate is refused",
    )


class RoomStatusArgs(_Args):
    room: str = Field(min_length=1, max_length=64)


class ToolInputError(Exception):
    """A tool's arguments did not validate: which field, and what it needs (no value echoed)."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def parse(kind: type[_Args], arguments: dict[str, object] | None) -> _Args:
    """``arguments`` as ``kind``, or ``ToolInputError`` naming the first field at fault."""
    try:
        return kind.model_validate(arguments or {})
    except ValidationError as e:
        first = e.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        where = f"argument {field}" if field else "the arguments"
        raise ToolInputError(f"{where}: {first['msg']}", field) from None


def schema(kind: type[_Args]) -> dict[str, object]:
    """The tool's JSON schema (its ``inputSchema``)."""
    return kind.model_json_schema()
