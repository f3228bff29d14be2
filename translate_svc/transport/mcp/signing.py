"""MCP's speech signed: each WAV of a tool's answer carries the operator's content credentials (a
C2PA manifest, ``marking/credentials.py``) naming the model, the track's language and, for a
clip, the SHA-256 of the audio it translates. Signing hashes the whole file: it runs on the
result-encoding pool as the caller's work (``session/work.py``), never on the loop."""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import mcp_types as types

from translate_svc.marking.credentials import Made, Signer
from translate_svc.session.work import Offload


async def digest(data: bytes, offload: Offload) -> str:
    """The SHA-256 (hex) of a caller's clip, off the loop."""
    return await offload(lambda: hashlib.sha256(data).hexdigest())


async def signed(
    answer: types.CallToolResult,
    tool: str,
    signer: Signer | None,
    model: str,
    offload: Offload,
    source_sha256: str | None = None,
) -> types.CallToolResult:
    """``answer`` with each of its WAVs signed (as it is without a signer, or for an error)."""
    if signer is None or answer.is_error:
        return answer
    languages = track_languages(answer.structured_content or {})
    content: list[types.ContentBlock] = []
    index = 0
    for block in answer.content:
        if isinstance(block, types.AudioContent):
            language = languages.get(index)
            title = f"{tool}-{index}{'-' + language if language else ''}.wav"
            made = Made(title, model, source_sha256, (language,) if language else ())
            data = await offload(functools.partial(_sign, signer, block.data, made))
            block = types.AudioContent(type="audio", data=data, mime_type=block.mime_type)
            index += 1
        content.append(block)
    return answer.model_copy(update={"content": content})


def track_languages(result: dict[str, Any]) -> dict[int, str]:
    """Each speech track's language, by its ``audio_index``, from the answer's JSON (a clip's
    segments or a text call's results, each translation naming its track)."""
    out: dict[int, str] = {}
    for item in [*result.get("segments", ()), *result.get("results", ())]:
        for t in item.get("translations") or ():
            speech = t.get("speech")
            if speech is not None:
                out[speech["audio_index"]] = t["language"]
    return out


def _sign(signer: Signer, data_b64: str, made: Made) -> str:
    wav = signer.sign_bytes(base64.b64decode(data_b64), "audio/wav", made)
    return base64.b64encode(wav).decode("ascii")
