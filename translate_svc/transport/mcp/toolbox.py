"""The MCP tools themselves: each one's arguments (``arguments.py``) into the session cores the
gRPC door drives for the same call, and their results out (``render.py``):

- ``list_languages``: the model card (ListLanguages'), under a unary call's admission;
- ``translate_text``: ``session.TextDriver`` (TranslateText's: admission as a unary call, then as a
  Translate call; the engine; the accounting);
- ``translate_audio``: ``session.clip.ClipDriver`` (Translate's: ``max_translate_calls`` and the
  tenant's caps, the clip's size and length, decoding, the same segmentation and engine), the clip
  inline (base64) or fetched (``fetch.py``);
- ``open_room`` / ``room_status``: a room's addresses and keys (``rooms.py``).

Each needs its token's permission (``languages``, ``translate``, ``stream``), as the gRPC method
it mirrors. Every refusal is a tool error (``render.tool_error``) saying what to change.
Event loop only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from translate_svc.errors import InvalidInput, PermissionDenied, ServiceError
from translate_svc.fetch import ClipRefused, Fetcher
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.clip import ClipDriver, ClipRequest
from translate_svc.session.calls.detect import DetectDriver, DetectRequest
from translate_svc.session.calls.text import TextDriver
from translate_svc.session.events import TextRequest
from translate_svc.session.manager import SessionManager
from translate_svc.session.task.counts import check_counts
from translate_svc.session.tenants.tenant import RoomRights, Tenant
from translate_svc.session.work import OnPool
from translate_svc.transport.mcp import arguments as args
from translate_svc.transport.mcp import render, signing
from translate_svc.transport.tokens.file import Permission, TokenDigest
from translate_svc.types import AudioEncoding, AudioFormat, EarOptions, OutputOptions, PartySpeech, Term


@dataclass(frozen=True)
class McpCaller:
    """Who calls a tool: the token's tenant, permissions and room rights, and its digest (its unary
    calls are bounded); a server without tokens: the default tenant with everything."""

    tenant: Tenant
    permissions: frozenset[Permission]
    rooms: RoomRights
    #: the token as its digest, and the tokens file's generation it was looked up in (a listen
    #: it holds is watched for revocation: ``tokens.TokenHolder``)
    token: TokenDigest | None = None
    generation: int | None = None
    peer: str = ""
    request_id: str | None = None

    @property
    def key(self) -> bytes | None:
        """The token's digest (its unary calls are bounded); None: a server without tokens."""
        return self.token.sha256 if self.token is not None else None

    def need(self, permission: Permission, tool: str) -> None:
        if permission not in self.permissions:
            raise PermissionDenied(
                f'the token lacks the permission "{permission.value}" that the tool {tool} needs: use a token whose '
                f"line in the tokens file grants {permission.value}"
            )

    def call(self, method: str) -> CallInfo:
        from translate_svc.transport.calls import call_info

        return call_info(self.request_id, method, self.peer)


def _terms(terms: list[args.TermArg], glossary: list[args.GlossaryArg]) -> tuple[Term, ...]:
    out: list[Term] = []
    for n, t in enumerate(terms):
        if t.keep and t.weight is not None:
            raise InvalidInput(f"terms[{n}].weight is set on a keep term: a term kept verbatim takes no weight")
        out.append(Term(t.phrase, keep=t.keep) if t.weight is None else Term(t.phrase, t.keep, t.weight))
    out.extend(
        Term(
            g.phrase,
            glossary=True,
            translation=g.translation,
            target_language=g.target_language,
            ignore_case=g.ignore_case,
        )
        for g in glossary
    )
    return tuple(out)


_ENCODINGS = {e.value: e for e in AudioEncoding if e is not AudioEncoding.OPUS}


