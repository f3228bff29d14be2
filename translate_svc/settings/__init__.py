"""Typed configuration, built once at start-up and passed down as sub-objects.

Environment: ``TRANSLATE_SVC_<SECTION>__<FIELD>`` (e.g. ``TRANSLATE_SVC_ENGINE__MAX_BATCH_SIZE=32``).
CLI flags override the environment. Components never read the environment themselves.

``Settings`` is the root; each section has a module of its own, and every section's
class is imported from here as before (``from translate_svc.settings import LimitsSettings``):

- ``model.py``: ``ModelSettings``; ``engine.py``: ``EngineSettings``;
- ``limits.py``: ``LimitsSettings``, one flat section made of a group per door and concern;
- ``server.py``: ``ServerSettings`` and ``AuthSettings``;
- ``telephony.py``: ``PhoneSettings`` and ``SipSettings``;
- ``rooms.py``: ``RoomSettings``; ``cluster.py``: ``ClusterSettings``;
- ``recordings.py``: ``RecordingsSettings``; ``mcp.py``: ``McpSettings``;
- ``webhooks.py``: ``WebhookSettings`` and ``WebhookEndpoint`` (and how their secrets are shown).
- ``glossaries.py``: ``GlossarySettings`` (stored glossaries).
- ``jobs.py``: ``JobSettings`` (background jobs).
- ``media.py``: ``MediaSettings`` (the processes that open jobs' uploads).

The sections import none of each other (a contract in pyproject.toml); what crosses sections is
checked here, in ``Settings._check``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from translate_svc.settings.cluster import ClusterSettings
from translate_svc.settings.credentials import CredentialsSettings
from translate_svc.settings.engine import EngineSettings
from translate_svc.settings.glossaries import GlossarySettings
from translate_svc.settings.jobs import JobSettings
from translate_svc.settings.limits import LimitsSettings
from translate_svc.settings.mcp import McpSettings
from translate_svc.settings.media import MediaSettings
from translate_svc.settings.model import DEFAULT_LID_DIR, DEFAULT_MODEL_DIR, ModelSettings
from translate_svc.settings.recordings import RecordingsSettings
from translate_svc.settings.rooms import RoomSettings
from translate_svc.settings.server import AuthSettings, ServerSettings
from translate_svc.settings.telephony import PhoneSettings, SipSettings
from translate_svc.settings.webhooks import WebhookEndpoint, WebhookSettings
from translate_svc.vad.segmenter import SegmenterConfig

__all__ = [
    "DEFAULT_LID_DIR",
    "DEFAULT_MODEL_DIR",
    "AuthSettings",
    "ClusterSettings",
    "CredentialsSettings",
    "EngineSettings",
    "GlossarySettings",
    "JobSettings",
    "LimitsSettings",
    "McpSettings",
    "MediaSettings",
    "ModelSettings",
    "PhoneSettings",
    "RecordingsSettings",
    "RoomSettings",
    "ServerSettings",
    "Settings",
    "SipSettings",
    "WebhookEndpoint",
    "WebhookSettings",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRANSLATE_SVC_", env_nested_delimiter="__", extra="forbid")

    model: ModelSettings = ModelSettings()
    #: segmentation defaults (a stream may override them): the segmenter's own frozen config, whose
    #: ``__post_init__`` is the one place VAD parameters are checked (pydantic calls it)
    vad: SegmenterConfig = SegmenterConfig()
    limits: LimitsSettings = LimitsSettings()
    engine: EngineSettings = EngineSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    phone: PhoneSettings = PhoneSettings()
    sip: SipSettings = SipSettings()
    rooms: RoomSettings = RoomSettings()
    cluster: ClusterSettings = ClusterSettings()
    recordings: RecordingsSettings = RecordingsSettings()
    mcp: McpSettings = McpSettings()
    webhooks: WebhookSettings = WebhookSettings()
    glossaries: GlossarySettings = GlossarySettings()
    jobs: JobSettings = JobSettings()
    media: MediaSettings = MediaSettings()
    credentials: CredentialsSettings = CredentialsSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: text (for a person at a terminal) or json (one object per line, for a log pipeline)
    log_format: Literal["text", "json"] = "text"
    #: threads of numpy's BLAS (OpenBLAS), used by the features thread's filterbank products. Its
    #: idle workers spin: on 2 cores one took 60-70 % of a core from the model and the event loop
    blas_threads: int = Field(1, ge=1, le=256)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.recordings.dir is not None and self.auth.tokens_file is None:
            raise ValueError("recordings.dir needs auth.tokens_file: each tenant's record= policy is stated there")
        if self.sip.tls_port is not None and self.server.tls_cert_file is None:
            raise ValueError("sip.tls_port needs the server's certificate: set server.tls_cert_file and tls_key_file")
        limits = self.limits
        if limits.max_chunk_bytes > limits.max_message_bytes:
            raise ValueError("limits.max_chunk_bytes must not exceed limits.max_message_bytes")
        # a stream message: an audio chunk and 64 KiB for the rest (transport/calls.py)
        stream_message = 64 * 1024 + limits.max_chunk_bytes
        if limits.max_receive_message_bytes < stream_message:
            raise ValueError(
                f"limits.max_receive_message_bytes ({limits.max_receive_message_bytes}) must hold a stream message: "
                f"limits.max_chunk_bytes + 64 KiB = {stream_message} bytes; raise it or lower max_chunk_bytes"
            )
        return self
