"""A voice per speaker in a job's dub: with speaker labels on, each label speaks in a
vocoder voice of its own, the same for the whole file. Label 1 keeps the job's voice
(``speaker_id``), each next label the next voice of the model's (wrapping past its last), skipping
any a request named for a label of its own (``speaker_voices``; then label 1 too takes the next
free one). A segment without a label (its
voice could not be embedded) speaks in the job's voice.

The voices are the vocoder's speaker embeddings (SeamlessM4T v2: 200), which the model publishes
by number only, not by language or kind: distinct numbers are distinct voices, and which suits a
production is the caller's to name (docs/decisions.md, "A voice per speaker").

Pure: the request's check (``planned``) and each label's voice (``voice_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from translate_svc.errors import InvalidInput


@dataclass(frozen=True)
class SpeakerVoices:
    """A job request's ask: ``one``: every speaker in the job's voice; else each label of
    ``voices`` (label, voice) in that voice and the others in voices of their own."""

    one: bool = False
    voices: tuple[tuple[int, int], ...] = ()


#: a request that says nothing of voices: a voice each, with speaker labels
DISTINCT = SpeakerVoices()


def planned(
    asked: SpeakerVoices,
    *,
    speakers: int,
    speech: bool,
    conversation: bool,
    separate_channels: bool,
    num_speakers: int,
) -> tuple[tuple[int, int], ...] | None:
    """The job's ``JobSpec.speaker_voices``: None, one voice (no speaker labels, no speech, or
    ``one``); else the labels' voices the request named, checked (InvalidInput says what to fix)."""
    if asked.one and asked.voices:
        raise InvalidInput("speaker_voices: either one voice for every speaker or voices by label, not both")
    if asked.voices:
        if speakers < 2:
            raise InvalidInput("speaker_voices names voices by speaker label: set speakers to 2 or more")
        if conversation:
            raise InvalidInput("a conversation's voices are its parties': set them in conversation.voices")
        if separate_channels:
            raise InvalidInput("speaker_voices: a job of separate channels labels its parties by channel, not by voice")
        labels = [label for label, _ in asked.voices]
        if len(set(labels)) != len(labels):
            raise InvalidInput("speaker_voices names each speaker label once")
        for label, voice in asked.voices:
            if not 1 <= label <= speakers:
                raise InvalidInput(f"speaker_voices: label {label} is not a speaker's: use 1..{speakers}")
            if not 0 <= voice < num_speakers:
                raise InvalidInput(f"speaker_voices[{label}] is {voice}: use a voice 0..{num_speakers - 1}")
    if asked.one or speakers < 2 or not speech or conversation or separate_channels:
        return None
    return tuple(sorted(asked.voices))


def voice_of(label: int, base: int, named: Mapping[int, int], num_speakers: int) -> int:
    """Speaker ``label``'s voice: the one ``named`` for it, else the ``base`` voice for label 1 and
    the next ones for the next labels, past those ``named`` for others (0, no label: ``base``)."""
    if label in named:
        return named[label]
    if label < 1 or num_speakers <= 1:
        return base
    taken = set(named.values())
    free = [v for v in ((base + i) % num_speakers for i in range(num_speakers)) if v not in taken] or [base]
    rank = sum(1 for other in range(1, label) if other not in named)  # the labels before it given a voice
    return free[rank % len(free)]