class Toolbox:
    """The tools over one process's sessions. ``fetcher``: ``translate_audio``'s URL fetch."""

    def __init__(self, manager: SessionManager, fetcher: Fetcher, max_clip_bytes: int) -> None:
        self._m = manager
        self._fetcher = fetcher
        #: ``mcp.max_clip_bytes``, never more than ``limits.max_message_bytes``
        self.max_clip_bytes = min(max_clip_bytes, manager.limits.max_message_bytes)

    async def list_languages(self, caller: McpCaller, _: args.ListLanguagesArgs) -> types.CallToolResult:
        caller.need(Permission.LANGUAGES, "list_languages")
        async with self._m.admit_unary(caller.tenant, caller.key):
            card = self._m.card
        limits = self._m.limits
        languages = [
            {
                "code": lang.code,
                "name": lang.name,
                "speech_input": lang.speech_input,
                "text_output": lang.text_output,
                "speech_output": lang.speech_output,
                "detectable": lang.detectable,
            }
            for lang in card.languages
        ]
        return render.answer(
            {
                "languages": languages,
                "model": render.model_json(card),
                "limits": {
                    "max_clip_bytes": self.max_clip_bytes,
                    "max_clip_seconds": limits.max_clip_seconds,
                    "max_target_languages": limits.max_target_languages,
                    "max_texts": limits.max_texts,
                    "max_text_request_chars": limits.max_text_request_chars,
                    "max_terms": limits.max_terms,
                    "max_glossary_entries": limits.max_glossary_entries,
                },
            }
        )

    async def translate_text(self, caller: McpCaller, a: args.TranslateTextArgs) -> types.CallToolResult:
        caller.need(Permission.TRANSLATE, "translate_text")
        limits = self._m.limits
        check_counts(
            limits, texts=len(a.texts), targets=len(a.target_languages), terms=len(a.terms), glossary=len(a.glossary)
        )
        request = TextRequest(
            tuple(a.texts),
            a.source_language,
            tuple(a.target_languages),
            OutputOptions(
                text=True,
                speech=a.speech,
                transcript=False,
                speech_sample_rate_hz=a.speech_sample_rate_hz,
                speed=a.speed,
            ),
            _terms(a.terms, a.glossary),
            glossaries=tuple(a.glossary_ids),
        )
        driver = TextDriver(self._m, tenant=caller.tenant, call=caller.call("mcp.translate_text"), token=caller.key)

        async def read() -> TextRequest:
            return request

        card = self._m.card
        answer = await driver.run(read, lambda result: render.texts_answer(result, card))
        signer, name = self._m.content_signer, card.info.name
        return await signing.signed(answer, "translate_text", signer, name, self._encode(caller))

    async def translate_audio(self, caller: McpCaller, a: args.TranslateAudioArgs) -> types.CallToolResult:
        caller.need(Permission.TRANSLATE, "translate_audio")
        limits = self._m.limits
        check_counts(
            limits,
            targets=len(a.target_languages),
            candidates=len(a.detect_languages or ()),
            terms=len(a.terms),
            glossary=len(a.glossary),
        )
        if a.audio_url is not None:
            self._fetcher.check(a.audio_url)  # refused before a call slot is taken
        fmt = AudioFormat(_ENCODINGS[a.encoding], a.sample_rate_hz, a.channels)
        output = OutputOptions(
            text=True,
            speech=a.speech,
            transcript=a.transcript,
            speech_sample_rate_hz=a.speech_sample_rate_hz,
            word_timings=a.word_timings,
            speed=a.speed,
        )
        # detection as the gRPC door's LanguageDetection: on with candidates given (beside a source
        # language too), and on among every language when no source is given
        detect = None
        if a.detect_languages is not None:
            detect = tuple(a.detect_languages)
        elif a.source_language is None and a.conversation is None:
            detect = ()
        terms = _terms(a.terms, a.glossary)

        source: list[str] = []  # the clip's SHA-256, when its speech is signed

        async def read() -> ClipRequest:
            content = await self._clip_bytes(a)
            if self._m.content_signer is not None and a.speech:
                source.append(await signing.digest(content, self._encode(caller)))
            return ClipRequest(
                content,
                fmt,
                a.source_language or "",
                tuple(a.target_languages),
                output,
                self._m.vad_defaults,
                detect,
                terms,
                ear=EarOptions(noise_suppression=a.noise_suppression, speakers=a.speakers),
                glossaries=tuple(a.glossary_ids),
                conversation=tuple(a.conversation) if a.conversation is not None else None,
                stated_language=a.stated_language,
                parties=PartySpeech(tuple(sorted((a.voices or {}).items())), tuple(sorted((a.speeds or {}).items()))),
            )

        driver = ClipDriver(self._m, tenant=caller.tenant, call=caller.call("mcp.translate_audio"))
        card = self._m.card
        answer = await driver.run(read, lambda clip: render.clip_answer(clip, card))
        signer, name = self._m.content_signer, card.info.name
        return await signing.signed(answer, "translate_audio", signer, name, self._encode(caller), *source)

    def _encode(self, caller: McpCaller) -> OnPool:
        """The caller's work on the result-encoding pool (hashing and signing its speech)."""
        return OnPool(self._m.work.encode, caller.tenant.name)

    async def detect_synthetic_speech(self, caller: McpCaller, a: args.DetectSyntheticArgs) -> types.CallToolResult:
        caller.need(Permission.TRANSLATE, "detect_synthetic_speech")
        if a.audio_url is not None:
            self._fetcher.check(a.audio_url)  # refused before a call slot is taken
        fmt = AudioFormat(_ENCODINGS[a.encoding], a.sample_rate_hz, a.channels)

        async def read() -> DetectRequest:
            return DetectRequest(await self._clip_bytes(a), fmt)

        driver = DetectDriver(self._m, tenant=caller.tenant, call=caller.call("mcp.detect_synthetic_speech"))
        return await driver.run(read, render.detection_answer)

    async def _clip_bytes(self, a: args.ClipArgs) -> bytes:
        """The clip (admitted: the clip's read deadline runs), at most ``max_clip_bytes``."""
        limit = self.max_clip_bytes
        if a.audio_url is not None:
            return await self._fetcher.fetch(a.audio_url)
        assert a.audio_base64 is not None
        if len(a.audio_base64) > (limit + 2) // 3 * 4 + 4:  # checked before it is decoded
            raise _too_large(limit)
        try:
            content = base64.b64decode(a.audio_base64, validate=True)
        except (binascii.Error, ValueError):
            e = InvalidInput("audio_base64 is not valid base64: send the clip's bytes base64-encoded")
            e.param = "audio_base64"  # type: ignore[attr-defined]
            raise e from None
        if not content:
            raise InvalidInput("audio_base64 is empty: send the clip's bytes")
        if len(content) > limit:
            raise _too_large(limit)
        return content


def _too_large(limit: int) -> ClipRefused:
    return ClipRefused(
        f"the clip is over this server's {limit}-byte limit for the tools' clips (mcp.max_clip_bytes): send a shorter "
        "or more compressed clip",
        "clip_too_large",
    )


#: a tool: its description, argument model, and what runs it
ToolRun = Callable[[McpCaller, Any], Awaitable[types.CallToolResult]]


async def run_tool(run: ToolRun, caller: McpCaller, parsed: Any) -> types.CallToolResult:
    """A tool's answer, or its refusal as a tool error (``render.service_error``)."""
    try:
        return await run(caller, parsed)
    except ServiceError as e:
        return render.service_error(e)
