"""``open_room`` and ``room_status``: a room (docs/rooms.md) as an agent sets one up for people.

A room needs no creating: it exists while someone speaks into it or listens. ``open_room`` checks
that the agent's token may publish into it (its ``publish=``/``room=`` patterns, docs/security.md)
and answers what a speaker and listeners need: the addresses (the realtime WebSocket with its
``x_room`` session update, gRPC ``StreamingTranslate`` with its config; the listeners' WebSocket,
listen page and gRPC ``Listen``), and keys minted for this room only (client secrets,
``http/client_secrets.py``: the speaker's may only open a session that speaks into it, the
listeners' may only listen to it, both of the agent's tenant, for ``auth.client_secret_ttl_s``),
so the agent hands out no token of its own. A key grants no more than the agent's token: the
listeners' key only to an agent whose token may listen to the room (its ``listen=``/``room=``
patterns; security finding H4: a publish-only token got one and heard the room with it). gRPC takes no
client secret: a speaker or listener there uses a token of the tenant whose patterns cover the
room. ``room_status``: who speaks and who listens in which language, on every process sharing the
cluster store (``RoomRegistry.presence``). Addresses are as the agent reached the server (its
``Host``), the gRPC port's as the server listens. Event loop only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import mcp_types as types

from translate_svc.errors import InvalidInput, PermissionDenied, shown
from translate_svc.session.manager import SessionManager
from translate_svc.session.rooms.checks import check_room_name
from translate_svc.transport.http.client_secrets import LISTEN, LISTEN_RATES, PUBLISH, ClientSecrets
from translate_svc.transport.mcp import arguments as args
from translate_svc.transport.mcp import render
from translate_svc.transport.mcp.captions import captions_uri
from translate_svc.transport.tokens.file import Permission

#: the gRPC service's methods a speaker and a listener call
GRPC_SERVICE = "translate_svc.api.v1.Translator"


@dataclass(frozen=True)
class Reached:
    """How the agent reached the server: the HTTP port's scheme and ``Host``, and the gRPC port."""

    https: bool
    host: str
    grpc_port: int

    def http(self, path: str, *, socket: bool = False) -> str:
        scheme = ("wss" if self.https else "ws") if socket else ("https" if self.https else "http")
        return f"{scheme}://{self.host}{path}"

    @property
    def grpc_target(self) -> str:
        name = self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host
        return f"{name}:{self.grpc_port}"


class RoomTools:
    """The room tools over one process's rooms. ``secrets``: the HTTP port's client secrets (None:
    a server without tokens, where no key is needed)."""

    def __init__(self, manager: SessionManager, secrets: ClientSecrets | None, grpc_port: Callable[[], int]) -> None:
        self._m = manager
        self._secrets = secrets
        self._grpc_port = grpc_port

    def _room(self, caller: Any, room: str, tool: str) -> None:
        caller.need(Permission.STREAM, tool)
        check_room_name(room)
        if not caller.rooms.may_publish(room):
            raise PermissionDenied(
                f"this token may not publish into room {shown(room, 70)}: use a token whose publish= (or room=) "
                "pattern covers the room"
            )

    async def open_room(self, caller: Any, a: args.OpenRoomArgs, reached: Reached) -> types.CallToolResult:
        self._room(caller, a.room, "open_room")
        card = self._m.card
        known = {lang.code for lang in card.languages}
        for code in [a.source_language, *a.listen_languages]:
            if code not in known:
                raise InvalidInput(f"language {shown(code)} is not one of the model's: call list_languages")
        room = a.room
        speak_key = listen_key = None
        expires = None
        may_listen = caller.rooms.may_listen(room)
        if a.allow_rates and not (may_listen and caller.rooms.may_rate(room)):
            raise PermissionDenied(
                f"this token may not let listeners choose a speaking rate in room {shown(room, 70)}: its listen= "
                "(or room=) and rates= patterns must cover the room; call open_room without allow_rates"
            )
        if self._secrets is not None:
            tenant = caller.tenant.name
            speak_key, expires = self._secrets.mint(tenant=tenant, room=room, role=PUBLISH)
            if may_listen:  # a key grants no more than the token that asked for it
                role = LISTEN_RATES if a.allow_rates else LISTEN
                listen_key, _ = self._secrets.mint(tenant=tenant, room=room, role=role)
        path = quote(room, safe="")
        update = {
            "type": "session.update",
            "session": {
                # the door's session needs an output language: the speaker's own (its stream
                # carries only its own; the room adds every language listened in)
                "audio": {
                    "input": {"language": a.source_language},
                    "output": {"language": (a.listen_languages or [a.source_language])[0]},
                },
                "x_room": {"name": room},
            },
        }
        listen_ws = reached.http(f"/v1/rooms/{path}/listen", socket=True)
        page = reached.http(f"/listen/{path}")
        listeners: dict[str, Any] = {
            "websocket": f"{listen_ws}?language=<code>",
            "websocket_subprotocols": ["translate-svc.rooms.v1", "openai-insecure-api-key.<key>"],
            "page": page + (f"#key={listen_key}" if listen_key else ""),
            "pages": {
                code: f"{page}?language={code}" + (f"#key={listen_key}" if listen_key else "")
                for code in a.listen_languages
            },
            "grpc": {
                "target": reached.grpc_target,
                "method": f"/{GRPC_SERVICE}/Listen",
                "request": {"room": room, "language": "<code>"},
                "token": "a token of this tenant whose listen= (or room=) pattern covers the room",
            },
            "key": listen_key,
            # whether a listen with the key may choose a speaking rate (``?speed=``; the page's rate)
            "rates_allowed": a.allow_rates or self._secrets is None,
            "captions_resource": captions_uri(room, "<code>"),
        }
        if self._secrets is not None and not may_listen:
            listeners["key_note"] = (
                "no listeners' key: this token may not listen to the room (its listen= or room= patterns); "
                "listeners need a token or a key of a token that may"
            )
        speaker: dict[str, Any] = {
            "websocket": reached.http("/v1/realtime/translations", socket=True),
            "websocket_first_message": update,
            "grpc": {
                "target": reached.grpc_target,
                "method": f"/{GRPC_SERVICE}/StreamingTranslate",
                "config": {"source_language": a.source_language, "room": {"name": room}},
                "token": "a token of this tenant whose publish= (or room=) pattern covers the room",
            },
            "key": speak_key,
        }
        result = {
            "room": room,
            "tenant": caller.tenant.name,
            "speaker": speaker,
            "listeners": listeners,
            "keys_expire_unix_s": expires,
            "note": "keys open a session or a listen until they expire; one opened runs on"
            if speak_key
            else "this server takes no tokens: no key is needed",
        }
        return render.answer(result)

    async def room_status(self, caller: Any, a: args.RoomStatusArgs) -> types.CallToolResult:
        self._room(caller, a.room, "room_status")
        presence = await self._m.rooms.presence(caller.tenant, a.room)
        listeners = dict(Counter(presence.listeners) + Counter(presence.remote_listeners))
        return render.answer(
            {
                "room": a.room,
                # speakers on the process that answered, and on the others (workers, pods)
                "speakers": list(presence.speakers),
                "speakers_elsewhere": list(presence.remote_speakers),
                "listeners": dict(sorted(listeners.items())),  # by language, every process
                "active": bool(presence.speakers or presence.remote_speakers or listeners),
            }
        )
