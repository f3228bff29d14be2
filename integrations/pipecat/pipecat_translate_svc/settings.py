"""``TranslateSvcSTTSettings``: the service's runtime-updatable settings (Pipecat's
``STTUpdateSettingsFrame`` delta), kept apart from the service that applies them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.services.settings import STTSettings
from pipecat.transcriptions.language import Language
from pipecat.utils.types import NOT_GIVEN, NotGiven


@dataclass
class TranslateSvcSTTSettings(STTSettings):
    """Runtime-updatable settings of ``TranslateSvcSTTService`` (``STTUpdateSettingsFrame``).

    Parameters:
        language: the spoken (source) language; None: not given (no transcript unless the
            service detects it). Stored as the model's code (``"eng"``).
        target_languages: the languages to translate into, first the main one (its speech is
            played unless ``audio_destinations`` says otherwise). Stored as model codes.
        speaker_id: the vocoder's voice; None: the server's default.

    A change of ``target_languages`` or ``speaker_id`` is sent to the running stream as an update
    (``AsyncStream.update``: every segment that closes from then on uses it; the stream, its
    timeline and its segment ids go on). A change of ``language`` restarts the stream, once the
    user is not speaking (pipecat's reconnect): the old stream is half-closed and its last
    results still come.
    """

    target_languages: list[Language | str] | NotGiven = field(default_factory=lambda: NOT_GIVEN)
    speaker_id: int | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
