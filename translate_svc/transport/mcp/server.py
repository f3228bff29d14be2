"""The MCP server: the ``mcp`` SDK's low-level ``Server`` with this service's tools, their JSON
schemas (``arguments.py``) and the room captions resource (``captions.py``).

The SDK owns the protocol (both eras: the ``initialize`` handshake of 2025-11-25 and before, and
2026-07-28's per-request envelope with ``server/discover`` and ``subscriptions/listen``); every
handler here takes who is calling from the HTTP request the door let in (``Exchange``, put in
the ASGI scope by ``door.py``) and hands the work to the tools. A tool's own failure is a tool
result with ``isError`` (``render.tool_error``); an unknown tool, a resource that is not ours or
not the caller's, or a subscription refused is a JSON-RPC error (``MCPError``) whose ``data``
carries the same ``code`` and ``reason``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from translate_svc.errors import ErrorCode, ServiceError, shown
from translate_svc.transport.mcp import arguments as args
from translate_svc.transport.mcp import render
from translate_svc.transport.mcp.captions import TEMPLATE, Captions
from translate_svc.transport.mcp.rooms import Reached, RoomTools
from translate_svc.transport.mcp.toolbox import McpCaller, Toolbox, run_tool

#: the ASGI scope's key for the request's ``Exchange``
SCOPE_KEY = "translate_svc.mcp"


@dataclass(frozen=True)
class Exchange:
    """One HTTP request to ``/mcp`` as the door let it in: who calls, and how it reached us."""

    caller: McpCaller
    reached: Reached


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    model: type[args._Args]
    run: Callable[[Exchange, Any], Awaitable[types.CallToolResult]]
    read_only: bool = True


def _exchange(ctx: Any) -> Exchange:
    request = getattr(ctx, "request", None)
    exchange = request.scope.get(SCOPE_KEY) if request is not None else None
    if not isinstance(exchange, Exchange):  # only the door's requests reach the server
        raise MCPError(types.INTERNAL_ERROR, "this request did not come through the server's MCP endpoint")
    return exchange


def _mcp_error(e: ServiceError) -> MCPError:
    data: dict[str, Any] = {"code": e.code.value}
    if e.reason is not None:
        data["reason"] = e.reason
    if e.retry_after_ms is not None:
        data["retry_after_ms"] = e.retry_after_ms
    code = types.INVALID_PARAMS if e.code is ErrorCode.INVALID_ARGUMENT else types.INVALID_REQUEST
    return MCPError(code, e.message, data)


def tools(toolbox: Toolbox, rooms: RoomTools) -> dict[str, Tool]:
    limits = toolbox.max_clip_bytes
    listed = [
        Tool(
            "list_languages",
            "The languages this server translates between, per language: speech in, text out, speech out, "
            "detectable; the model and the limits of the other tools. Cheap: no model run.",
            args.ListLanguagesArgs,
            lambda x, a: toolbox.list_languages(x.caller, a),
        ),
        Tool(
            "translate_text",
            "Translate texts into one or more languages (model codes from list_languages), with terms to keep or "
            "boost and glossary entries. One model run per text, batched with the server's other work; "
            "speech: also each translation spoken (WAV).",
            args.TranslateTextArgs,
            lambda x, a: toolbox.translate_text(x.caller, a),
        ),
        Tool(
            "translate_audio",
            "Transcribe a speech clip and translate it into zero or more languages: the transcript, each speech "
            "segment's span (ms) with its translations, and (speech: true) the translated speech as WAV audio, one "
            f"per language. The clip: audio_base64 (at most {limits} bytes) or an https audio_url on the "
            "operator's allow-list. Costs about the clip's length in model time, counted in the tenant's audio "
            "seconds.",
            args.TranslateAudioArgs,
            lambda x, a: toolbox.translate_audio(x.caller, a),
        ),
        Tool(
            "detect_synthetic_speech",
            "Whether a clip carries the watermark this server adds to every speech it makes (so: whether it is "
            "this service's synthetic speech), how surely (probability 0-1; marked over 0.75; clips under 2 s are "
            f"not conclusive) and where. The clip as translate_audio's (audio_base64, at most {limits} bytes, or an "
            "https audio_url). Costs a few hundredths of a CPU second per second of audio, counted in the tenant's "
            "audio seconds.",
            args.DetectSyntheticArgs,
            lambda x, a: toolbox.detect_synthetic_speech(x.caller, a),
        ),
        Tool(
            "open_room",
            "Set up a live room: one speaker, many listeners, each hearing the speech translated into their own "
            "language. Returns the speaker's and the listeners' addresses (WebSocket, listen page, gRPC) and keys "
            "for this room only, and the captions resource to read or watch. Needs a token that may publish into "
            "the room.",
            args.OpenRoomArgs,
            lambda x, a: rooms.open_room(x.caller, a, x.reached),
        ),
        Tool(
            "room_status",
            "Who is in a live room: its speakers, and how many listen in which language.",
            args.RoomStatusArgs,
            lambda x, a: rooms.room_status(x.caller, a),
        ),
    ]
    return {t.name: t for t in listed}


#: the tools that may fetch an https URL (the open world)
_FETCHING = ("translate_audio", "detect_synthetic_speech")


def build_server(toolbox: Toolbox, rooms: RoomTools, captions: Captions) -> Server[Any]:
    """The MCP server over the tools and the captions resource."""
    table = tools(toolbox, rooms)
    listed = [
        types.Tool(
            name=t.name,
            description=t.description,
            input_schema=args.schema(t.model),
            annotations=types.ToolAnnotations(
                read_only_hint=t.read_only, open_world_hint=t.name in ("translate_audio", "detect_synthetic_speech")
            ),
        )
        for t in table.values()
    ]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        _exchange(ctx)
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        exchange = _exchange(ctx)
        tool = table.get(params.name)
        if tool is None:
            raise MCPError(
                types.INVALID_PARAMS, f"no tool {shown(params.name, 40)}: call tools/list for this server's tools"
            )
        try:
            parsed = args.parse(tool.model, params.arguments)
        except args.ToolInputError as e:
            return render.tool_error(e.message, ErrorCode.INVALID_ARGUMENT.value, param=e.field)

        async def run(caller: McpCaller, a: Any) -> types.CallToolResult:
            return await tool.run(exchange, a)

        return await run_tool(run, exchange.caller, parsed)

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        _exchange(ctx)
        return types.ListResourcesResult(resources=[])

    async def list_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        _exchange(ctx)
        template = types.ResourceTemplate(
            uri_template=TEMPLATE,
            name="room captions",
            description="A live room's captions in one language: its final results of the last rooms.backlog_s "
            "seconds (speaker, segment id, span, text, transcript). Read it, or watch it with subscriptions/listen "
            "(updated as each segment lands).",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        exchange = _exchange(ctx)
        try:
            text = await captions.read(exchange.caller, str(params.uri))
        except ServiceError as e:
            raise _mcp_error(e) from None
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, text=text, mime_type="application/json")]
        )

    async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        exchange = _exchange(ctx)
        try:
            return await captions.listen(exchange.caller, ctx, params)
        except ServiceError as e:
            raise _mcp_error(e) from None

    return Server(
        "translate-svc",
        version="0.1.0",
        instructions="Speech and text translation (SeamlessM4T v2), clips and live rooms. Call list_languages "
        "first for the language codes.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscriptions_listen=listen,
    )
