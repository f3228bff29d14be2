"""A SIP user agent over a plain socket, for the SIP door's attacks and the tests that run them: its
requests written from RFC 3261 (§7 the message, §8.1.1 a request's headers, §13 INVITE, §17.1.1.3
the ACK of a non-2xx response, §13.2.2.4 the ACK of a 2xx, §15.1.1 BYE), its offers from RFC 4566
and RFC 3264, its digest answers from RFC 2617 §3.2.2, RTP packets from RFC 3550 §5.1 and DTMF
events from RFC 4733 §2.3. Responses are read by the few lines here (status line, headers by
name, the body its Content-Length says), never by the server's own parser (DESIGN pitfall 26).

A peer keeps one dialog at a time (its Call-ID, tags and CSeq) and what came back to it, with when.
Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import socket
import struct
from dataclasses import dataclass, field


@dataclass
class SipResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    at: float = 0.0

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def to_tag(self) -> str:
        match = re.search(r";\s*tag=([^;>\s]+)", self.get("to") or "")
        return match.group(1) if match else ""

    def sdp_media(self) -> tuple[str, int] | None:
        """The answer's c= address and its audio m= port."""
        text = self.body.decode(errors="replace")
        addr = re.search(r"^c=IN IP[46] (\S+)", text, re.M)
        port = re.search(r"^m=audio (\d+)", text, re.M)
        return (addr.group(1), int(port.group(1))) if addr and port else None


_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
}


def parse_response(data: bytes) -> SipResponse | None:
    """A response as RFC 3261 §7.2 writes one; None: anything else (a request, garbage)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    if not sep or not lines[0].startswith("SIP/2.0 "):
        return None
    parts = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.append((_COMPACT.get(name, name), value.strip()))
    length = next((int(v) for k, v in headers if k == "content-length" and v.isdigit()), len(body))
    return SipResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body[:length], data)


def offer(address: str, port: int, *, payload_types: str = "0 101", extra: str = "", addrtype: str = "") -> bytes:
    """An SDP offer (RFC 4566 §5, RFC 3264 §5): one audio stream at ``address``:``port`` with PCMU
    and telephone-event; ``extra`` lines go after the m= line."""
    family = addrtype or ("IP6" if ":" in address else "IP4")
    lines = [
        "v=0",
        f"o=peer 1 1 IN {family} {address}",
        "s=-",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {payload_types}",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        *([extra] if extra else []),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def digest_answer(user: str, password: str, realm: str, nonce: str, method: str, uri: str, nc: int) -> str:
    """An ``Authorization`` value (RFC 2617 §3.2.2, MD5, ``qop=auth``)."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    cnonce = os.urandom(4).hex()
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}", '
        f'algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    )


def challenge(resp: SipResponse) -> dict[str, str]:
    """A 401's ``WWW-Authenticate`` parameters."""
    value = resp.get("www-authenticate") or ""
    return {m.group(1).lower(): m.group(2) or m.group(3) for m in re.finditer(r'(\w+)="?([^",]*)"?|(\w+)=(\S+)', value)}


