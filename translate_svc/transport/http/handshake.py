"""A WebSocket handshake on the HTTP port as OpenAI's server does it, sans I/O: which subprotocol the
101 selects, and which key the client presented. Every route set whose sockets browsers open
uses it (OpenAI's realtime sessions: ``realtime``; a room listener's: its own subprotocol).

Browsers and Node's global ``WebSocket`` cannot set an ``Authorization`` header, so OpenAI tells
them to offer ``Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.<key>``; its server
selects ``realtime``. The WHATWG rules fail a connection whose 101 selects none of the protocols
the client offered ("Server did not respond with sent protocols"), so the port selects the
endpoint's protocol whenever it is offered, never the key entry (the 101 would echo the key), and
refuses an offer without it before the upgrade (400: no selection could satisfy such a client,
and aiohttp would log the offered entries, the key among them). The key is taken as a bearer
token is (``Authorization`` and the key entry name the same key, or one of them is absent), so
the refusals (401/403, then 429/503) are the same either way. Nothing here logs or echoes a key.
Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: the entry a browser's key travels in
KEY_PREFIX = "openai-insecure-api-key."
#: an RFC 9110 token (what a subprotocol entry may hold; browsers refuse anything else before
#: they connect): letters, digits and !#$%&'*+-.^_`|~
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class Offer:
    """What a handshake offered: the subprotocol to select (None: none was offered), the key from
    an ``openai-insecure-api-key.`` entry (None: no such entry; "" one that carries no usable
    key), or why the handshake is refused (``problem``, ``status``, ``code``; the message names
    no client value)."""

    protocol: str | None = None
    key: str | None = None
    problem: str | None = None
    status: int = 400
    code: str = "invalid_subprotocol"


def read_offer(header: str | None, protocol: str) -> Offer:
    """The ``Sec-WebSocket-Protocol`` header's entries (comma-separated, in any order) as an
    ``Offer``. Entries other than ``protocol`` (OpenAI's ``realtime``; a room listener's socket has
    its own) and the key (``openai-organization.…``, ``openai-project.…``, ``openai-beta.…``) are accepted
    and not used."""
    if header is None:
        return Offer()
    entries = [e.strip() for e in header.split(",")]
    keys = [e[len(KEY_PREFIX) :] for e in entries if e.startswith(KEY_PREFIX)]
    if protocol not in entries:
        return Offer(
            problem=f'this endpoint speaks the "{protocol}" subprotocol: offer it (with '
            f'"{KEY_PREFIX}<token>" beside it to authenticate), or offer none'
        )
    if len(keys) > 1:
        return Offer(problem=f'the handshake offers {len(keys)} "{KEY_PREFIX}" entries: offer one key')
    if not keys:
        return Offer(protocol)
    key = keys[0]
    if not _TOKEN.fullmatch(key):
        return Offer(
            protocol,
            "",
            problem=f'the "{KEY_PREFIX}" subprotocol entry carries no key, or one that is not an HTTP token '
            "(letters, digits and !#$%&'*+-.^_`|~ only): put this server's token (or a client secret) after the dot",
            status=401,
            code="missing_api_key",
        )
    return Offer(protocol, key)


def presented_key(bearer_token: str | None, offer: Offer) -> tuple[str | None, str | None]:
    """The key a handshake presented, from ``Authorization`` (``tokens.bearer``'s value: "" for a
    header that is no bearer token, refused as before) or the subprotocol key entry, and None; or
    None and why the two cannot both be used (they name different keys)."""
    if offer.key is None or bearer_token == "":
        return bearer_token, None
    if bearer_token is not None and bearer_token != offer.key:
        return None, (
            f'the handshake presents two different keys (Authorization and the "{KEY_PREFIX}" subprotocol '
            "entry): send the key one way"
        )
    return offer.key, None
