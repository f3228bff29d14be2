"""The webhooks' settings (``Settings.webhooks``, for ``translate_svc/webhooks/``): the receivers,
their secrets and the queue's bounds.

A signing secret is a ``SecretStr`` (security finding H14): its repr, ``str`` and JSON are ``**********``,
so no log line, error or dump of the settings shows it, and a secret that is not valid is refused
by a message that names the rule, never the value (the CLI prints settings errors without their
input: ``settings_errors``). The one place that needs the value in JSON (the supervisor handing
a worker its settings) asks for it with ``REVEAL``. Pure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    ValidationError,
    model_validator,
)

#: ``model_dump_json(context=REVEAL)`` writes secrets as they are (a worker's settings); any other
#: dump writes ``**********``
REVEAL = {"reveal_secrets": True}
#: ``whsec_`` then at least 16 characters of base64 or base64url (RFC 4648 §4, §5), padded or not
_SECRET = re.compile(r"whsec_(?:[A-Za-z0-9+/]{16,}|[A-Za-z0-9_-]{16,})={0,2}")


def _check_secret(value: SecretStr) -> SecretStr:
    if not _SECRET.fullmatch(value.get_secret_value()):
        raise ValueError(
            "a webhook secret is whsec_ then at least 16 characters of base64 (or base64url) (the value is not shown)"
        )
    return value


def _dumped(value: SecretStr, info: SerializationInfo) -> str:
    context = info.context
    if isinstance(context, dict) and context.get("reveal_secrets"):
        return value.get_secret_value()
    return str(value)


#: a Standard Webhooks secret: ``whsec_`` then base64 or base64url (its key is decoded at start:
#: ``webhooks/outbox.py``)
WebhookSecret = Annotated[SecretStr, AfterValidator(_check_secret), PlainSerializer(_dumped, when_used="json")]


def shown_url(url: str) -> str:
    """A receiver's URL for a log line or an error: scheme, host, port and path only (no user name,
    password, query or fragment, where an operator may have put a credential)."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    return f"{scheme}://{host}{slash}{path.split('?', 1)[0].split('#', 1)[0]}"


class WebhookEndpoint(BaseModel):
    """One receiver of the service's events (Standard Webhooks, ``translate_svc/webhooks/``)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
    #: the signing secret, ``whsec_`` and base64 (Standard Webhooks; base64url taken too)
    secret: WebhookSecret
    #: more secrets signed with besides ``secret`` (a rotation: the receiver's old and new both verify)
    secrets: list[WebhookSecret] = Field(default_factory=list, max_length=4)
    #: the event types sent to it (``session.ended``, ...); empty: every type
    events: list[str] = Field(default_factory=list)
    #: the tenants whose events are sent to it; empty: every tenant
    tenants: list[str] = Field(default_factory=list)


class WebhookSettings(BaseModel):
    """Signed events to the operator's systems and the usage records they carry
    (``translate_svc/webhooks/``, docs/deploy.md "Webhooks and usage")."""

    #: the receivers (env ``TRANSLATE_SVC_WEBHOOKS__ENDPOINTS``: a JSON list of objects)
    endpoints: list[WebhookEndpoint] = Field(default_factory=list, max_length=32)
    #: an ``http://`` receiver is refused unless this is set (one inside the cluster's network): a
    #: delivery carries the tenant's usage, and its signature proves only who sent it
    allow_http: bool = False
    #: where the queue and the usage records are kept (an SQLite file, ``events.sqlite3``); None:
    #: neither (no webhooks, no ``translate-svc usage``). Needed when ``endpoints`` is set
    data_dir: Path | None = None
    #: deliveries kept waiting at most (every endpoint's together); when it is full, a new one takes
    #: the place of the oldest of the tenant with the most waiting (each tenant keeps its share),
    #: counted per tenant (``translate_svc_webhook_dropped_total``) and logged at a bounded rate
    max_queued: int = Field(100_000, ge=1, le=10_000_000)
    #: an event is retried for this long after it was made, then given up (counted and logged)
    retry_for_s: float = Field(72 * 3600.0, gt=0, le=30 * 86_400)
    #: the first retry's wait; each next one doubles, up to ``max_backoff_s`` (full jitter)
    first_backoff_s: float = Field(5.0, gt=0, le=3600)
    max_backoff_s: float = Field(3600.0, gt=0, le=86_400)
    #: one delivery's whole time (connect, send, answer); a redirect is not followed (a failure)
    timeout_s: float = Field(10.0, gt=0, le=300)
    #: deliveries in flight at once per endpoint
    max_in_flight: int = Field(8, ge=1, le=256)
    #: a process's live sessions are checkpointed this often; a session whose process stopped
    #: checkpointing for 3 x this long (killed) is ended by another (``ending: lost``)
    lease_s: float = Field(10.0, ge=0.1, le=600)
    #: usage records kept this long (``translate-svc usage`` answers from them)
    usage_retention_days: int = Field(400, ge=1, le=3650)

    @model_validator(mode="after")
    def _check(self) -> WebhookSettings:
        if self.endpoints and self.data_dir is None:
            raise ValueError(
                "webhooks.endpoints needs webhooks.data_dir (env TRANSLATE_SVC_WEBHOOKS__DATA_DIR): the queue of "
                "deliveries is kept on disk there"
            )
        plain = [shown_url(e.url) for e in self.endpoints if e.url[:7].lower() == "http://"]
        if plain and not self.allow_http:
            raise ValueError(
                f"webhooks.endpoints: {plain[0][:120]} is not https://: deliveries carry each tenant's usage; use "
                "https://, or set webhooks.allow_http (TRANSLATE_SVC_WEBHOOKS__ALLOW_HTTP=true) for a receiver "
                "inside the cluster's network"
            )
        return self


def settings_errors(error: ValidationError) -> str:
    """A settings ``ValidationError`` as lines of where and what, without the values given (pydantic's
    own text quotes each input, a webhook secret's among them)."""
    lines = [f"{error.error_count()} invalid setting(s)"]
    for e in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in e["loc"]) or "settings"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)