def rtp_packet(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    """RFC 3550 §5.1: version 2, no padding, extension or CSRC."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp, ssrc) + payload


def dtmf_end(digit: int, seq: int, timestamp: int, ssrc: int = 0x1234) -> bytes:
    """An RFC 4733 event's end packet (payload type 101): the event, E set, volume 10, 800 ticks."""
    return rtp_packet(101, seq, timestamp, ssrc, struct.pack("!BBH", digit, 0x80 | 10, 800))


@dataclass
class Dialog:
    call_id: str
    from_tag: str
    uri: str
    cseq: int = 0
    to_tag: str = ""
    branch: str = ""


@dataclass
class SipPeer:
    """One UA on a UDP socket bound to ``host`` (a loopback address: 127.0.0.2 is another source
    than 127.0.0.1 on Linux), talking to the server at ``server``."""

    server: tuple[str, int]
    host: str = "127.0.0.1"
    sock: socket.socket = field(init=False)
    got: list[SipResponse] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    received_bytes: int = 0
    sent_bytes: int = 0
    dialog: Dialog | None = None
    _reader: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((self.host, 0))
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65535)
            self.received_bytes += len(data)
            resp = parse_response(data)
            if resp is not None:
                resp.at = loop.time()
                self.got.append(resp)
                self._arrived.set()
            else:
                self.requests.append(data)  # the server's own request (its BYE): answered 200
                if data.startswith(b"BYE "):
                    await self.send(_ok_to(data))

    async def send(self, data: bytes) -> None:
        self.sent_bytes += len(data)
        await asyncio.get_running_loop().sock_sendto(self.sock, data, self.server)

    async def close(self) -> None:
        """The reader stopped (its registration with the loop gone) before the socket closes: a
        socket closed under a pending ``sock_recv`` leaves the loop watching a descriptor number
        the next socket reuses."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.sock.close()

    async def __aenter__(self) -> SipPeer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        *,
        uri: str | None = None,
        headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
        body: bytes = b"",
        call_id: str | None = None,
        branch: str | None = None,
        cseq: int | None = None,
    ) -> bytes:
        """A request of the peer's dialog (a new one unless ``self.dialog`` is set), RFC 3261 §8.1.1."""
        d = self.dialog
        if d is None:
            d = self.dialog = Dialog(
                call_id or os.urandom(8).hex(), os.urandom(4).hex(), uri or f"sip:eng-spa@{self.server[0]}"
            )
        if method in ("ACK", "CANCEL"):
            number = cseq if cseq is not None else d.cseq
        else:
            d.cseq += 1
            number = d.cseq
        d.branch = branch or ("z9hG4bK" + os.urandom(8).hex())
        target = uri or d.uri
        to = f"<{d.uri}>" + (f";tag={d.to_tag}" if d.to_tag else "")
        lines = [
            f"{method} {target} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={d.branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:peer@{self.host}>;tag={d.from_tag}",
            f"To: {to}",
            f"Call-ID: {call_id or d.call_id}",
            f"CSeq: {number} {'INVITE' if method == 'ACK' else method}",
            f"Contact: <sip:peer@{self.host}:{self.port}>",
            *(f"{k}: {v}" for k, v in headers),
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def final(self, after: int = 0, timeout_s: float = 10.0) -> SipResponse | None:
        """The first final response (>= 200) among those received from index ``after`` on."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            for resp in self.got[after:]:
                if resp.status >= 200:
                    return resp
            left = end - loop.time()
            if left <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()

    async def invite(
        self,
        body: bytes,
        *,
        headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
        ack: bool = True,
        timeout_s: float = 10.0,
        uri: str | None = None,
        call_id: str | None = None,
    ) -> SipResponse | None:
        """An INVITE (a re-INVITE within the dialog once it has a To tag) and its final response,
        ACKed (``ack``): a 2xx's ACK in the dialog (§13.2.2.4), a non-2xx's on its branch (§17.1.1.3)."""
        after = len(self.got)
        data = self.request("INVITE", body=body, headers=headers, uri=uri, call_id=call_id)
        await self.send(data)
        resp = await self.final(after, timeout_s)
        if resp is None:
            return None
        assert self.dialog is not None
        if 200 <= resp.status < 300:
            self.dialog.to_tag = resp.to_tag()
            if ack:
                await self.send(self.request("ACK", cseq=self.dialog.cseq))
        elif ack:
            d = self.dialog
            to_tag, d.to_tag = d.to_tag, resp.to_tag()
            await self.send(self.request("ACK", branch=d.branch, cseq=d.cseq))
            d.to_tag = to_tag
        return resp

    async def bye(self, timeout_s: float = 10.0) -> SipResponse | None:
        after = len(self.got)
        await self.send(self.request("BYE"))
        return await self.final(after, timeout_s)


def _ok_to(request: bytes) -> bytes:
    """A 200 to the server's request (§8.2.6): its Via, From, To, Call-ID and CSeq copied."""
    head = request.partition(b"\r\n\r\n")[0].decode(errors="replace").split("\r\n")
    copied = [ln for ln in head[1:] if ln.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
    return ("\r\n".join(["SIP/2.0 200 OK", *copied, "Content-Length: 0"]) + "\r\n\r\n").encode()


class RtpSocket:
    """A UDP socket that counts what reaches it (a caller's media port, or a third party's)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((host, 0))
        self.packets = 0
        self.bytes = 0
        self.sources: set[tuple[str, int]] = set()
        self._task = asyncio.get_running_loop().create_task(self._count())

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def _count(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, addr = await loop.sock_recvfrom(self.sock, 65535)
            self.packets += 1
            self.bytes += len(data)
            self.sources.add((addr[0], addr[1]))

    async def send(self, data: bytes, to: tuple[str, int]) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, to)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sock.close()
