"""A model card whose languages are all detectable and which has an identifier: what a
conversation's task checks need (the unit tests of session/task/conversation.py and of its turns)."""

from __future__ import annotations

import dataclasses

from tests.support.fake_runner import LANGUAGES
from translate_svc.settings import LimitsSettings
from translate_svc.types import ModelCard, ModelInfo, OutputOptions

CARD = ModelCard(
    ModelInfo("fake", "none", True),
    tuple(dataclasses.replace(lang, detectable=True) for lang in LANGUAGES),
    num_speakers=2,
    identifier=ModelInfo("fake-lid", "none", True),
)
LIMITS = LimitsSettings()
#: text only: the checks need no speech output
TEXT = OutputOptions(speech=False)
