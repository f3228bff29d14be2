"""Audio from an ``https`` URL, fetched by the server for a caller (docs/security.md, "The MCP
endpoint"): the MCP door's ``translate_audio`` clip (``transport/mcp/``) and a job's audio
(``jobs/intake.py``, its messages reworded there), so on a floor under both (the floors' contract).
A request the server makes on a caller's behalf: every part of it is the operator's to allow and
bounded. Its messages are the MCP door's words (``audio_url``, ``mcp.*``).

- Only ``https``, only a host the operator listed (``mcp.fetch_hosts``: a name, or ``*.example.com``
  for its subdomains), no user name or password in the URL.
- Never a private address: every address the name resolves to is checked (``allowed_address``:
  public unicast only; loopback, private, link-local, shared, multicast, reserved, site-local and
  unspecified refused; an IPv6 address that carries an IPv4 one (IPv4-mapped, SIIT, NAT64, 6to4,
  IPv4-compatible) checked as that IPv4, since a gateway on the way may deliver it there; issue
  68 H7), and the connection goes to the addresses that were checked (aiohttp connects to what
  the resolver returned: no second lookup to rebind). A host written as an address is checked
  the same way, and one written in a form only ``inet_aton`` reads (``127.1``, ``0x7f.1``, a bare
  number) is refused: parsers disagree on those. Redirects are followed by hand, at most
  ``mcp.fetch_max_redirects``, each new URL checked as the first.
- Bounded: ``mcp.fetch_timeout_s`` for the whole fetch (connect, redirects and body), the body
  at most ``max_bytes`` (its ``Content-Length`` refused before it is read, and counted as it
  comes), no cookies kept, no proxy from the environment.

Every refusal is an ``InvalidInput`` naming what to change (``reason``: ``url_not_allowed``,
``fetch_failed``, ``clip_too_large``), quoting none of the URL but its host, cut short.
Event loop only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from translate_svc.errors import InvalidInput, shown

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class ClipRefused(InvalidInput):
    """A clip refused (a URL the server will not fetch, a fetch that failed, a clip over the
    limit): what to change, and which (``reason``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


#: IPv6 unicast that is global (RFC 4291); everything outside it is reserved or special
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits: IPv4-mapped, SIIT's
#: IPv4-translated (RFC 7915's ::ffff:0:0:0/96), the NAT64 well-known prefix (RFC 6052) and the
#: deprecated IPv4-compatible form (RFC 4291 2.5.5.1)
_LAST_32_BITS = tuple(ipaddress.IPv6Network(n) for n in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "::/96"))
#: 6to4 (RFC 3056): the IPv4 address in bits 16-47
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
#: refused whole: local-use NAT64 (RFC 8215: where its IPv4 sits is the operator's choice, and it is
#: never a public destination), site-local (RFC 3879, deprecated but still routed by some),
#: documentation (RFC 3849, RFC 9637), Teredo (RFC 4380: its client address is obscured)
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "fec0::/10", "2001:db8::/32", "3fff::/20", "2001::/32")
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (``_LAST_32_BITS``, 6to4), where a translator or
    relay on the way would deliver it; None if it carries none."""
    if any(address in net for net in _LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def allowed_address(address: IpAddress) -> bool:
    """Whether the server may connect to ``address`` for a client: a public unicast address only,
    an IPv6 address carrying an IPv4 one judged as that IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return allowed_address(inner)
        if address not in _GLOBAL_UNICAST or any(address in net for net in _REFUSED_V6):
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def inet_aton_only(host: str) -> bool:
    """Whether ``host`` is an IPv4 address only in a form ``inet_aton`` reads (``127.1``,
    ``0x7f.1``, ``2130706433``, ``0177.0.0.1``): no name, and not the four decimal numbers
    ``ipaddress`` takes. Some resolvers read it as that address, others as a name: refused."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` (lower case, no trailing dot) is one of ``patterns``: a name, or
    ``*.example.com`` (its subdomains, not itself)."""
    for pattern in patterns:
        p = pattern.strip().lower().rstrip(".")
        if p.startswith("*."):
            if host.endswith(p[1:]) and len(host) > len(p) - 1:
                return True
        elif host == p:
            return True
    return False


class _CheckedResolver(AbstractResolver):
    """The system's resolver, refusing a name any of whose addresses is not allowed: aiohttp then
    connects only to the addresses returned here."""

    def __init__(self, allowed: Callable[[IpAddress], bool]) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed
        #: the host refused for its addresses (the fetch's message says so)
        self.refused: str | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if not self._allowed(ipaddress.ip_address(entry["host"].split("%", 1)[0])):
                self.refused = host
                raise OSError(f"{host} resolves to an address that is not public")
        return found

    async def close(self) -> None:
        await self._inner.close()


