import logging

logger = logging.getLogger("livekit.plugins.translate_svc")
