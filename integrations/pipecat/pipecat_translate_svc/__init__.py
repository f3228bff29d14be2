"""pipecat-translate-svc: translate_svc (self-hosted SeamlessM4T v2 speech translation) as a
Pipecat service. See ``TranslateSvcSTTService`` and docs/pipecat.md."""

from pipecat_translate_svc.languages import to_model_code, to_model_codes, to_pipecat_language
from pipecat_translate_svc.service import TranslateSvcSTTService
from pipecat_translate_svc.settings import TranslateSvcSTTSettings
from pipecat_translate_svc.speech import SPEECH_FRAME_S

__all__ = [
    "SPEECH_FRAME_S",
    "TranslateSvcSTTService",
    "TranslateSvcSTTSettings",
    "to_model_code",
    "to_model_codes",
    "to_pipecat_language",
]
__version__ = "0.1.0"
