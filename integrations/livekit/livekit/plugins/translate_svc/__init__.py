"""translate_svc plugin for LiveKit Agents.

A ``livekit.agents.beta.translation.TranslationModel`` over translate_svc, a self-hosted speech
translation service (SeamlessM4T v2 behind a gRPC bidirectional stream), through its Python SDK
``translate_svc.client``. See docs/livekit.md in the translate_svc repository.

    from livekit.agents.beta.translation import TranslationSession
    from livekit.plugins import translate_svc

    session = TranslationSession(
        model=translate_svc.TranslationModel("translate.example:50051", target_language="es", source_language="en")
    )
"""

from translate_svc.client import SimultaneousOptions, Term, TlsOptions, VadOptions

from ._languages import UnsupportedLanguageError
from ._shared import (
    AudioDroppedError,
    LanguageRefusedError,
    ServerDrainingError,
    StreamRefusedError,
    StreamRestartedError,
)
from .translation import TranslatedSegment, TranslationModel, TranslationModelSession
from .version import __version__

__all__ = [
    "AudioDroppedError",
    "LanguageRefusedError",
    "ServerDrainingError",
    "SimultaneousOptions",
    "StreamRefusedError",
    "StreamRestartedError",
    "Term",
    "TlsOptions",
    "TranslatedSegment",
    "TranslationModel",
    "TranslationModelSession",
    "UnsupportedLanguageError",
    "VadOptions",
    "__version__",
]

from livekit.agents import Plugin

from .log import logger


class TranslateSvcPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(TranslateSvcPlugin())

# Cleanup docs of unexported modules
_module = dir()
NOT_IN_ALL = [m for m in _module if m not in __all__]

__pdoc__ = {}

for n in NOT_IN_ALL:
    __pdoc__[n] = False
