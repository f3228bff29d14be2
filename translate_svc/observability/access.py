"""The access log: one structured line per call when it ends (logger ``translate_svc.access``).

Fields: ``request_id`` (the caller's ``x-request-id``, or generated), ``method``, ``peer``,
``tenant``, the config in brief (``encoding``, ``sample_rate_hz``, ``targets``, ``outputs``),
``audio_s``, ``segments`` (by status) and ``segments_total``, a door's own fields
(``CallInfo.extra``: the phone door's carrier, ear-voice lag and playout), ``duration_ms`` and the
final ``code``. With ``--log-format json`` each is a key of the line's object; as text they follow the
message as ``key=value``, a value that is not a plain word (a space, a quote, ``=``, a backslash,
anything outside printable ASCII) written as a JSON string, so no value a caller sent can forge a
field or a line (security finding H9). Streams are logged by the stream core (``session.StreamDriver``) for
every door; Translate by its servicer.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from translate_svc.types import AudioFormat, TranslationTask

logger = logging.getLogger("translate_svc.access")

#: the longest request id taken from a caller (longer ones are replaced by a generated id)
MAX_REQUEST_ID = 128


def new_request_id(given: str | None = None) -> str:
    """``given`` if it is a usable id (printable ASCII without spaces, at most 128 characters),
    else a new random one."""
    if given and len(given) <= MAX_REQUEST_ID and given.isascii() and given.isprintable() and " " not in given:
        return given
    return uuid.uuid4().hex


@dataclass
class CallInfo:
    """Who made a call, as its door saw it."""

    request_id: str
    method: str
    peer: str = ""
    started: float = field(default_factory=time.monotonic)
    #: a door's own fields for the line (the phone door's ear-voice lag), filled while the call runs
    extra: dict[str, Any] = field(default_factory=dict)


def config_brief(fmt: AudioFormat, task: TranslationTask) -> dict[str, Any]:
    """A call's config for its line (a container clip's rate is 0: its header has it)."""
    out = task.output
    outputs = {"transcript": out.transcript, "text": out.text, "speech": out.speech}
    return {
        "encoding": fmt.encoding.value,
        "sample_rate_hz": fmt.sample_rate_hz,
        "targets": ",".join(task.target_languages),
        "outputs": ",".join(name for name, on in outputs.items() if on),
    }


def log_call(
    call: CallInfo,
    *,
    code: str,
    tenant: str,
    config: Mapping[str, Any] | None = None,
    audio_s: float = 0.0,
    segments: Mapping[str, int] | None = None,
) -> None:
    fields: dict[str, Any] = {
        "request_id": call.request_id,
        "method": call.method,
        "peer": call.peer,
        "tenant": tenant,
        **(config or {}),
        "audio_s": round(audio_s, 3),
        "segments": dict(segments or {}),
        "segments_total": sum((segments or {}).values()),
        **call.extra,
        "duration_ms": round((time.monotonic() - call.started) * 1000),
        "code": code,
    }
    text = " ".join(f"{k}={_shown(v)}" for k, v in fields.items() if k != "segments")
    logger.info("call %s", text, extra=fields)


_PLAIN = re.compile(r"[!#-<>-\[\]-~]*")  # printable ASCII but space, '"', '=' and '\'


def _shown(value: Any) -> str:
    """A value as the text line writes it: as is when it is a plain word, else a JSON string."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)