class Fetcher:
    """Fetches clips for ``translate_audio``; one per MCP route set. ``allowed`` and ``ssl_context``
    are the production checks unless a test gives its own (a loopback server)."""

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        max_bytes: int,
        timeout_s: float,
        max_redirects: int,
        allowed: Callable[[IpAddress], bool] = allowed_address,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self._allowed = allowed
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True

    def check(self, url: str) -> str:
        """The URL's host, if the server may fetch it at all (before any lookup), else ClipRefused."""
        if not self.hosts:
            raise ClipRefused(
                "this server fetches no URLs (mcp.fetch_hosts is empty): send the clip inline as audio_base64",
                "url_not_allowed",
            )
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError:
            raise ClipRefused("audio_url is not a valid URL: send an https:// URL", "url_not_allowed") from None
        if parts.scheme.lower() != "https":
            raise ClipRefused("audio_url must be an https:// URL (no other scheme is fetched)", "url_not_allowed")
        if parts.username is not None or parts.password is not None:
            raise ClipRefused("audio_url must not carry a user name or password", "url_not_allowed")
        if not host_allowed(host, self.hosts):
            raise ClipRefused(
                f"this server does not fetch from host {shown(host, 64)}: use a host in its mcp.fetch_hosts "
                "allow-list, or send the clip inline as audio_base64",
                "url_not_allowed",
            )
        if inet_aton_only(host):
            raise ClipRefused(
                f"audio_url's host {shown(host, 64)} is an IPv4 address in a short, octal or hex form: the server "
                "fetches only from a name, or a public address written as four decimal numbers",
                "url_not_allowed",
            )
        try:
            literal: IpAddress | None = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None and not self._allowed(literal):
            raise ClipRefused(
                f"audio_url's host {shown(host, 64)} is not a public address: the server never fetches from a "
                "private, loopback, link-local or reserved address (nor an IPv6 form of one)",
                "url_not_allowed",
            )
        return host

    async def fetch(self, url: str) -> bytes:
        """The body at ``url``, following at most ``max_redirects`` redirects, each checked."""
        self.check(url)
        resolver = _CheckedResolver(self._allowed)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=1)
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                aiohttp.ClientSession(
                    connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
                ) as session,
            ):
                return await self._follow(session, url, resolver)
        except TimeoutError:
            raise ClipRefused(
                f"fetching audio_url took over {self.timeout_s:g} s (mcp.fetch_timeout_s): use a faster host or "
                "a shorter clip, or send it inline as audio_base64",
                "fetch_failed",
            ) from None
        except aiohttp.ClientError as e:
            if resolver.refused is not None:
                raise ClipRefused(
                    f"host {shown(resolver.refused, 64)} resolves to a private, loopback or link-local address: "
                    "the server never fetches from one",
                    "url_not_allowed",
                ) from None
            raise ClipRefused(
                f"audio_url could not be fetched ({type(e).__name__}): check that the URL works", "fetch_failed"
            ) from None
        finally:
            await connector.close()

    async def _follow(self, session: aiohttp.ClientSession, url: str, resolver: _CheckedResolver) -> bytes:
        for _ in range(self.max_redirects + 1):
            async with session.get(url, allow_redirects=False, ssl=self._ssl, **_no_compression()) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise ClipRefused(
                            f"audio_url answered a redirect ({response.status}) without a Location", "fetch_failed"
                        )
                    url = urljoin(url, location)
                    self.check(url)
                    continue
                if response.status != 200:
                    raise ClipRefused(
                        f"fetching audio_url answered HTTP {response.status}: check that the URL works",
                        "fetch_failed",
                    )
                return await self._body(response)
        raise ClipRefused(
            f"audio_url redirected more than {self.max_redirects} times (mcp.fetch_max_redirects)", "fetch_failed"
        )

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None and length > self.max_bytes:
            raise _too_large(self.max_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise _too_large(self.max_bytes)
            chunks.append(chunk)
        if not size:
            raise ClipRefused("audio_url's body is empty: send a URL that serves the clip", "fetch_failed")
        return b"".join(chunks)


def _too_large(limit: int) -> ClipRefused:
    return ClipRefused(
        f"the clip at audio_url is over this server's {limit}-byte limit for translate_audio (mcp.max_clip_bytes): "
        "send a shorter or more compressed clip",
        "clip_too_large",
    )


def _no_compression() -> dict[str, Any]:
    """The body is counted as it comes off the wire: no transparent decompression to inflate it."""
    return {"auto_decompress": False, "headers": {"Accept-Encoding": "identity"}}
